"""Files shipped inside the package: evaluation protocols and extraction presets.

They are package data (``pyproject.toml`` ``[tool.setuptools.package-data]``), so a wheel
carries them, and are located with :mod:`importlib.resources`, as opensmile-python finds
its config root::

    >>> from cdrscreen.resources import resource_path
    >>> (resource_path("protocols") / "cdr_binary_loso.yaml").is_file()
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """File system path of a shipped resource (``resource_path("protocols", "x.yaml")``).

    Installed packages (wheel, editable or source tree) are plain folders, so the
    :class:`importlib.resources.abc.Traversable` of this package is a real path.
    """
    return Path(str(resources.files(__name__).joinpath(*parts)))


def list_resources(folder: str, suffix: str = ".yaml") -> list[str]:
    """Names (without suffix) of the shipped files in ``folder``, sorted."""
    root = resources.files(__name__).joinpath(folder)
    return sorted(p.name[: -len(suffix)] for p in root.iterdir() if p.name.endswith(suffix))


__all__ = ["list_resources", "resource_path"]
