"""Shared test configuration.

Fixture modules live beside this file as ``fixtures_<area>.py`` and are loaded as pytest
plugins, so each area (media, speech, evaluation, fer) owns its generated test data.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "cdrscreen" / "numba"))

pytest_plugins = sorted(f"tests.{p.stem}" for p in Path(__file__).parent.glob("fixtures_*.py"))

#: Where tests save artefacts people may want to look at (screenshots, plots).
ARTEFACTS = Path(os.environ.get("CDRSCREEN_TEST_ARTEFACTS", Path(__file__).parent.parent / "test-artefacts"))
