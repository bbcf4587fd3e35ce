"""Fixtures for report tests: generated feature tables, run folders, a headless browser.

``make_feature_table`` draws a cohort whose every individual value is distinctive (many
significant digits), so a test can search a patient's report for other participants'
values. ``make_run_folder`` writes a run folder following ``docs/run-folder.md`` from
a real leave-one-subject-out logistic regression (scikit-learn) on that table.
"""

from __future__ import annotations

import json
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
    return df


def _loso_proba(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return cross_val_predict(clf, X, y, groups=groups, cv=LeaveOneGroupOut(), method="predict_proba")


def _metric_block(y: np.ndarray, p: np.ndarray, classes: list[str], rng: np.random.Generator) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    pred = np.array(classes)[p.argmax(1)]

    def stats(idx: np.ndarray) -> dict[str, float]:
        yt, yp, pp = y[idx], pred[idx], p[idx]
        out = {"accuracy": accuracy_score(yt, yp),
               "balanced_accuracy": balanced_accuracy_score(yt, yp),
               "macro_f1": f1_score(yt, yp, average="macro", labels=classes, zero_division=0)}
        if len(set(yt)) == len(classes):
            out["roc_auc"] = (roc_auc_score(yt == classes[1], pp[:, 1]) if len(classes) == 2
                              else roc_auc_score(yt, pp, multi_class="ovr", labels=classes))
        return out

    full = stats(np.arange(len(y)))
    boots = [stats(rng.integers(0, len(y), len(y))) for _ in range(200)]
    met = {}
    for k, v in full.items():
        vals = [b[k] for b in boots if k in b]
        met[k] = {"value": float(v), "ci_low": float(np.percentile(vals, 2.5)),
                  "ci_high": float(np.percentile(vals, 97.5))}
    met["recall"] = {c: {"value": float((pred[y == c] == c).mean()), "ci_low": None, "ci_high": None}
                     for c in classes}
    return met, pred


def make_run_folder(root: Path, features: pd.DataFrame, scheme: str = "binary", seed: int = 0,
                    ablation: bool = False) -> Path:
    """Write a run folder (docs/run-folder.md) from a real LOSO logistic regression."""
    from sklearn.metrics import confusion_matrix, roc_curve

    root.mkdir(parents=True, exist_ok=True)
    feat_path = root.parent / f"{root.name}_features.parquet"
    features.to_parquet(feat_path)
    mapping = ({0.5: "0.5", 1.0: "1+", 2.0: "1+"} if scheme == "binary" else {0.5: "0.5", 1.0: "1", 2.0: "2"})
    classes = sorted(set(mapping.values()), key=lambda s: float(s.rstrip("+")))
    ft = features
    y = ft["meta__cdr"].map(mapping).to_numpy()
    groups_arr = ft.index.get_level_values("subject").to_numpy()
    rng = np.random.default_rng(seed)
    variants = {"svm_early": list(GROUP_COLUMNS)}
    if ablation:
        variants = {"full": list(GROUP_COLUMNS)}
        for g in GROUP_COLUMNS:
            variants[f"only:{g}"] = [g]
            variants[f"drop:{g}"] = [h for h in GROUP_COLUMNS if h != g]
    preds, rowpreds, models, rocs, abl = [], [], {}, [], []
    for name, gs in variants.items():
        cols = [c for g in gs for c in GROUP_COLUMNS[g]]
        p = _loso_proba(ft[cols].to_numpy(float), y, groups_arr)
        rp = pd.DataFrame(p, columns=[f"proba__{c}" for c in classes], index=ft.index)
        rp["y_true"] = y
        sp = rp.groupby(level="subject")[[f"proba__{c}" for c in classes]].mean()
        ys = pd.Series(y, index=groups_arr).groupby(level=0).first().loc[sp.index].to_numpy()
        met, pred = _metric_block(ys, sp.to_numpy(), classes, rng)
        sub = sp.copy()
        sub["y_true"], sub["y_pred"] = ys, pred
        sub["correct"] = sub["y_true"] == sub["y_pred"]
        sub["fold"] = np.arange(len(sub))
        sub["n_rows"] = rp.groupby(level="subject").size().loc[sp.index].to_numpy()
        meta = ft.groupby(level="subject")[["meta__cdr", "meta__age", "meta__sex", "meta__mmse"]].first()
        sub = sub.join(meta)
        sub.insert(0, "model", name)
        preds.append(sub.reset_index().set_index(["model", "subject"]))
        r2 = rp.copy()
        r2["y_pred"] = np.array(classes)[p.argmax(1)]
        r2["fold"] = 0
        r2["augmented"] = False
        r2.insert(0, "model", name)
        rowpreds.append(r2.reset_index().set_index(["model", "subject", "session", "file"]))
        counts = pd.Series(ys).value_counts()
        maj = counts.index[0]
        models[name] = {
            "groups": gs, "n_subjects": len(ys), "n_rows": len(y),
            "n_per_class": {c: int(counts.get(c, 0)) for c in classes},
            "metrics": met,
            "baseline": {"majority_class": maj, "accuracy": float(counts.iloc[0] / len(ys)),
                         "balanced_accuracy": 1 / len(classes), "macro_f1": 0.3},
            "permutation": {"p_value": 0.0476, "observed": met["balanced_accuracy"]["value"],
                            "null_mean": 0.5, "null_sd": 0.1, "n": 20},
            "confusion_matrix": {"labels": classes,
                                 "matrix": confusion_matrix(ys, pred, labels=classes).tolist()},
            "chosen_params": [{"params": {"clf__C": 1.0}, "n_folds": len(ys)}],
        }
        for k, c in enumerate(classes if len(classes) > 2 else classes[1:]):
            fpr, tpr, thr = roc_curve(ys == c, sp.to_numpy()[:, classes.index(c)])
            auc = met.get("roc_auc", {}).get("value", np.nan)
            rocs.append(pd.DataFrame({"model": name, "class": c, "fpr": fpr, "tpr": tpr,
                                      "threshold": thr, "auc": auc}))
        if ablation:
            kind = "full" if name == "full" else ("single" if name.startswith("only:") else "leave_one_out")
            row = {"variant": name, "kind": kind, "groups": "+".join(gs), "n_groups": len(gs),
                   "dropped": name.split(":")[1] if kind == "leave_one_out" else None}
            for m in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
                mm = met.get(m, {"value": np.nan, "ci_low": np.nan, "ci_high": np.nan})
                row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = mm["value"], mm["ci_low"], mm["ci_high"]
            row["p_value"] = np.nan
            abl.append(row)
    pd.concat(preds).to_parquet(root / "predictions.parquet")
    pd.concat(rowpreds).to_parquet(root / "row_predictions.parquet")
    pd.concat(rocs, ignore_index=True).to_parquet(root / "roc.parquet")
    primary = next(iter(models))
    metrics = {"protocol": f"cdr_{scheme}_loso", "classes": classes,
               "positive_class": classes[1] if len(classes) == 2 else None,
               "primary_model": primary, "unit": "subject",
               "bootstrap": {"n": 200, "ci": 0.95, "method": "percentile", "seed": seed},
               "permutation": {"n": 20, "metric": "balanced_accuracy", "scope": "whole nested procedure"},
               "models": models, "comparisons": []}
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    if ablation:
        ab = pd.DataFrame(abl)
        full_v = ab.loc[ab["variant"] == "full", "balanced_accuracy"].iloc[0]
        ab["delta_vs_full"] = ab["balanced_accuracy"] - full_v
        ab["rank"] = ab["balanced_accuracy"].rank(ascending=False, method="first").astype(int)
        ab.sort_values("rank").to_parquet(root / "ablation.parquet")
    (root / "protocol.yaml").write_text(
        f"name: cdr_{scheme}_loso\nfeatures:\n  groups: [{', '.join(GROUP_COLUMNS)}]\n"
        f"labels:\n  column: meta__cdr\n  scheme: {scheme}\nseed: {seed}\n")
    (root / "environment.json").write_text(json.dumps(
        {"python": "3.11", "packages": {"cdrscreen": "0.1.0", "scikit-learn": "1.6"}}))
    (root / "inputs.json").write_text(json.dumps(
        {"features": {"path": str(feat_path), "sha256": "0" * 64, "n_rows": len(ft),
                      "n_subjects": int(ft.index.get_level_values('subject').nunique()),
                      "n_columns": ft.shape[1]},
         "groups": GROUP_COLUMNS, "label_column": "meta__cdr",
         "excluded_rows": {"unmapped_label": 0, "missing_label": 0}}))
    (root / "run.json").write_text(json.dumps({"kind": "ablate" if ablation else "evaluate",
                                               "finished": "2026-01-01T00:00:00"}))
    return root


@pytest.fixture(scope="session")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary LOSO run folder (with ablation variants) over 16 generated subjects."""
    root = tmp_path_factory.mktemp("reports") / "run"
    return make_run_folder(root, make_feature_table(16, seed=1), ablation=True)


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
