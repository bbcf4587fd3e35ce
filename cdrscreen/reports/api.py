"""``build_reports``: the study report and one report per recording, from a run folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from cdrscreen.core.errors import InputError
from cdrscreen.reports.cohort import MIN_CLASS_N, summarize_cohort
from cdrscreen.reports.patient import build_patient_report, select_key_features
from cdrscreen.reports.rundata import RunData, load_run
from cdrscreen.reports.signals import key_feature_hints, load_recording_signals
from cdrscreen.reports.study_report import build_study_report

#: Shown on every report made from the bundled demo cohort.
SYNTHETIC_BANNER = ("SYNTHETIC demo data: these reports check the pipeline; they describe no real "
                    "person and say nothing about dementia.")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def patient_filename(subject: str, session: str | None, n_sessions: int) -> str:
    """Return the file name of a recording's report.

    ``<subject>.html``, or ``<subject>_ses-<session>.html`` when the subject has several
    sessions.
    """
    if session is None or n_sessions <= 1:
        return f"{_safe(subject)}.html"
    return f"{_safe(subject)}_ses-{_safe(session)}.html"


def recordings(run: RunData) -> list[tuple[str, str | None, list[str]]]:
    """(subject, session, files) of every recording with an out-of-fold prediction."""
    subjects = list(dict.fromkeys(run.subject_predictions().index.astype(str)))
    if run.features is None:
        return [(s, None, []) for s in subjects]
    idx = run.features.index
    frame = pd.DataFrame({n: idx.get_level_values(n).astype(str) for n in idx.names})
    if "session" not in frame:
        frame["session"] = "1"
    if "file" not in frame:
        frame["file"] = ""
    out = []
    wanted = set(subjects)
    for (subj, ses), g in frame.groupby(["subject", "session"], sort=True):
        if subj in wanted:
            out.append((str(subj), str(ses), list(dict.fromkeys(g["file"]))))
    seen = {s for s, _, _ in out}
    out += [(s, None, []) for s in subjects if s not in seen]
    return out


def is_synthetic(run: RunData) -> bool:
    """Tell whether the run's recordings come from the synthetic demo cohort.

    The demo builder writes ``cohort.json`` (with a ``synthetic`` key) at the cohort's
    root; it is looked for beside and above the feature table's media files. A
    ``meta__synthetic`` column marks generated tables too.
    """
    ft = run.features
    if ft is None:
        return False
    if "meta__synthetic" in ft.columns and ft["meta__synthetic"].astype(bool).any():
        return True
    if "file" not in (ft.index.names or []):
        return False
    for f in list(dict.fromkeys(ft.index.get_level_values("file").astype(str)))[:3]:
        p = Path(f)
        for parent in list(p.parents)[:3]:
            info = parent / "cohort.json"
            try:
                if info.is_file() and "synthetic" in json.loads(info.read_text(encoding="utf-8")):
                    return True
            except (OSError, ValueError):
                continue
    return False


def build_reports(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    subject: str | None = None,
    *,
    ablation: str | os.PathLike[str] | None = None,
    features: str | os.PathLike[str] | pd.DataFrame | None = None,
    signals: str | os.PathLike[str] | None = None,
    study: bool | None = None,
    banner: str | None = None,
    min_class_n: int = MIN_CLASS_N,
    n_jobs: int | None = None,
) -> list[Path]:
    """Write the study report and per-recording patient reports of a run.

    Parameters
    ----------
    run_dir : path-like
        Run folder written by ``cdrscreen evaluate``/``ablate`` (``docs/run-folder.md``).
    out_dir : path-like, optional
        Output folder (default ``RUN_DIR/reports``): ``study.html`` and ``patients/*.html``.
    subject : str, optional
        Only this subject's patient report(s) (and no study report unless ``study=True``).
    ablation : path-like, optional
        An ablation run folder (``cdrscreen ablate``) of the same feature table: its table
        goes into the study report and its leave-one-group-out models give each patient's
        per-group contributions (default: ``run_dir`` itself when it is an ablation run).
    features : path-like or DataFrame, optional
        Feature table, when it moved since the run (default: ``inputs.json``'s path).
    signals : path-like, optional
        The ``signals/`` folder extraction wrote (default: beside the feature table). The
        per-frame and speech plots come from there; nothing is recomputed.
    study : bool, optional
        Write the study report (default: yes unless ``subject`` is given).
    banner : str, optional
        Highlighted line on every report (default: a synthetic-data notice for demo runs).
    min_class_n : int
        Cohort classes smaller than this show only their count in patient reports.
    n_jobs : int, optional
        Worker processes for patient reports (default: up to 2).

    Returns
    -------
    list of Path
        The study report first (when written), then the patient reports.

    Raises
    ------
    InputError
        If the run folder is incomplete, or ``subject`` has no prediction in the run.
    """
    run = load_run(run_dir, features=features)
    abl = None
    if ablation is not None:
        from cdrscreen.evaluation.runfolder import check_same_inputs

        abl = load_run(ablation, features=run.features)
        check_same_inputs(run.run_dir, run.inputs, abl.run_dir, abl.inputs, "ablation run")
    out = Path(out_dir) if out_dir is not None else run.run_dir / "reports"
    from cdrscreen.evaluation.runfolder import writable_dir

    if out.exists() and not out.is_dir():
        raise InputError(out, "report folder is an existing file")
    writable_dir(out, "report folder")
    if banner is None and is_synthetic(run):
        banner = SYNTHETIC_BANNER
    recs = recordings(run)
    if subject is not None:
        recs = [r for r in recs if r[0] == str(subject)]
        left_out = {str(e.get("subject")): e for e in run.inputs.get("excluded_subjects") or []}
        if not recs and str(subject) in left_out:
            raise InputError(run.run_dir / "inputs.json",
                             f"subject {subject!r} was left out of this run: {left_out[str(subject)]['reason']} "
                             "(choose a label scheme that includes it, see docs/protocols.md)")
        if not recs:
            known = sorted({s for s, _, _ in recordings(run)})
            import difflib

            hint = difflib.get_close_matches(str(subject), known, n=1)
            raise InputError(run.run_dir / "predictions.parquet",
                             f"no prediction for subject {subject!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else f"; subjects: {', '.join(known[:10])}"))
    want_study = study if study is not None else subject is None
    written: list[Path] = []

    def write_study() -> None:
        if want_study:
            written.insert(0, build_study_report(run, banner=banner, ablation=abl).save(out / "study.html"))

    if not recs:
        write_study()
        return _verified(written, run.run_dir)

    key, cohort = cohort_summaries(run, min_class_n)
    sig_root = Path(signals) if signals is not None else _default_signals(run)
    n_sessions = pd.Series([s for s, _, _ in recs]).value_counts().to_dict()
    jobs = []
    for subj, ses, _files in recs:
        path = out / "patients" / patient_filename(subj, ses, n_sessions[subj])
        jobs.append((subj, ses, path))
    n_jobs = min(n_jobs or min(2, os.cpu_count() or 1), len(jobs))
    args = dict(run=run, cohort=cohort, key=key, signals=sig_root, banner=banner, ablation=abl)
    if n_jobs <= 1:
        write_study()
        written += [_one(*j, **args) for j in jobs]
    else:
        from joblib import Parallel, delayed

        chunks = [jobs[i::n_jobs] for i in range(n_jobs)]
        # workers start on the patients while this process writes the study report
        gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_many)(c, **args) for c in chunks)
        write_study()
        done = {p for r in gen for p in r}
        written += [j[2] for j in jobs if j[2] in done]
    missing = [j[2] for j in jobs if j[2] not in written]
    if missing:
        raise InputError(missing[0], f"patient report was not written ({len(missing)} of {len(jobs)} missing)")
    return _verified(written, run.run_dir)


def _verified(written: list[Path], run_dir: Path) -> list[Path]:
    """Check that every report said to be written is there and the run folder still exists."""
    if not (run_dir / "metrics.json").is_file():
        raise InputError(run_dir, "run folder disappeared while the reports were written; nothing reliable "
                                  "was written")
    for p in written:
        if not p.is_file():
            raise InputError(p, "report was not written (was the folder deleted or made read-only?)")
    return written


def cohort_summaries(run: RunData, min_class_n: int = MIN_CLASS_N) -> tuple[list[tuple[str, str]], dict]:
    """Return the key features and their per-class cohort summaries.

    Computed once per run and identical in every patient report (see
    :mod:`cdrscreen.reports.cohort`).
    """
    if run.features is None:
        return [], {}
    key = select_key_features(list(run.features.columns), hints=key_feature_hints(run.features))
    per_rec = _per_recording(run.features)
    if "meta__cdr" not in per_rec:
        return key, {}
    return key, summarize_cohort(per_rec, [c for c, _ in key], names=dict(key), min_class_n=min_class_n)


def _one(subj: str, ses: str | None, path: Path, *, run: RunData, cohort: dict, key: list,
         signals: Path | None, banner: str | None, ablation: RunData | None) -> Path:
    problem = None
    try:
        sig = load_recording_signals(run.features, signals, subj, ses)
    except InputError as err:  # a corrupt signal file: say so in the report, draw the rest
        sig, problem = None, str(err)
    rep = build_patient_report(run, subj, ses, cohort, key, signals=sig, banner=banner, ablation=ablation,
                               signals_problem=problem)
    return rep.save(path)


def _many(jobs: list, **args: object) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    return [_one(*j, **args) for j in jobs]  # type: ignore[arg-type]


def _per_recording(features: pd.DataFrame) -> pd.DataFrame:
    keys = [n for n in ("subject", "session") if n in features.index.names]
    num = features.select_dtypes(include=["number", "bool"]).astype(float)
    return num.groupby(level=keys).mean()


def _default_signals(run: RunData) -> Path | None:
    """Return the ``signals/`` folder beside the run's feature table (None when the table has no path)."""
    from cdrscreen.core.signals import signals_root

    return signals_root(run.features_path) if run.features_path is not None else None
