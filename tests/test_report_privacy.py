"""A patient's report contains no other participant's individual values (docs/reports.md).

Three checks on reports built from a real evaluation run:

* other participants' ids never appear;
* a sentinel value planted in another participant's features (or probabilities) never
  appears, while the same sentinel planted in the patient's own features does (control);
* the report is a function of the patient's own data and class aggregates only: shuffling
  which other participant has which features and predictions (within a class) leaves the
  patient's report byte-identical, while changing one of the patient's own values does not.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from cdrscreen.reports import build_patient_report, load_run
from cdrscreen.reports.api import cohort_summaries

SUBJECT = "P004"
SENTINEL = 987654.321
SENTINEL_FORMS = ("987654", "9.88e+05", "9.877e+05", "9.8765e+05", "987,654", "988k")


def _visible(html: str) -> str:
    """The HTML without embedded image data (the text a reader and a search can see)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def _patient_html(run, subject=SUBJECT, ablation=None) -> str:
    key, cohort = cohort_summaries(run)
    rep = build_patient_report(run, subject, "1", cohort, key, ablation=ablation)
    return rep.render()


@pytest.fixture(scope="module")
def runs(report_runs):
    run_dir, abl_dir = report_runs
    run = load_run(run_dir)
    return run, load_run(abl_dir, features=run.features)


def test_other_ids_never_appear(built_reports):
    patients = [p for p in built_reports if p.parent.name == "patients"]
    assert len(patients) == 16
    ids = {p.stem for p in patients}
    for p in patients:
        text = _visible(p.read_text())
        assert re.search(rf"\b{p.stem}\b", text)  # control: its own id is there
        others = {i for i in ids - {p.stem} if re.search(rf"\b{i}\b", text)}
        assert not others, f"{p.name} names other subjects {sorted(others)}"


def _plant(run, subject, column, value):
    r = copy.copy(run)
    ft = run.features.copy()
    ft.loc[ft.index.get_level_values("subject") == subject, column] = value
    r.features = ft
    return r


def test_sentinel_in_another_subject_never_appears(runs):
    run, abl = runs
    col = "gemaps__loudness_sma3_amean"
    own_cdr = run.features.xs(SUBJECT, level="subject")["meta__cdr"].iloc[0]
    same_class = [s for s, c in run.features.groupby(level="subject")["meta__cdr"].first().items()
                  if c == own_cdr and s != SUBJECT]
    other = same_class[0]
    text = _visible(_patient_html(_plant(run, other, col, SENTINEL), ablation=abl))
    assert not any(f in text for f in SENTINEL_FORMS)
    # control: planted in the patient's own row, the value is shown
    text = _visible(_patient_html(_plant(run, SUBJECT, col, SENTINEL), ablation=abl))
    assert any(f in text for f in SENTINEL_FORMS)


def test_other_subjects_probabilities_never_appear(runs):
    run, abl = runs
    r = copy.copy(run)
    preds = run.predictions.copy()
    others = preds.index.get_level_values("subject") != SUBJECT
    cls = run.classes
    preds.loc[others, f"proba__{cls[0]}"] = 0.123456
    preds.loc[others, f"proba__{cls[1]}"] = 0.876544
    r.predictions = preds
    text = _visible(_patient_html(r, ablation=abl))
    for token in ("0.123", "12.3%", "0.877", "87.7%"):
        assert token not in text
    # whole-percent forms ("12%") can occur legitimately in cohort figures, so check instead
    # that the visible report does not change at all when other subjects' probabilities do
    assert text == _visible(_patient_html(run, ablation=abl))


def _shuffle_others(run, seed):
    """Reassign other subjects' feature rows and prediction rows among subjects of the same class."""
    rng = np.random.default_rng(seed)
    r = copy.copy(run)
    ft = run.features.copy()
    subj = ft.index.get_level_values("subject")
    cdr = ft.groupby(level="subject")["meta__cdr"].first()
    preds = run.predictions.copy()
    pcols = [c for c in preds.columns if c.startswith("proba__") or c in ("y_pred", "correct")]
    for _, group in cdr[cdr.index != SUBJECT].groupby(cdr[cdr.index != SUBJECT]):
        names = list(group.index)
        perm = list(rng.permutation(names))
        if names == perm:
            perm = perm[1:] + perm[:1]
        vals = {s: ft.loc[subj == s].to_numpy(copy=True) for s in names}
        for s, t in zip(names, perm, strict=True):
            ft.loc[subj == s] = vals[t]
        for model in preds.index.get_level_values("model").unique():
            block = {s: preds.loc[(model, s), pcols].copy() for s in names}
            for s, t in zip(names, perm, strict=True):
                preds.loc[(model, s), pcols] = block[t].to_numpy()
    r.features, r.predictions = ft, preds
    return r


def test_report_depends_only_on_own_data_and_aggregates(runs):
    run, abl = runs
    base = _patient_html(run, ablation=abl)
    assert _patient_html(run, ablation=abl) == base  # deterministic
    shuffled = _shuffle_others(run, 0)
    assert not shuffled.features.equals(run.features)  # the shuffle did change who has what
    assert _patient_html(shuffled, ablation=abl) == base
    # control: the patient's own value changes the report
    col = "timing__pause_rate"
    own = run.features.xs(SUBJECT, level="subject")[col].iloc[0]
    assert _patient_html(_plant(run, SUBJECT, col, own + 1.0), ablation=abl) != base


def test_small_classes_show_only_their_count(runs):
    run, _ = runs
    key, cohort = cohort_summaries(run)
    n2 = int((run.features.groupby(level="subject")["meta__cdr"].first() == 2.0).sum())
    assert 0 < n2 < 5
    for d in cohort.values():
        c2 = next(c for c in d.classes if c.label == "CDR 2")
        assert c2.suppressed and c2.mean is None and c2.n == n2
    text = _visible(_patient_html(run))
    assert f"n={n2}, too few to show" in text
