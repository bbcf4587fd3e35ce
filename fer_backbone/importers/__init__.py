"""Importers: published expression models rebuilt in PyTorch and exported as embedders."""
