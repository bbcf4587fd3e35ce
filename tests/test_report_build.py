"""build_reports / load_run / the report CLI on real evaluation runs."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from cdrscreen.cli import main
from cdrscreen.core.errors import InputError
from cdrscreen.reports import RESEARCH_CAUTION, build_reports, load_run
from cdrscreen.reports.api import patient_filename


def _text(path) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())


def test_study_report_contents(built_reports, report_runs):
    run_dir, _ = report_runs
    study = built_reports[0]
    assert study.name == "study.html"
    html = _text(study)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert RESEARCH_CAUTION in html
    assert metrics["protocol"] in html
    svm = metrics["models"]["svm"]["metrics"]["balanced_accuracy"]
    assert f"{svm['value']:.2f} [{svm['ci_low']:.2f}, {svm['ci_high']:.2f}]" in html
    p = metrics["models"]["svm"]["permutation"]["p_value"]
    assert f"{p:.3g}" in html
    for section in ("Cohort", "Data quality", "Results", "Model comparison", "Ablation", "Provenance"):
        assert f"<h2>{section}</h2>" in html
    sha = json.loads((run_dir / "inputs.json").read_text())["features"]["sha256"]
    assert sha in html
    assert "drop:pupil" in html and "only:timing" in html  # the ablation table
    # one confusion matrix + ROC per protocol model (not per ablation variant)
    assert html.count("<figcaption>Confusion matrix (subjects") == 2
    assert "mcnemar" in html


def test_patient_reports_one_per_subject(built_reports, report_runs):
    run = load_run(report_runs[0])
    patients = [p for p in built_reports if p.parent.name == "patients"]
    subjects = sorted(run.subject_predictions().index)
    assert sorted(p.stem for p in patients) == subjects
    preds = run.subject_predictions()
    for p in patients[:4]:
        html = _text(p)
        assert RESEARCH_CAUTION in html
        row = preds.loc[p.stem]
        assert f"class {row['y_pred']}" in html
        assert "Feature groups behind this prediction" in html  # from the ablation run
        assert "This recording against the cohort" in html


def test_subject_option_and_unknown_subject(report_runs, tmp_path):
    run_dir, _ = report_runs
    paths = build_reports(run_dir, tmp_path, subject="P003", n_jobs=1)
    assert [p.name for p in paths] == ["P003.html"]
    assert not (tmp_path / "study.html").exists()
    with pytest.raises(InputError, match=r"no prediction for subject 'Q003'.*did you mean 'P003'"):
        build_reports(run_dir, tmp_path, subject="Q003")


def test_reports_are_deterministic(report_runs, tmp_path):
    run_dir, _ = report_runs
    a = build_reports(run_dir, tmp_path / "a", subject="P005", study=True, n_jobs=1)
    b = build_reports(run_dir, tmp_path / "b", subject="P005", study=True, n_jobs=1)
    assert [x.read_bytes() for x in a] == [y.read_bytes() for y in b]


def test_bad_run_folders(report_runs, tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_run(tmp_path / "missing")
    broken = tmp_path / "broken"
    shutil.copytree(report_runs[0], broken)
    (broken / "metrics.json").unlink()
    with pytest.raises(InputError, match=r"metrics\.json: missing from the run folder"):
        load_run(broken)
    shutil.copy(report_runs[0] / "metrics.json", broken / "metrics.json")
    (broken / "predictions.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"predictions\.parquet: cannot be read as Parquet"):
        load_run(broken)


def test_missing_feature_table_still_reports(report_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report_runs[0], run_dir)
    inputs = json.loads((run_dir / "inputs.json").read_text())
    inputs["features"]["path"] = str(tmp_path / "moved.parquet")
    (run_dir / "inputs.json").write_text(json.dumps(inputs))
    paths = build_reports(run_dir, subject="P002", study=True, n_jobs=1)
    assert [p.name for p in paths] == ["study.html", "P002.html"]
    html = _text(paths[1])
    assert "This recording against the cohort" not in html
    assert "class " in html  # the prediction is still there


def test_patient_file_names():
    assert patient_filename("S 01/x", "1", 1) == "S_01_x.html"
    assert patient_filename("S01", "baseline", 2) == "S01_ses-baseline.html"


def test_cli_report(report_runs, tmp_path, capsys):
    run_dir, abl_dir = report_runs
    rc = main(["report", str(run_dir), "--subject", "P001", "--out", str(tmp_path),
               "--ablation", str(abl_dir), "--jobs", "1"])
    assert rc == 0
    assert (tmp_path / "patients" / "P001.html").exists()
    assert "patient reports: 1" in capsys.readouterr().out
    rc = main(["report", str(tmp_path / "nope")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope: not a folder" in err and "Traceback" not in err


def test_one_report_per_session(tmp_path):
    from tests.fixtures_reports import make_feature_table, make_runs

    proto = {"name": "sessions", "seed": 0, "labels": {"scheme": "binary"},
             "models": [{"name": "logreg", "learner": "logreg", "params": {"C": 0.1}}],
             "statistics": {"n_bootstrap": 20, "n_permutations": 0}}
    run_dir, _ = make_runs(tmp_path, make_feature_table(8, seed=3, sessions=2), proto, ablation=False)
    paths = build_reports(run_dir, subject="P002", n_jobs=1)
    assert [p.name for p in paths] == ["P002_ses-1.html", "P002_ses-2.html"]
    one, two = (_text(p) for p in paths)
    assert "subject P002, session 1" in one and "subject P002, session 2" in two
    assert "This session" in one and "(this session)" in two


def test_three_class_run(tmp_path):
    from tests.fixtures_reports import make_feature_table, make_runs

    proto = {"name": "three", "seed": 0, "labels": {"scheme": "3class"},
             "models": [{"name": "logreg", "learner": "logreg", "params": {"C": 0.1}}],
             "statistics": {"n_bootstrap": 20, "n_permutations": 0}}
    run_dir, _ = make_runs(tmp_path, make_feature_table(12, seed=2, cdr_probs=(0.34, 0.33, 0.33)), proto,
                           ablation=False)
    study, patient = build_reports(run_dir, subject="P001", study=True, n_jobs=1)
    html = _text(study)
    assert "<figcaption>ROC curve from out-of-fold subject scores (ranked by probability)" in html  # one-vs-rest
    assert html.count("recall of class") == 3
    text = _text(patient)
    assert re.search(r"Probability of class (0\.5|1|2)", text)
