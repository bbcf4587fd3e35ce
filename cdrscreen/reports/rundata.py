"""Read an evaluation run folder (see ``docs/run-folder.md``) for the report builders.

Everything a report shows comes from the run folder and the feature table it names
(``inputs.json``); nothing is re-fitted. Missing optional files (``roc.parquet``,
``ablation.parquet``, ``row_predictions.parquet``) simply leave their sections out;
a missing or unreadable required file is one :class:`~cdrscreen.core.errors.InputError`
naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cdrscreen.core.errors import InputError

REQUIRED = ("metrics.json", "predictions.parquet")


@dataclass
class RunData:
    """The contents of a run folder, loaded once and shared by all reports of the run.

    Attributes
    ----------
    run_dir : Path
    metrics : dict
        ``metrics.json``.
    predictions : DataFrame
        Per-subject out-of-fold predictions, index ``(model, subject)``.
    row_predictions, roc, ablation : DataFrame or None
        Optional tables of the run folder.
    protocol_text : str
        ``protocol.yaml`` as written (empty when absent); ``protocol`` is its parsed form.
    environment, inputs, run : dict
        ``environment.json``, ``inputs.json`` and ``run.json`` (empty when absent).
    features : DataFrame or None
        The input feature table (from ``inputs.json``'s path), indexed
        ``(subject, session, file)``; None when it cannot be found.
    features_path : Path or None
    """

    run_dir: Path
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    row_predictions: pd.DataFrame | None = None
    roc: pd.DataFrame | None = None
    ablation: pd.DataFrame | None = None
    protocol_text: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    features: pd.DataFrame | None = None
    features_path: Path | None = None

    @property
    def classes(self) -> list[str]:
        """Class names in the run's order (probability columns, confusion matrices)."""
        return [str(c) for c in self.metrics.get("classes", [])]

    @property
    def primary_model(self) -> str:
        """The model patient reports use: ``metrics.json: primary_model`` (else the first)."""
        name = self.metrics.get("primary_model")
        models = list(self.metrics.get("models", {}))
        if name in self.metrics.get("models", {}):
            return str(name)
        if models:
            return str(models[0])
        return str(self.predictions.index.get_level_values("model")[0])

    @property
    def protocol_name(self) -> str:
        """Name of the protocol (``metrics.json: protocol``)."""
        return str(self.metrics.get("protocol") or self.protocol.get("name") or self.run_dir.name)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Feature group -> columns used (``inputs.json: groups``)."""
        return {str(k): [str(c) for c in v] for k, v in self.inputs.get("groups", {}).items()}

    def subject_predictions(self, model: str | None = None) -> pd.DataFrame:
        """Per-subject predictions of one model (default: the primary), indexed by subject."""
        model = model or self.primary_model
        return self.predictions.xs(model, level="model")


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise InputError(path, "missing from the run folder (is this a cdrscreen run folder?)")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as JSON ({err})") from None


def _read_parquet(path: Path, required: bool) -> pd.DataFrame | None:
    if not path.exists():
        if required:
            raise InputError(path, "missing from the run folder (is this a cdrscreen run folder?)")
        return None
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:  # what pyarrow raises for a bad file
        raise InputError(path, f"cannot be read as Parquet ({type(err).__name__}: {err})") from None


def _find_features(run_dir: Path, inputs: dict[str, Any]) -> Path | None:
    path = (inputs.get("features") or {}).get("path")
    if not path:
        return None
    p = Path(path)
    candidates = [p] if p.is_absolute() else [run_dir / p, Path.cwd() / p]
    for c in candidates:
        if c.exists():
            return c
    return None


def _check_features_hash(path: Path, run_dir: Path, inputs: dict[str, Any]) -> None:
    """Refuse a feature table that is not the one the run was computed on (``inputs.json`` hash)."""
    from cdrscreen.core.io import file_sha256
    from cdrscreen.evaluation.runfolder import check_table_hash

    recorded = (inputs.get("features") or {}).get("sha256")
    if recorded is None or not path.is_file():
        return
    try:
        sha = file_sha256(path)
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror})") from None
    check_table_hash(path, sha, run_dir, recorded)


def load_run(run_dir: str | os.PathLike[str], features: str | os.PathLike[str] | pd.DataFrame | None = None) -> RunData:
    """Load a run folder.

    Parameters
    ----------
    run_dir : path-like
        Folder written by ``cdrscreen evaluate`` or ``cdrscreen ablate``.
    features : path-like or DataFrame, optional
        The feature table, when it has moved since the run (default: the path recorded
        in ``inputs.json``).

    Returns
    -------
    RunData

    Raises
    ------
    InputError
        If the folder, ``metrics.json`` or ``predictions.parquet`` is missing or unreadable,
        or if the predictions lack the documented index.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "not a folder (expected a run folder written by 'cdrscreen evaluate')")
    metrics = _read_json(run_dir / "metrics.json", True)
    preds = _read_parquet(run_dir / "predictions.parquet", True)
    assert preds is not None
    if list(preds.index.names) != ["model", "subject"]:
        raise InputError(run_dir / "predictions.parquet",
                         f"expected index (model, subject), found {list(preds.index.names)}")
    if not metrics.get("classes"):
        raise InputError(run_dir / "metrics.json", "has no 'classes' list")
    preds = preds.rename(index=str, level="subject")
    protocol_text = ""
    protocol: dict[str, Any] = {}
    ppath = run_dir / "protocol.yaml"
    if ppath.exists():
        protocol_text = ppath.read_text(encoding="utf-8")
        try:
            protocol = yaml.safe_load(protocol_text) or {}
        except yaml.YAMLError as err:
            raise InputError(ppath, f"is not valid YAML ({err})") from None
    inputs = _read_json(run_dir / "inputs.json", False)
    data = RunData(
        run_dir=run_dir,
        metrics=metrics,
        predictions=preds,
        row_predictions=_read_parquet(run_dir / "row_predictions.parquet", False),
        roc=_read_parquet(run_dir / "roc.parquet", False),
        ablation=_read_parquet(run_dir / "ablation.parquet", False),
        protocol_text=protocol_text,
        protocol=protocol if isinstance(protocol, dict) else {},
        environment=_read_json(run_dir / "environment.json", False),
        inputs=inputs,
        run=_read_json(run_dir / "run.json", False),
    )
    if isinstance(features, pd.DataFrame):
        data.features = features
    else:
        fpath = Path(features) if features is not None else _find_features(run_dir, inputs)
        if features is not None and not fpath.exists():  # type: ignore[union-attr]
            raise InputError(fpath, "feature table not found")  # type: ignore[arg-type]
        if fpath is not None:
            _check_features_hash(fpath, run_dir, inputs)
            data.features = _read_parquet(fpath, True)
            data.features_path = fpath
    if data.features is not None:
        ft = data.features
        if "subject" not in (ft.index.names or []):
            raise InputError(data.features_path or "features",
                             f"expected a feature table indexed by (subject, session, file), found {list(ft.index.names)}")
        ft.index = ft.index.set_levels(
            [lvl.astype(str) if name in ("subject", "session") else lvl
             for name, lvl in zip(ft.index.names, ft.index.levels, strict=True)]
        ) if isinstance(ft.index, pd.MultiIndex) else ft.index
    return data
