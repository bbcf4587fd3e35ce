"""Public entry points: :func:`evaluate` and :func:`ablate` (each writes a run folder)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from cdrscreen.core.io import write_json, write_parquet, write_text
from cdrscreen.evaluation import cv
from cdrscreen.evaluation.ablation import ablation_table, variants
from cdrscreen.evaluation.data import Dataset, check_model_groups, load_dataset
from cdrscreen.evaluation.engine import ModelRun, map_tasks, run_plans
from cdrscreen.evaluation.exports import write_exports
from cdrscreen.evaluation.figures import ablation_figure, confusion_figure, roc_figure, safe_name
from cdrscreen.evaluation.protocol import Protocol, load_protocol
from cdrscreen.evaluation.results import compare, model_metrics, prediction_tables, roc_table
from cdrscreen.evaluation.runfolder import prepare_out_dir

PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "pydantic", "joblib", "matplotlib", "PyYAML")
#: Libraries the features are computed with (versions recorded in ``environment.json``).
FEATURE_PACKAGES = ("mediapipe", "opencv-contrib-python", "opensmile", "librosa", "soundfile", "av",
                    "praat-parselmouth", "onnxruntime", "scikit-image", "torch", "timm")


@dataclass
class RunResult:
    """Everything a run produced (also written to ``out_dir`` when one was given)."""

    out_dir: Path | None
    protocol: Protocol
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    row_predictions: pd.DataFrame
    roc: pd.DataFrame
    ablation: pd.DataFrame | None = None
    inputs: dict[str, Any] | None = None  #: ``inputs.json`` content (excluded subjects, hashes, media)

    @property
    def primary(self) -> dict[str, Any]:
        """The metrics entry of the protocol's first model (or the ablation's full model)."""
        return self.metrics["models"][self.metrics["primary_model"]]


def environment() -> dict[str, Any]:
    """Versions of cdrscreen, Python and the numerical packages."""
    from cdrscreen import __version__

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"cdrscreen": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "packages": {p: version(p) for p in PACKAGES},
            "feature_packages": {p: version(p) for p in FEATURE_PACKAGES}}


def _check_scheduler(scheduler: str | None, n_jobs: int) -> None:
    """Refuse a malformed ``scheduler``, one combined with ``n_jobs``, or Dask missing (before any work)."""
    if scheduler is None:
        return
    from cdrscreen.cluster import parse_scheduler, require_dask
    from cdrscreen.core.errors import CdrscreenError

    parse_scheduler(scheduler)
    if n_jobs != 1:
        raise CdrscreenError(f"jobs={n_jobs} and scheduler={scheduler!r} exclude each other; "
                             "for N local processes on a cluster use scheduler local:N")
    require_dask("evaluation")


@contextlib.contextmanager
def _cluster(scheduler: str | None) -> Iterator[Any]:
    """Yield a connected Dask client for ``scheduler`` (None without one); close it afterwards."""
    if scheduler is None:
        yield None
        return
    from cdrscreen.cluster import open_client, wait_for_workers

    with open_client(scheduler) as client:
        wait_for_workers(client)
        yield client


def _prepare(protocol: str | os.PathLike[str] | dict | Protocol, features: Any,
             out_dir: str | os.PathLike[str] | None = None, overwrite: bool = False) -> tuple[Protocol, Dataset]:
    proto = load_protocol(protocol)
    data = load_dataset(proto, features)
    check_model_groups(proto, data)
    if out_dir is not None:
        prepare_out_dir(out_dir, overwrite)
    return proto, data


def _metrics_doc(proto: Protocol, data: Dataset, runs: list[ModelRun], n_perm: int, n_jobs: int = 1,
                 client: Any = None) -> dict[str, Any]:
    st = proto.statistics
    # each model's bootstrap CIs are one task (threads here, or the cluster's workers)
    entries = map_tasks(model_metrics, [(r, data, proto) for r in runs], n_jobs, client=client)
    return {
        "protocol": proto.name,
        "description": proto.description,
        "classes": data.classes,
        "positive_class": data.classes[1] if len(data.classes) == 2 else None,
        "primary_model": runs[0].plan.name,
        "unit": "subject",
        "subject_aggregation": proto.subject_aggregation,
        "bootstrap": {"n": st.n_bootstrap, "ci": st.ci, "method": "percentile", "seed": proto.seed},
        "permutation": {"n": n_perm, "metric": st.permutation_metric, "scope": "whole nested procedure"},
        "models": {r.plan.name: e for r, e in zip(runs, entries, strict=True)},
        "comparisons": [],
    }


def _write(out: Path, kind: str, proto: Protocol, data: Dataset, result: RunResult, runs: list[ModelRun],
           started: float, n_jobs: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    files = ["protocol.yaml", "environment.json", "inputs.json", "predictions.parquet",
             "row_predictions.parquet", "metrics.json", "roc.parquet"]
    write_text(out / "protocol.yaml", proto.to_yaml())
    write_json(out / "environment.json", environment())
    inputs = dict(data.inputs)
    if data.inputs.get("features", {}).get("path"):
        from cdrscreen.core.io import file_sha256

        # the table may have been replaced while the run was computing: record what was read
        inputs["features"] = dict(inputs["features"], sha256_at_end=file_sha256(data.inputs["features"]["path"]))
    write_json(out / "inputs.json", inputs)
    files += write_exports(out, proto, data, result, environment())
    write_parquet(out / "predictions.parquet", result.predictions)
    write_parquet(out / "row_predictions.parquet", result.row_predictions)
    write_json(out / "metrics.json", result.metrics)
    write_parquet(out / "roc.parquet", result.roc)
    if data.extraction:  # every extractor's configuration, as the feature table records it
        write_json(out / "extraction.json", data.extraction)
        files.append("extraction.json")
    # ablate runs: confusion/ROC figures for the full model only (the plot compares variants)
    for run in runs if kind == "evaluate" else runs[:1]:
        name = run.plan.name
        entry = result.metrics["models"][name]
        f = figs / f"confusion_{safe_name(name)}.png"
        confusion_figure(f, entry["confusion_matrix"]["labels"], entry["confusion_matrix"]["matrix"], name)
        files.append(str(f.relative_to(out)))
        roc = result.roc[result.roc["model"] == name]
        if len(roc):
            f = figs / f"roc_{safe_name(name)}.png"
            roc_figure(f, roc, name)
            files.append(str(f.relative_to(out)))
    if result.ablation is not None:
        write_parquet(out / "ablation.parquet", result.ablation)
        tmp = result.ablation.to_csv(index=False)
        write_text(out / "ablation.csv", tmp)
        chance = 1.0 / len(data.classes) if proto.ablation.rank_by == "balanced_accuracy" else None
        ablation_figure(figs / "ablation.png", result.ablation, proto.ablation.rank_by, chance)
        files += ["ablation.parquet", "ablation.csv", "figures/ablation.png"]
    write_json(out / "run.json", {
        "kind": kind, "protocol": proto.name,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 3), "n_jobs": n_jobs, "files": sorted(files),
    })


def _result(proto: Protocol, data: Dataset, runs: list[ModelRun], n_perm: int, out: Path | None,
            n_jobs: int = 1, client: Any = None) -> RunResult:
    metrics = _metrics_doc(proto, data, runs, n_perm, n_jobs, client)
    preds, rows = prediction_tables(runs, data, proto.augmentation.column)
    return RunResult(out, proto, metrics, preds, rows, roc_table(runs, data), inputs=data.inputs)


def evaluate(
    protocol: str | os.PathLike[str] | dict | Protocol,
    features: str | os.PathLike[str] | pd.DataFrame,
    out_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    scheduler: str | None = None,
) -> RunResult:
    """Evaluate every model of a protocol on a feature table.

    Parameters
    ----------
    protocol : path, dict or Protocol
        Protocol YAML file (see ``docs/protocols.md``) or an already loaded protocol.
    features : path or DataFrame
        Feature table indexed by (subject, session, file).
    out_dir : path, optional
        Run folder to write (``docs/run-folder.md``); nothing is written if ``None``.
    n_jobs : int
        Parallel workers for folds, permutations and bootstrap CIs (results do not depend
        on it): threads of this process for a permutation test of cached-kernel SVMs or
        batched ridge models, joblib worker processes otherwise.
    progress : bool
        Show a progress bar on a terminal.
    overwrite : bool
        Clear a non-empty ``out_dir`` first (refused otherwise, before any work).
    scheduler : str, optional
        Run the fold, permutation and ablation-variant tasks on a Dask cluster:
        ``"local:N"`` starts ``N`` worker processes here, ``"tcp://HOST:PORT"`` uses a
        running scheduler (``docs/scale-out.md``). Same results as a local run; excludes
        ``n_jobs`` other than 1; needs the ``cluster`` extra.

    Returns
    -------
    RunResult
    """
    started = time.time()
    _check_scheduler(scheduler, n_jobs)
    proto, data = _prepare(protocol, features, out_dir, overwrite)
    with_inner = any(m.grid for m in proto.models)
    folds = cv.make_folds(proto, data, with_inner=with_inner)
    plans = [cv.plan_model(m, data, proto.seed) for m in proto.models]
    n_perm = proto.statistics.n_permutations
    with _cluster(scheduler) as client:
        runs = run_plans(plans, data, proto, folds, n_perm, n_jobs, progress, f"evaluate {proto.name}", client)
        result = _result(proto, data, runs, n_perm, Path(out_dir) if out_dir else None, n_jobs, client)
        result.metrics["comparisons"] = map_tasks(compare, [(runs[0], r, data, proto) for r in runs[1:]], n_jobs,
                                                  client=client)
    if out_dir is not None:
        _write(Path(out_dir), "evaluate", proto, data, result, runs, started, n_jobs)
    return result


def ablate(
    protocol: str | os.PathLike[str] | dict | Protocol,
    features: str | os.PathLike[str] | pd.DataFrame,
    out_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    all_subsets: bool | None = None,
    overwrite: bool = False,
    scheduler: str | None = None,
) -> RunResult:
    """Feature-group ablation of one protocol model (``ablation.model``, default the first).

    Evaluates the full group set, each group alone, each leave-one-group-out set and,
    if ``all_subsets`` (default: the protocol's ``ablation.all_subsets``), every other
    non-empty subset, on the same folds. Returns a :class:`RunResult` whose ``ablation``
    is the ranked table; parameters as in :func:`evaluate` (with ``scheduler``, every
    variant's folds and permutations are tasks on the cluster).
    """
    started = time.time()
    _check_scheduler(scheduler, n_jobs)
    proto, data = _prepare(protocol, features, out_dir, overwrite)
    spec_ab = proto.ablation
    if all_subsets is not None and all_subsets != spec_ab.all_subsets:
        spec_ab = spec_ab.model_copy(update={"all_subsets": all_subsets})
        proto = proto.model_copy(update={"ablation": spec_ab})
    name = spec_ab.model or proto.models[0].name
    spec = next(m for m in proto.models if m.name == name)
    groups = list(spec.groups or data.default_groups)
    var = variants(groups, spec_ab)
    plans = []
    for vname, _, vgroups, _ in var:
        plan = cv.plan_model(spec, data, proto.seed, groups=vgroups)
        plans.append(cv.ModelPlan(vname, plan.estimator, plan.grid, plan.groups))
    folds = cv.make_folds(proto, data, with_inner=bool(spec.grid))
    n_perm = spec_ab.n_permutations
    with _cluster(scheduler) as client:
        runs = run_plans(plans, data, proto, folds, n_perm, n_jobs, progress, f"ablate {proto.name}", client)
        result = _result(proto, data, runs, n_perm, Path(out_dir) if out_dir else None, n_jobs, client)
    rows = []
    for vname, kind, vgroups, dropped in var:
        entry = result.metrics["models"][vname]
        rows.append({"variant": vname, "kind": kind, "groups": vgroups, "dropped": dropped,
                     "metrics": entry["metrics"], "p_value": (entry["permutation"] or {}).get("p_value")})
    result.ablation = ablation_table(rows, spec_ab.rank_by)
    result.metrics["ablation"] = {"model": name, "rank_by": spec_ab.rank_by,
                                  "variants": result.ablation["variant"].tolist()}
    if out_dir is not None:
        _write(Path(out_dir), "ablate", proto, data, result, runs, started, n_jobs)
    return result
