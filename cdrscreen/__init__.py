"""cdrscreen: dementia (CDR) screening research toolkit for recorded interviews.

Every result produced by this package is a research output, not a diagnosis.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
