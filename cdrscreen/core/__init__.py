"""Shared foundations of both halves of the package.

``errors``   one-line user-facing error types
``io``       atomic writes, file hashing, readable-file checks
``progress`` progress bars that stay quiet off a terminal
``config``   the one strict base model, YAML loader and validation-error formatter
``native``   silencing native libraries' stderr chatter

``fer_backbone`` imports nothing from ``cdrscreen`` but this package (and ``tracking``).
"""
