"""Report builder, figure helpers and cohort summaries (no run folder needed)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.reports import RESEARCH_CAUTION, Report
from cdrscreen.reports import figures as F
from cdrscreen.reports.cohort import summarize_cohort, summarize_feature


def _line_figure() -> Figure:
    fig = Figure(figsize=(4, 3))
    fig.subplots().plot([0, 1, 2], [1, 0, 1])
    return fig


def _images(html: str) -> list[Image.Image]:
    out = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        out.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return out


def test_report_is_self_contained_and_sized(tmp_path):
    rep = Report("Title", subtitle="sub")
    rep.add_figure(_line_figure(), "Line", section="A")
    rep.add_figure_row([_line_figure(), _line_figure()], "Two", labels=["x", "y"], section="B")
    rep.add_table(pd.DataFrame({"a": [1, 2], "b": [0.123456, np.nan]}), "T", section="B")
    path = rep.save(tmp_path / "r.html")
    html = path.read_text()
    imgs = _images(html)
    assert len(imgs) == 3
    # declared width/height match the embedded PNG (stable layout before decoding)
    declared = [tuple(map(int, m)) for m in re.findall(r'<img src="data:[^"]+" width="(\d+)" height="(\d+)"', html)]
    assert declared == [im.size for im in imgs]
    # nothing is fetched: no external URLs, stylesheets or scripts
    assert not re.search(r"https?://", html)
    assert "<link" not in html and "<script" not in html
    assert re.findall(r'src="([^"]{0,11})', html) == ["data:image/"] * 3
    assert RESEARCH_CAUTION in html
    assert '<a href="#a">A</a>' in html and '<section id="b">' in html
    assert "0.123" in html and "–" in html  # float format and NaN dash


def test_text_is_escaped():
    rep = Report("<script>alert(1)</script>")
    rep.add_key_values({"<b>": "<i>x</i>"}, "kv")
    html = rep.render()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html and "&lt;i&gt;x&lt;/i&gt;" in html


def test_builder_errors(tmp_path):
    rep = Report("x")
    with pytest.raises(CdrscreenError, match="unknown text level"):
        rep.add_text("hi", level="shout")
    with pytest.raises(CdrscreenError, match="2 figures but 1 labels"):
        rep.add_figure_row([_line_figure(), _line_figure()], "t", labels=["a"])
    path = rep.save(tmp_path / "r.html")
    with pytest.raises(CdrscreenError, match="already exists"):
        rep.save(path, overwrite=False)


def test_caution_can_be_removed_but_is_default():
    assert RESEARCH_CAUTION not in Report("x", caution=None).render()
    assert "not a diagnosis" in Report("x").render()


def test_confusion_matrix_annotations():
    fig = F.confusion_matrix_figure(np.array([[5, 2], [1, 7]]), ["0.5", "1+"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5\n71%", "2\n29%", "1\n12%", "7\n88%"]


def test_roc_and_interval_figures():
    fig = F.roc_figure([{"label": "1+", "fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1], "auc": 0.7}])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "1+ (AUC 0.70)" in labels
    tab = pd.DataFrame({"label": ["full", "only:pupil"], "value": [0.7, 0.6],
                        "ci_low": [0.5, 0.4], "ci_high": [0.85, 0.8]})
    fig = F.interval_figure(tab, reference=0.5, highlight=["full"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["full", "only:pupil"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [0.5, 0.5]


def test_summaries_follow_the_privacy_rule():
    rng = np.random.default_rng(0)
    v = rng.normal(10, 2, 30)
    labels = ["a"] * 26 + ["b"] * 4
    d = summarize_feature(v, labels, ["a", "b"], "f", label_format="{}", min_class_n=5)
    a, b = d.classes
    assert not a.suppressed and b.suppressed
    assert b.mean is None and b.density is None and b.n == 4
    assert a.mean == pytest.approx(v[:26].mean()) and a.sd == pytest.approx(v[:26].std(ddof=1))
    # the grid is mean ± 4 SD of the pooled cohort, never its extremes
    assert d.grid[0] == pytest.approx(v.mean() - 4 * v.std(ddof=1))
    assert d.grid[-1] == pytest.approx(v.mean() + 4 * v.std(ddof=1))
    assert not np.isin(np.round(d.grid, 9), np.round(v, 9)).any()
    area = np.trapz(  # noqa: NPY201 (numpy < 2 pinned)
        a.density, d.grid)
    assert area == pytest.approx(1.0, abs=0.02)
    # bandwidth floor: no single value shows as its own bump (density is unimodal here)
    peaks = np.sum((a.density[1:-1] > a.density[:-2]) & (a.density[1:-1] > a.density[2:]))
    assert peaks <= 2


def test_summarize_cohort_skips_missing_columns_and_nan():
    df = pd.DataFrame({"meta__cdr": [0.5] * 6 + [1.0] * 6, "x__a": [1.0, 2, 3, np.nan, 5, 6] + list(range(6))})
    out = summarize_cohort(df, ["x__a", "x__missing"])
    assert list(out) == ["x__a"]
    assert [c.n for c in out["x__a"].classes] == [5, 6]
    assert [c.label for c in out["x__a"].classes] == ["CDR 0.5", "CDR 1"]


def test_cohort_figure_takes_only_aggregates():
    df = pd.DataFrame({"meta__cdr": [0.5] * 8 + [1.0] * 8 + [2.0] * 2,
                       "g__x": np.linspace(0, 1, 18), "g__y": np.linspace(5, 9, 18)})
    dists = list(summarize_cohort(df, ["g__x", "g__y"]).values())
    fig = F.cohort_position_figure(dists, {"g__x": 0.4, "g__y": 100.0})
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["CDR 0.5", "CDR 1", "CDR 2", "this recording"]
    # the suppressed class (n=2) draws nothing: two classes x two features of curves
    assert len([line for line in ax.get_lines() if len(line.get_xdata()) > 2]) == 4
    # an out-of-range patient value is clipped to the axis and flagged
    assert any(t.get_text() == "beyond axis" for t in ax.texts)
    # no scatter of points: only lines, fills and class-mean markers
    assert not ax.collections or all(type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
                                     for c in ax.collections)


def test_key_features_cover_every_group():
    from cdrscreen.features.gemaps import GeMAPSExtractor
    from cdrscreen.features.headpose import HeadPoseExtractor
    from cdrscreen.features.pupil import PupilExtractor
    from cdrscreen.features.timing import TimingExtractor
    from cdrscreen.reports.patient import select_key_features

    cols = ["gemaps__F0semitoneFrom27.5Hz_sma3nz_amean", "gemaps__loudness_sma3_amean",
            "gemaps__jitterLocal_sma3nz_amean", "gemaps__shimmerLocaldB_sma3nz_amean",
            "gemaps__HNRdBACF_sma3nz_amean", "timing__pause_rate_per_min", "timing__pause_mean_s",
            "timing__speech_rate_syl_per_s", "headpose__corr_vel_v_r", "headpose__corr_vel_h_r",
            "pupil__saccade_rate_per_min", "meta__cdr"]
    # the hints are what the extractors declare (the feature table records them)
    hints = [(f"{ex.prefix}__{c}", name) for ex in (GeMAPSExtractor, TimingExtractor, HeadPoseExtractor,
                                                      PupilExtractor) for c, name in ex.key_features]
    chosen = select_key_features(cols, max_n=4, hints=hints)
    assert {c.split("__")[0] for c, _ in chosen} == {"gemaps", "timing", "headpose", "pupil"}
    assert dict(chosen)["timing__pause_rate_per_min"] == "pauses per minute"
    assert "meta__cdr" not in [c for c, _ in select_key_features(cols, hints=hints)]
    # without hints (a table that records no extractors) every group still shows its first column
    assert {c.split("__")[0] for c, _ in select_key_features(cols, max_n=4)} == {
        "gemaps", "timing", "headpose", "pupil"}
