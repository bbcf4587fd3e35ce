"""Reports opened in headless Chromium: every figure decodes, nothing overflows.

Each report is loaded at 1280 px (screen) and at A4 print width (print style sheet,
704 px = 210 mm minus the 12 mm page margins); full-page screenshots are saved under
``test-artefacts/reports/`` for people to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ARTEFACTS

SHOTS = ARTEFACTS / "reports"
VIEWS = (("screen", 1280, "screen"), ("a4", 704, "print"))


def check_page(browser, html: Path, name: str) -> dict:
    """Open ``html`` in every view, save screenshots, assert images and layout; return the
    screen view's findings."""
    found = {}
    for view, width, media in VIEWS:
        r = browser.open(html, width=width, media=media)
        browser.screenshot(SHOTS / f"{name}-{view}.png")
        broken = [i for i in r["images"] if not i["ok"]]
        assert not broken, f"{html.name} ({view}): images not loaded: {broken}"
        assert not r["overflows"], f"{html.name} ({view}): overflowing elements: {r['overflows'][:5]}"
        assert r["pageScrollWidth"] <= r["viewportWidth"], f"{html.name} ({view}) scrolls sideways"
        found[view] = r
    return found["screen"]


def test_checker_catches_broken_pages(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        '<img alt="broken" src="data:image/png;base64,AAAA">'
        '<div style="width:200px"><pre style="white-space:pre">' + "x" * 400 + "</pre></div>"
        "</body></html>"
    )
    r = browser.open(page, width=800)
    assert [i["alt"] for i in r["images"] if not i["ok"]] == ["broken"]
    assert any(o["el"].startswith("pre") for o in r["overflows"])


def test_generated_reports_in_chromium(browser, built_reports):
    study, *patients = built_reports
    r = check_page(browser, study, "study")
    assert len(r["images"]) >= 5 and r["title"].startswith("Study report")
    for p in patients[:2]:
        r = check_page(browser, p, f"patient-{p.stem}")
        assert len(r["images"]) >= 3
        assert all(i["shownWidth"] > 0 for i in r["images"])


@pytest.mark.slow
def test_demo_cohort_reports_in_chromium(browser, demo_cohort_small, fer_embedder_onnx, tmp_path,
                                        monkeypatch):
    """Demo cohort -> real features (incl. an exported expression embedder) -> real
    evaluation -> reports with per-frame plots."""
    from cdrscreen.evaluation import evaluate
    from cdrscreen.extract import extract_study
    from cdrscreen.reports import SYNTHETIC_BANNER, build_reports

    feats = tmp_path / "features.parquet"
    monkeypatch.setenv("CDRSCREEN_EXPR_EMBEDDER", str(fer_embedder_onnx))
    extract_study(demo_cohort_small, "pupil,headpose,gemaps,timing,expr", feats,
                  cache_dir=tmp_path / "cache", n_jobs=1, progress=False)  # env reaches no reused worker
    proto = {"name": "demo_binary", "seed": 0, "labels": {"scheme": "binary"},
             "models": [{"name": "logreg", "learner": "logreg", "params": {"C": 0.1}}],
             "statistics": {"n_bootstrap": 50, "n_permutations": 0}}
    evaluate(proto, feats, tmp_path / "run", progress=False)
    paths = build_reports(tmp_path / "run", n_jobs=2, min_class_n=2)  # 2 subjects per class here
    study, *patients = paths
    assert len(patients) == 6
    r = check_page(browser, study, "demo-study")
    assert SYNTHETIC_BANNER in study.read_text()
    html = patients[0].read_text()
    for title in ("Face tracking over time", "Pupil trajectory and its superposed spectrum",
                  "Head pose over time", "Pupil and head movement together",
                  "Speech and pauses over time", "This recording against the cohort",
                  "Expression timeline"):
        assert f"<h3>{title}</h3>" in html, title
    r = check_page(browser, patients[0], f"demo-patient-{patients[0].stem}")
    assert len(r["images"]) >= 8


def test_print_to_pdf(browser, built_reports, tmp_path):
    import re

    from cdrscreen.reports.browser import A4_WIDTH_PX

    browser.open(built_reports[0], width=A4_WIDTH_PX, media="print")
    pdf = browser.print_pdf(tmp_path / "study.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    assert pages >= 3  # the study report spans several A4 pages


def test_verdicts_and_suppressed_small_cells_in_chromium(browser, tmp_path):
    """A null study with a 1-person and a 2-person CDR class and two controls left out.

    The screenshot (``test-artefacts/reports/study-verdicts-screen.png``) must show the
    verdict lines, "n < 3" instead of those classes' age/MMSE summaries, and the
    left-out subjects with the reason.
    """
    from cdrscreen.evaluation import evaluate
    from cdrscreen.reports import build_reports
    from tests.fixtures_evaluation import make_feature_table

    cdrs = [0.5] * 6 + [1.0] * 5 + [2.0] * 2 + [3.0] + [0.0] * 2
    df = make_feature_table(len(cdrs), groups={"pupil": 4, "mfcc": 4}, cdr_cycle=tuple(cdrs), seed=11,
                            random_labels=False)
    rng = np.random.default_rng(0)  # labels unrelated to the features: a null study
    df[[c for c in df.columns if not c.startswith("meta__")]] = rng.normal(size=(len(df), 8))
    ages = {f"S{i:03d}": 60.0 + 1.37 * i for i in range(len(cdrs))}
    df["meta__age"] = [ages[s] for s in df.index.get_level_values("subject")]
    feats = tmp_path / "features.parquet"
    df.to_parquet(feats)
    proto = {"name": "null_study", "labels": {"scheme": "cdr05_vs_1plus"},
             "models": [{"name": "svm", "learner": "svm"}],
             "statistics": {"n_bootstrap": 100, "n_permutations": 19}}
    evaluate(proto, feats, tmp_path / "run", progress=False)
    study = build_reports(tmp_path / "run", n_jobs=1)[0]
    check_page(browser, study, "study-verdicts")
    text = browser.evaluate("document.body.innerText")
    assert "What the figures say" in text
    assert "not distinguishable from chance" in text
    assert "majority baseline" in text
    assert "n < 3" in text and "Cells with fewer than 3 people are not summarised" in text
    # the 1-person CDR 3 class and the 2-person CDR 2 class give no age away
    for subject in ("S013", "S011", "S012"):
        assert f"{ages[subject]:.1f}" not in text
    assert "Subjects left out of the evaluation" in text and "CDR 0 is not in label scheme" in text
    assert (SHOTS / "study-verdicts-screen.png").stat().st_size > 10_000
