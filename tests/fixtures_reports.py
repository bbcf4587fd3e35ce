"""Fixtures for report tests: generated feature tables, run folders, a headless browser.

``make_feature_table`` draws a cohort whose every individual value is distinctive (many
significant digits), so a test can search a patient's report for other participants'
values. ``make_runs`` evaluates and ablates it with the real evaluation engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GROUP_COLUMNS = {
    "pupil": ["pupil__stft_h_band1", "pupil__stft_v_band1", "pupil__usable_fraction"],
    "headpose": ["headpose__pearson_r_h", "headpose__pearson_r_v", "headpose__yaw_sd"],
    "gemaps": ["gemaps__F0semitoneFrom27.5Hz_sma3nz_amean", "gemaps__loudness_sma3_amean",
               "gemaps__jitterLocal_sma3nz_amean", "gemaps__HNRdBACF_sma3nz_amean"],
    "timing": ["timing__pause_rate", "timing__mean_pause_s", "timing__speech_rate"],
}


#: What a real feature table records about its extractors (``attrs["extractors"]``), here
#: the key features patient reports place against the cohort, for the columns above.
KEY_FEATURES = {
    "gemaps": [["F0semitoneFrom27.5Hz_sma3nz_amean", "pitch (F0) mean, semitones"],
               ["loudness_sma3_amean", "loudness mean"], ["jitterLocal_sma3nz_amean", "jitter"],
               ["HNRdBACF_sma3nz_amean", "harmonics-to-noise ratio (dB)"]],
    "timing": [["pause_rate", "pauses per minute"], ["speech_rate", "speech rate (syllables/s)"]],
    "headpose": [["pearson_r_v", "pupil–head correlation, vertical"],
                 ["pearson_r_h", "pupil–head correlation, horizontal"]],
    "pupil": [],
}


def make_feature_table(n_subjects: int = 16, seed: int = 0, sessions: int = 1,
                       cdr_probs: tuple[float, float, float] = (0.45, 0.4, 0.15)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cdr = rng.choice([0.5, 1.0, 2.0], size=n_subjects, p=list(cdr_probs))
    cdr[:3] = [0.5, 1.0, 2.0]
    rows, index = [], []
    for i in range(n_subjects):
        subj = f"P{i + 1:03d}"
        age, sex = 60 + rng.uniform(0, 25), rng.choice(["F", "M"])
        mmse = float(np.clip(29 - 4 * cdr[i] + rng.normal(0, 1.5), 5, 30))
        for s in range(sessions):
            r = {}
            for g, cols in GROUP_COLUMNS.items():
                for j, c in enumerate(cols):
                    shift = 0.8 * (cdr[i] - 1) if g in ("headpose", "timing") and j == 0 else 0.0
                    r[c] = 10 * j + shift + rng.normal(0, 1) + rng.uniform(0, 1e-3)
            r["pupil__usable_fraction"] = float(np.clip(0.9 + rng.normal(0, 0.05), 0, 1))
            r.update({"meta__cdr": cdr[i], "meta__age": age, "meta__sex": sex, "meta__mmse": mmse})
            rows.append(r)
            index.append((subj, str(s + 1), f"/nonexistent/{subj}_{s + 1}.mp4"))
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["subject", "session", "file"]))
    df.attrs["extractors"] = {g: {"key_features": k, "signals": []} for g, k in KEY_FEATURES.items()}
    return df


#: A fast protocol: two learners, few bootstraps/permutations; ablation of the SVM.
TEST_PROTOCOL = {
    "name": "report_test_binary",
    "seed": 0,
    "labels": {"scheme": "binary"},
    "models": [{"name": "svm", "learner": "svm", "params": {"C": 1.0}},
               {"name": "logreg", "learner": "logreg", "params": {"C": 0.1}}],
    "statistics": {"n_bootstrap": 100, "n_permutations": 9},
    "ablation": {"model": "svm", "n_permutations": 0},
}


def make_runs(root: Path, features: pd.DataFrame, protocol: dict | None = None,
              ablation: bool = True) -> tuple[Path, Path | None]:
    """Evaluate (and ablate) ``features`` with the real engine; return the run folders."""
    from cdrscreen.evaluation import ablate, evaluate

    root.mkdir(parents=True, exist_ok=True)
    feat = root / "features.parquet"
    features.to_parquet(feat)
    proto = protocol or TEST_PROTOCOL
    evaluate(proto, feat, root / "run", progress=False)
    if ablation:
        ablate(proto, feat, root / "ablation", progress=False)
    return root / "run", (root / "ablation") if ablation else None


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(evaluate run, ablate run) of a binary LOSO protocol over 16 generated subjects."""
    root = tmp_path_factory.mktemp("reports")
    run, abl = make_runs(root, make_feature_table(16, seed=1))
    assert abl is not None
    return run, abl


@pytest.fixture(scope="session")
def built_reports(report_runs, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Study and patient reports of ``report_runs`` (study first)."""
    from cdrscreen.reports import build_reports

    run, abl = report_runs
    return build_reports(run, tmp_path_factory.mktemp("built") / "reports", ablation=abl, n_jobs=2)


# ----------------------------------------------------------------------------- browser
def ensure_chromium() -> str:
    """Path of Chromium, installing Debian's package when missing (root + apt-get only)."""
    from cdrscreen.reports.browser import find_chromium

    path = find_chromium()
    if path:
        return path
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=False, capture_output=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       check=False, capture_output=True, env=env)
        path = find_chromium()
        if path:
            return path
    pytest.fail("Chromium is needed for the report browser tests and could not be installed "
                "(Debian: apt-get install chromium; or set CDRSCREEN_CHROMIUM)")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (DevTools protocol)."""
    pytest.importorskip("websocket", reason="websocket-client (dev extra) drives Chromium")
    from cdrscreen.reports.browser import Browser

    with Browser(ensure_chromium()) as b:
        yield b
