"""Does the pipeline recover what the demo cohort planted? Measured against ground truth.

:func:`expression_recovery` compares the ``expr`` features of every demo recording with the
smile episodes planted in it (``ground_truth/subjects.csv``): Pearson r across subjects of

- the smoothed happy-episode rate (``expr__episode_rate_happy``, per minute) with the
  planted smile-episode rate (``planted_smile_rate``), and
- the smoothed happy fraction (``expr__hist_happy``) with the planted fraction of frames
  smiling at intensity > 0.25 (``planted_smile_fraction``),

plus class means per CDR. SYNTHETIC data: this checks the pipeline, nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: (measured expr column, planted subjects.csv column) pairs that are compared.
PAIRS: tuple[tuple[str, str], ...] = (
    ("expr__episode_rate_happy", "planted_smile_rate"),
    ("expr__hist_happy", "planted_smile_fraction"),
)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def expression_recovery(features: str | Path | pd.DataFrame, cohort_dir: str | Path) -> dict[str, Any]:
    """Correlate measured expression features with the planted smile episodes.

    Parameters
    ----------
    features : path or DataFrame
        The demo's feature table (Parquet), indexed by ``(subject, session, file)``.
    cohort_dir : path
        The demo cohort folder (holds ``ground_truth/subjects.csv``).

    Returns
    -------
    dict
        ``n_subjects``; per pair ``r_<measured>`` (Pearson r across subjects); ``class_means``
        (per CDR class: measured and planted means); ``per_subject`` rows.
    """
    df = pd.read_parquet(features) if not isinstance(features, pd.DataFrame) else features
    truth = pd.read_csv(Path(cohort_dir) / "ground_truth" / "subjects.csv")
    subj = df.index.get_level_values("subject") if "subject" in (df.index.names or []) else df["subject"]
    cols = [m for m, _ in PAIRS if m in df.columns]
    meas = pd.DataFrame({c: df[c].to_numpy(float) for c in cols}, index=pd.Index(subj, name="subject"))
    meas = meas.groupby(level=0).mean()
    merged = truth.set_index("subject").join(meas, how="inner")
    out: dict[str, Any] = {"n_subjects": int(len(merged))}
    for m, p in PAIRS:
        if m in merged and p in merged:
            out[f"r_{m}"] = _pearson(merged[m].to_numpy(float), merged[p].to_numpy(float))
    keep = [c for pair in PAIRS for c in pair if c in merged]
    out["class_means"] = {str(k): {c: float(v) for c, v in g[keep].mean().items()}
                          for k, g in merged.groupby("cdr")}
    out["per_subject"] = merged[["cdr", *keep]].reset_index().to_dict(orient="records")
    return out
