"""Results a clinician can trust: label schemes, verdicts, honest AUC, run-folder integrity.

Everything runs the real engine (LOSO, SVM / logistic regression, bootstrap,
permutations) on generated feature tables, through ``cdrscreen`` in-process where the
user would type a command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdrscreen.cli import main
from cdrscreen.evaluation import evaluate
from cdrscreen.evaluation.protocol import load_protocol
from cdrscreen.evaluation.verdicts import NOT_DISTINGUISHABLE, baseline_test
from cdrscreen.reports import build_reports
from tests.fixtures_evaluation import make_feature_table, small_protocol

#: CDR 0, 0.5, 1, 2, 3 cycling: subject S000 has CDR 0, S001 0.5, S002 1, S003 2, S004 3, ...
CDRS = (0.0, 0.5, 1.0, 2.0, 3.0)


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, list[str]]:
    """Run ``cdrscreen ARGS`` in-process: exit status, stdout, non-empty stderr lines."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, [ln for ln in cap.err.splitlines() if ln.strip()]


def write_protocol(path: Path, **overrides: object) -> Path:
    import yaml

    base = small_protocol(models=[{"name": "lr", "learner": "logreg", "params": {"C": 0.1}}],
                          statistics={"n_bootstrap": 50, "n_permutations": 0})
    base.update(overrides)
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.fixture(scope="module")
def cdr_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdr") / "features.parquet"
    make_feature_table(20, groups={"pupil": 4, "mfcc": 4}, cdr_cycle=CDRS, signal={"pupil": 1.0},
                       seed=4).to_parquet(path)
    return path


def _subjects_with(cdrs: set[float]) -> set[str]:
    return {f"S{i:03d}" for i in range(20) if CDRS[i % 5] in cdrs}


@pytest.mark.parametrize("scheme,mapping,left_out", [
    ("cdr0_vs_impaired", None, set()),
    ("cdr05_vs_1plus", None, {0.0}),
    ("binary", None, {0.0}),  # old name of cdr05_vs_1plus
    ("cdr_3class", None, {0.0, 3.0}),
    ("cdr_4class", None, set()),
    ("custom", {0.0: "control", 2.0: "moderate+", 3.0: "moderate+"}, {0.5, 1.0}),
])
def test_label_scheme_includes_exactly_the_right_subjects_and_says_so(
        tmp_path, capsys, cdr_table, scheme, mapping, left_out):
    labels = {"scheme": scheme, **({"mapping": mapping} if mapping else {})}
    proto = write_protocol(tmp_path / "p.yaml", labels=labels)
    run = tmp_path / "run"
    code, out, err = cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", run)
    assert code == 0, err
    excluded = _subjects_with(left_out)
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["subject"]) == _subjects_with(set(CDRS)) - excluded
    inputs = json.loads((run / "inputs.json").read_text())
    assert {e["subject"] for e in inputs["excluded_subjects"]} == excluded
    assert set(pd.read_csv(run / "excluded_subjects.csv")["subject"].astype(str)) == excluded
    for cdr in left_out:  # the terminal names every left-out subject with the reason
        line = next(ln for ln in out.splitlines() if f"CDR {cdr:g} is not in label scheme" in ln)
        assert all(s in line for s in _subjects_with({cdr}))
    if not excluded:
        assert "left out" not in out
    assert inputs["label_scheme"]["name"] == load_protocol(write_protocol(tmp_path / "q.yaml", labels=labels)
                                                           ).labels.scheme


def test_left_out_subjects_are_in_the_study_report_and_named_by_report_subject(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml", labels={"scheme": "cdr_3class"})
    run = tmp_path / "run"
    assert cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", run)[0] == 0
    build_reports(run, n_jobs=1, subject="S001", study=True)
    html = (run / "reports" / "study.html").read_text()
    assert "Subjects left out of the evaluation" in html
    for s in _subjects_with({0.0, 3.0}):
        assert s in html
    assert "CDR 3 is not in label scheme" in html and "CDR 0 is not in label scheme" in html
    # a control has no patient report: the error says why, not "did you mean"
    code, _, err = cli(capsys, "report", run, "--subject", "S000")
    assert code == 2 and len(err) == 1
    assert "left out of this run: CDR 0 is not in label scheme 'cdr_3class'" in err[0]


def test_old_and_unknown_scheme_names(tmp_path):
    assert load_protocol(small_protocol(labels={"scheme": "3class"})).labels.scheme == "cdr_3class"
    from cdrscreen.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown label scheme 'cdr0_vs_impared'.*did you mean 'cdr0_vs_impaired'"):
        load_protocol(small_protocol(labels={"scheme": "cdr0_vs_impared"}))


# --- honest AUC -------------------------------------------------------------------------
def _null_cohort(seed: int) -> pd.DataFrame:
    return make_feature_table(14, groups={"a": 6, "b": 4}, cdr_cycle=(0.5, 1.0), random_labels=True, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["svm", "logreg"])
def test_shuffled_labels_give_auc_cis_including_chance(learner):
    """>= 90 % of shuffled-label cohorts must give an AUC CI that includes 0.5.

    Before the fix (Platt-calibrated probabilities, plain bootstrap CI) the SVM's CIs
    included 0.5 in about half of the shuffles and its AUC sat far below 0.5.
    """
    proto = small_protocol(models=[{"name": "m", "learner": learner}],
                           statistics={"n_bootstrap": 200, "n_permutations": 40})
    includes, plain, verdicts = [], [], []
    for i in range(20):
        res = evaluate(proto, _null_cohort(100 + i), progress=False)
        auc = res.primary["metrics"]["roc_auc"]
        includes.append(auc["ci_low"] <= 0.5 <= auc["ci_high"])
        plain.append(auc["ci_low_bootstrap"] <= 0.5 <= auc["ci_high_bootstrap"])
        verdicts.append(res.primary["verdicts"]["roc_auc"]["verdict"])
    assert np.mean(includes) >= 0.9, (np.mean(includes), np.mean(plain))
    assert np.mean([v == NOT_DISTINGUISHABLE for v in verdicts]) >= 0.9


def test_auc_is_ranked_by_decision_values_and_has_a_permutation_p():
    """The SVM's AUC comes from its intercept-free decision values and gets its own permutation p."""
    proto = small_protocol(models=[{"name": "m", "learner": "svm"}],
                           statistics={"n_bootstrap": 100, "n_permutations": 39})
    signal = make_feature_table(16, groups={"a": 4}, cdr_cycle=(0.5, 1.0), signal={"a": 2.0}, seed=1)
    res = evaluate(proto, signal, progress=False)
    m = res.primary
    assert m["metrics"]["roc_auc"]["ranked_by"] == "decision value without intercept"
    assert m["permutation"]["auc_p_value"] == pytest.approx(1 / 40)  # nothing in the null beats a real signal
    assert m["metrics"]["roc_auc"]["value"] > 0.9
    assert m["verdicts"]["roc_auc"]["verdict"] == "distinguishable from chance"
    # the ROC table ranks by the same scores: its AUC is the headline AUC
    assert res.roc["auc"].iloc[0] == pytest.approx(m["metrics"]["roc_auc"]["value"])


def test_null_cohort_report_says_not_distinguishable_from_chance(tmp_path, capsys):
    feats = tmp_path / "f.parquet"
    _null_cohort(7).to_parquet(feats)
    proto = write_protocol(tmp_path / "p.yaml", models=[{"name": "svm", "learner": "svm"}],
                           statistics={"n_bootstrap": 100, "n_permutations": 19})
    code, out, _ = cli(capsys, "evaluate", proto, "--features", feats, "--out", tmp_path / "run")
    assert code == 0
    assert "not distinguishable from chance" in out
    assert "majority baseline" in out
    build_reports(tmp_path / "run", n_jobs=1)
    html = (tmp_path / "run" / "reports" / "study.html").read_text()
    assert "not distinguishable from chance" in html
    assert "What the figures say" in html
    methods = (tmp_path / "run" / "methods.md").read_text()
    assert "not distinguishable from chance" in methods and "leave-one-subject-out" in methods


def test_binomial_test_against_the_majority_baseline():
    # the case: 0.77 accuracy against a 0.67 majority baseline is not above it
    t = baseline_test(23, 30, 0.67)
    assert t["p_value"] > 0.05
    assert baseline_test(29, 30, 0.67)["p_value"] < 0.001
    assert baseline_test(5, 5, 1.0)["p_value"] == 1.0


# --- run-folder integrity -----------------------------------------------------------------
def test_evaluate_refuses_a_non_empty_run_folder_and_overwrite_clears_it(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml")
    run = tmp_path / "run"
    run.mkdir()
    stale = run / "ablation.csv"
    stale.write_text("another study's ablation\n")
    code, _, err = cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", run)
    assert code == 2 and len(err) == 1 and str(run) in err[0] and "--overwrite" in err[0]
    assert stale.read_text() == "another study's ablation\n"
    assert sorted(p.name for p in run.iterdir()) == ["ablation.csv"]
    code, _, err = cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", run, "--overwrite")
    assert code == 0, err
    assert not stale.exists() and (run / "metrics.json").is_file()
    code, _, err = cli(capsys, "ablate", proto, "--features", cdr_table, "--out", run)
    assert code == 2 and "not empty" in err[0]


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml")
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    for out in (f, f / "run"):
        code, _, err = cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", out)
        assert code == 2 and len(err) == 1 and str(out) in err[0], err
    assert f.read_text() == "keep me"


def test_report_refuses_another_studys_ablation_and_feature_table(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml")
    other = tmp_path / "other.parquet"
    make_feature_table(20, groups={"pupil": 4, "mfcc": 4}, cdr_cycle=CDRS, seed=99).to_parquet(other)
    assert cli(capsys, "evaluate", proto, "-f", cdr_table, "-o", tmp_path / "run")[0] == 0
    assert cli(capsys, "ablate", proto, "-f", other, "-o", tmp_path / "abl_other")[0] == 0
    assert cli(capsys, "ablate", proto, "-f", cdr_table, "-o", tmp_path / "abl_same")[0] == 0
    reports = tmp_path / "run" / "reports"
    code, _, err = cli(capsys, "report", tmp_path / "run", "--ablation", tmp_path / "abl_other")
    assert code == 2 and len(err) == 1
    assert "abl_other" in err[0] and "another feature table" in err[0]
    assert not reports.exists()  # refused before anything was written
    # a feature table whose content differs from the one the run recorded is refused too
    from cdrscreen.core.errors import InputError
    from cdrscreen.reports.rundata import load_run

    with pytest.raises(InputError, match="is not the feature table run"):
        load_run(tmp_path / "run", features=other)
    code, _, err = cli(capsys, "report", tmp_path / "run", "--features", other)
    assert code == 2 and len(err) == 1 and str(other) in err[0] and "is not the feature table run" in err[0]
    assert not reports.exists()
    code, out, err = cli(capsys, "report", tmp_path / "run", "--ablation", tmp_path / "abl_same",
                         "--jobs", "1")
    assert code == 0, err
    assert (reports / "study.html").is_file()


def test_negative_svm_c_in_a_grid_is_one_line_before_work(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml", models=[{"name": "svm", "learner": "svm",
                                                          "grid": {"C": [1.0, -1.0]}}])
    code, _, err = cli(capsys, "evaluate", proto, "--features", cdr_table, "--out", tmp_path / "run")
    assert code == 2 and len(err) == 1
    assert str(proto) in err[0] and "model 'svm'" in err[0] and "C=-1.0" in err[0] and "range" in err[0]
    assert not (tmp_path / "run").exists()


def test_run_folder_has_the_paper_files(tmp_path, capsys, cdr_table):
    proto = write_protocol(tmp_path / "p.yaml", statistics={"n_bootstrap": 50, "n_permutations": 9})
    run = tmp_path / "run"
    assert cli(capsys, "evaluate", proto, "-f", cdr_table, "-o", run)[0] == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["metric"]) == {"Accuracy", "Balanced accuracy", "Macro-F1", "ROC AUC"}
    auc = metrics[metrics["metric"] == "ROC AUC"].iloc[0]
    assert 0 < auc["permutation_p"] <= 1 and isinstance(auc["verdict"], str)
    preds = pd.read_csv(run / "predictions.csv")
    assert {"subject", "y_true", "y_pred", "imputed_fraction"} <= set(preds.columns)
    md, tex = (run / "results.md").read_text(), (run / "results.tex").read_text()
    assert "| lr |" in md and r"\begin{tabular}" in tex and "lr &" in tex
    methods = (run / "methods.md").read_text()
    for needle in ("n = 4", "leave-one-subject-out", "scikit-learn", "9 permutations", "binomial"):
        assert needle in methods, needle
    env = json.loads((run / "environment.json").read_text())
    assert {"mediapipe", "opensmile", "librosa"} <= set(env["feature_packages"])
    run_json = json.loads((run / "run.json").read_text())
    assert {"predictions.csv", "metrics.csv", "methods.md", "results.tex"} <= set(run_json["files"])


def test_imputed_fraction_is_per_subject_over_the_models_inputs(tmp_path):
    df = make_feature_table(12, groups={"a": 4, "b": 6}, cdr_cycle=(0.5, 1.0), seed=2)
    df.loc[df.index.get_level_values("subject") == "S003", [f"b__f{j:02d}" for j in range(6)]] = np.nan
    res = evaluate(small_protocol(statistics={"n_bootstrap": 0, "n_permutations": 0}), df, progress=False)
    frac = res.predictions.xs(res.metrics["primary_model"], level="model")["imputed_fraction"]
    assert frac["S003"] == pytest.approx(0.6)  # 6 of 10 inputs missing
    assert (frac.drop("S003") == 0).all()


def test_citation_file_is_valid_cff_with_the_package_version():
    import tomllib

    import yaml

    root = Path(__file__).resolve().parents[1]
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert {"title", "authors", "message", "license"} <= set(cff)
    assert str(cff["version"]) == version


def test_patient_card_says_uncertain_below_the_margin_and_flags_imputed_inputs(tmp_path):
    from cdrscreen.reports.patient import agreement

    assert agreement("1+", "1+", 0.51, 2).startswith("uncertain")  # the 51 % "agrees"
    assert agreement("1+", "1+", 0.66, 2) == "agrees with the rating"
    assert agreement("1+", "0.5", 0.80, 2) == "differs from the rating"
    assert agreement("2", "2", 0.45, 3).startswith("uncertain")  # 3 classes: needs > 48 %
    df = make_feature_table(12, groups={"a": 4, "b": 6}, cdr_cycle=(0.5, 1.0), signal={"a": 1.5}, seed=2)
    df.loc[df.index.get_level_values("subject") == "S003", [f"b__f{j:02d}" for j in range(6)]] = np.nan
    feats = tmp_path / "f.parquet"
    df.to_parquet(feats)
    evaluate(small_protocol(statistics={"n_bootstrap": 20, "n_permutations": 0}), feats, tmp_path / "run",
             progress=False)
    paths = build_reports(tmp_path / "run", subject="S003", n_jobs=1)
    html = paths[0].read_text()
    assert "Imputed inputs" in html and "60%" in html
    assert "rests mostly on imputed values" in html
    other = build_reports(tmp_path / "run", subject="S004", n_jobs=1)[0].read_text()
    assert "Imputed inputs" in other and "rests mostly on imputed values" not in other
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv").set_index("subject")
    p = preds.loc["S004", [c for c in preds.columns if c.startswith("proba__")]].max()
    says_uncertain = "uncertain: the probability of class" in other
    says_agreement = "agrees with the rating" in other or "differs from the rating" in other
    assert says_uncertain == (p < 0.65) and says_agreement == (p >= 0.65)


def test_media_paths_are_recorded_in_the_run(tmp_path):
    df = make_feature_table(8, groups={"a": 3}, cdr_cycle=(0.5, 1.0), seed=5)
    subjects = df.index.get_level_values("subject")
    df["meta__video_path"] = [str(tmp_path / f"{s}.mp4") for s in subjects]
    df["meta__audio_path"] = [str(tmp_path / f"{s}.wav") for s in subjects]
    df["meta__segments_path"] = None
    feats = tmp_path / "f.parquet"
    df.to_parquet(feats)
    evaluate(small_protocol(statistics={"n_bootstrap": 0, "n_permutations": 0}), feats, tmp_path / "run",
             progress=False)
    media = {m["subject"]: m for m in json.loads((tmp_path / "run" / "inputs.json").read_text())["media"]}
    assert media["S000"]["audio"] == str(tmp_path / "S000.wav")
    assert media["S000"]["video"] == str(tmp_path / "S000.mp4") and media["S000"]["segments"] is None
    assert "meta__audio_path" not in pd.read_csv(tmp_path / "run" / "predictions.csv").columns
