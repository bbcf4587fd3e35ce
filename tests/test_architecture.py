"""The package layout's one-way data flow, checked on the source (fails when an import breaks it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            out.append((node.lineno, mod, [a.name for a in node.names]))
    return out


def _modules(folder: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / folder).rglob("*.py"))


def _violations(folder: str, bad: tuple[str, ...], root: Path = ROOT) -> list[str]:
    found = []
    for f in _modules(folder, root):
        for line, mod, names in _imports(f, root):
            full = [mod] + [f"{mod}.{n}" for n in names]
            if any(m == b or m.startswith(b + ".") for m in full for b in bad):
                found.append(f"{f.relative_to(root)}:{line}: {mod}")
    return found


def test_scanner_sees_imports(tmp_path: Path) -> None:
    """The scanner itself: a planted forbidden import, plain, from-import and relative, is found."""
    pkg = tmp_path / "cdrscreen" / "reports"
    pkg.mkdir(parents=True)
    (pkg / "probe.py").write_text(
        "import cdrscreen.features.pupil\nfrom cdrscreen import cache\n"
        "def f():\n    from ..media import video\n", encoding="utf-8")
    (pkg / "fine.py").write_text("from cdrscreen.core.io import write_text\n", encoding="utf-8")
    found = _violations("cdrscreen/reports", ("cdrscreen.features", "cdrscreen.cache", "cdrscreen.media"),
                        root=tmp_path)
    assert [v.split(":")[1] for v in found] == ["1", "2", "4"]


def test_reports_read_results_only() -> None:
    """Reports import neither features, cache, media nor tracking: they read the run folder,
    the feature table and signals/."""
    bad = ("cdrscreen.features", "cdrscreen.cache", "cdrscreen.media", "cdrscreen.tracking",
           "cdrscreen.extract", "cdrscreen.study")
    assert _violations("cdrscreen/reports", bad) == []


def test_tracking_does_not_import_features() -> None:
    """media -> tracking -> features: the tracker never reaches back into a feature group."""
    assert _violations("cdrscreen/tracking", ("cdrscreen.features", "cdrscreen.reports", "cdrscreen.extract")) == []


def test_core_imports_nothing_else_of_cdrscreen() -> None:
    found = []
    for f in _modules("cdrscreen/core"):
        for line, mod, _ in _imports(f):
            if mod.startswith("cdrscreen") and not mod.startswith("cdrscreen.core"):
                found.append(f"{f.relative_to(ROOT)}:{line}: {mod}")
    assert found == []


def test_fer_backbone_uses_only_public_cdrscreen() -> None:
    """fer_backbone may import cdrscreen.core and cdrscreen.tracking, and no private name there."""
    found = []
    for f in _modules("fer_backbone"):
        for line, mod, names in _imports(f):
            if mod != "cdrscreen" and not mod.startswith("cdrscreen."):
                continue
            allowed = mod.startswith(("cdrscreen.core", "cdrscreen.tracking"))
            private = [n for n in [*mod.split("."), *names] if n.startswith("_") and n != "__future__"]
            if not allowed or private:
                found.append(f"{f.relative_to(ROOT)}:{line}: {mod} {names}")
    assert found == []
