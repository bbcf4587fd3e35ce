"""Demo facial expressions: landmark warps, planted smile episodes, the synthetic expression set,
the demo expression model and the planted-vs-measured recovery check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.demo.expressions import (
    CONTROLS,
    EXPRESSIONS,
    ExpressionParams,
    control_basis,
    expression_controls,
    expression_trajectories,
    face_axes,
    plant_episodes,
)
from cdrscreen.demo.trajectories import Trajectories

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def astronaut():
    from cdrscreen.demo.faces import load_face

    return load_face("astronaut", (320, 240))


def _mouth_lift(lm: np.ndarray) -> float:
    """How far the mouth corners sit above the lip midpoints (pixels, along the face's up axis)."""
    _c, _u, v = face_axes(lm)
    corners = (lm[61, :2] + lm[291, :2]) / 2
    middle = (lm[13, :2] + lm[14, :2]) / 2
    return float((middle - corners) @ v)


def test_smile_basis_moves_corners_up_and_out_even_when_mirrored(astronaut):
    from cdrscreen.demo.faces import load_face

    for face in (astronaut, load_face("astronaut", (320, 240), mirror=True)):
        lm = face.landmarks
        basis = control_basis(lm, lm[:468, :2], face.face_width)
        smile = basis[CONTROLS.index("smile")]
        centre, u, v = face_axes(lm)
        for idx in (61, 291):
            d = smile[idx]
            assert d @ v < -0.03 * face.face_width  # up
            assert (d @ u) * np.sign((lm[idx, :2] - centre) @ u) > 0.02 * face.face_width  # out
        assert np.abs(smile[10]).max() < 0.005 * face.face_width  # forehead top stays
        brow = basis[CONTROLS.index("brow_raise")]
        assert brow[105] @ v < -0.04 * face.face_width


def test_rendered_smile_is_seen_by_mediapipe(astronaut):
    """Real MediaPipe on rendered frames: a full smile lifts the mouth corners, a frown lowers them."""
    from cdrscreen.demo.faces import detect_landmarks
    from cdrscreen.demo.render import render_frames

    lifts = {}
    for name in ("neutral", "happy", "sad"):
        frames, _gt = render_frames(astronaut, Trajectories.constant(1, **expression_controls(name, 1.0)))
        lm = detect_landmarks(frames[0])
        assert lm is not None, name
        lifts[name] = _mouth_lift(lm)
    assert lifts["happy"] > lifts["neutral"] + 3.0
    assert lifts["sad"] < lifts["neutral"] - 2.0


def test_expression_controls_and_trajectory_bounds():
    assert expression_controls("surprise", 0.5) == {"brow_raise": 0.5, "mouth_open": EXPRESSIONS["surprise"]["mouth_open"] / 2}
    with pytest.raises(CdrscreenError, match="unknown demo expression 'smug'"):
        expression_controls("smug")
    with pytest.raises(CdrscreenError, match="'smile'"):
        Trajectories.constant(3, smile=1.5)
    assert Trajectories.constant(3).smile.tolist() == [0.0, 0.0, 0.0]


def test_plant_episodes_rate_shape_and_determinism():
    fps, n = 25.0, 25 * 60
    counts = []
    for seed in range(40):
        v, eps = plant_episodes(n, fps, 8.0, 0.8, np.random.default_rng(seed))
        counts.append(len(eps))
        assert v.min() >= 0 and v.max() <= 1
        for (_s0, e0, _peak), (s1, _e1, _p) in zip(eps, eps[1:], strict=False):
            assert s1 - e0 >= 1.0 - 1e-9  # 1 s apart
        for s0, e0, peak in eps:
            seg = v[int(round(s0 * fps)):int(round(e0 * fps))]
            assert 1.2 - 0.05 <= e0 - s0 <= 2.6 + 0.05
            assert seg.max() == pytest.approx(peak)
        assert ((v > 0).sum() / fps) <= sum(e - s for s, e, _ in eps) + 1e-9
    assert 6.5 < np.mean(counts) < 9.5  # Poisson(8) per minute, a few dropped when crowded
    a, _ = plant_episodes(n, fps, 8.0, 0.8, np.random.default_rng(3))
    b, _ = plant_episodes(n, fps, 8.0, 0.8, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_expression_trajectories_report_what_was_planted():
    ctrl, real, eps = expression_trajectories(ExpressionParams(smile_rate=10, brow_rate=4), 400, 25.0,
                                              np.random.default_rng(1))
    assert real["n_smiles"] == len(eps["smile"])
    assert real["planted_smile_rate"] == pytest.approx(len(eps["smile"]) / (16 / 60))
    assert real["planted_smile_fraction"] == pytest.approx(float((ctrl["smile"] > 0.25).mean()))
    assert not np.any((ctrl["smile"] > 0) & (ctrl["brow_raise"] > 0))  # brow raises never during smiles


def test_cohort_smile_effect_falls_with_cdr_and_keeps_other_draws():
    from cdrscreen.demo.cohort import draw_subject

    rates = {c: [] for c in (0.5, 1.0, 2.0)}
    for c in rates:
        rng = np.random.default_rng([7, int(c * 10)])
        for i in range(60):
            rates[c].append(draw_subject(f"S{i}", c, rng).expression.smile_rate)
    means = [np.mean(rates[c]) for c in (0.5, 1.0, 2.0)]
    assert means[0] > means[1] + 1.5 > means[2] + 3.0
    # The expression draws use their own generator: the main stream is untouched by them.
    a = draw_subject("A", 1.0, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    b = draw_subject("B", 1.0, rng)
    assert a.motion == b.motion and a.voice == b.voice and a.seed == b.seed


def test_expression_set_layout_split_and_reuse(tmp_path):
    from cdrscreen.demo.expression_set import CLASSES, ExpressionSetConfig, build_expression_set

    cfg = ExpressionSetConfig(n_train_per_class=2, n_test_per_class=1, variants_per_photo=1)
    info = build_expression_set(tmp_path / "set", cfg)
    assert set(info["train_photos"]).isdisjoint(info["test_photos"])
    assert {"astronaut", "grace_hopper"} <= set(info["train_photos"])
    assert info["counts"]["train"] == {c: 2 for c in CLASSES}
    assert info["counts"]["test"] == {c: 1 for c in CLASSES}
    pngs = sorted((tmp_path / "set").rglob("*.png"))
    assert len(pngs) == 5 * 3
    from PIL import Image

    with Image.open(pngs[0]) as im:
        assert im.size == (48, 48) and im.mode == "RGB"
    assert json.loads((tmp_path / "set" / "set.json").read_text())["key"] == cfg.key()
    before = {p: p.stat().st_mtime_ns for p in pngs}
    build_expression_set(tmp_path / "set", cfg)  # same settings: reused, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in pngs} == before


def test_relabel_stats_counts_against_the_clean_folder_labels(tmp_path):
    from cdrscreen.demo.expression_model import relabel_stats

    names = ["happy", "neutral"]
    images = [tmp_path / "happy" / "a.png", tmp_path / "happy" / "b.png", tmp_path / "neutral" / "c.png",
              tmp_path / "neutral" / "d.png"]
    noisy = np.array([1, 0, 0, 1])  # a flipped, b clean, c flipped, d clean
    relabels = np.array([0, -1, 1, 0])  # a and c relabelled to their clean class, d to a wrong one
    st = relabel_stats({"relabels": relabels}, images, noisy, names)
    assert st["relabelled"] == 3
    assert st["relabel_precision"] == pytest.approx(2 / 3)
    assert st["noisy_labels"] == 2 and st["noisy_fixed_fraction"] == pytest.approx(1.0)
    assert st["clean_broken"] == 1


def test_expression_recovery_correlates_measured_with_planted(tmp_path):
    from cdrscreen.demo.recovery import expression_recovery

    gt = tmp_path / "ground_truth"
    gt.mkdir()
    planted = np.array([9.0, 7.5, 3.75, 0.0, 11.25, 5.0])
    frac = planted / 60
    pd.DataFrame({"subject": [f"D{i}" for i in range(6)], "cdr": [0.5, 0.5, 1, 2, 0.5, 1],
                  "planted_smile_rate": planted, "planted_smile_fraction": frac}).to_csv(gt / "subjects.csv", index=False)
    idx = pd.MultiIndex.from_tuples([(f"D{i}", "1", f"D{i}.mp4") for i in range(6)], names=["subject", "session", "file"])
    feats = pd.DataFrame({"expr__episode_rate_happy": planted + np.array([0.5, -0.5, 0.3, 0.2, -0.4, 0.1]),
                          "expr__hist_happy": -frac}, index=idx)
    rec = expression_recovery(feats, tmp_path)
    assert rec["n_subjects"] == 6
    assert rec["r_expr__episode_rate_happy"] > 0.98
    assert rec["r_expr__hist_happy"] == pytest.approx(-1.0)
    assert rec["class_means"]["0.5"]["planted_smile_rate"] == pytest.approx(planted[[0, 1, 4]].mean())


def test_expression_figure_draws_the_smoothed_strip():
    from cdrscreen.reports.figures import expression_figure

    t = np.arange(20) * 0.2
    probs = {"neutral": np.linspace(0, 1, 20), "happy": np.linspace(1, 0, 20)}
    labels = np.array(["happy"] * 8 + ["none"] * 2 + ["neutral"] * 10, dtype=object)
    fig = expression_figure(t, probs, labels=labels)
    strip = fig.axes[0]
    assert len(fig.axes) == 2
    assert len(strip.collections) == 2  # one span set per class that occurs
    assert len(expression_figure(t, probs).axes) == 1


@pytest.mark.slow
def test_demo_expression_model_trains_exports_and_reports(tmp_path):
    """Tiny end-to-end run: synthetic set -> SCN with 20 % noise -> ONNX embedder with the contract."""
    pytest.importorskip("torch")
    from cdrscreen.core.embedder import TemplateCrop
    from cdrscreen.demo.expression_model import ExpressionModelConfig, train_expression_model
    from cdrscreen.demo.expression_set import ExpressionSetConfig
    from cdrscreen.features.expression import Embedder

    s = train_expression_model(tmp_path, set_config=ExpressionSetConfig(n_train_per_class=8, n_test_per_class=2,
                                                                        variants_per_photo=1),
                               config=ExpressionModelConfig(epochs=2, relabel_epoch=1), n_jobs=1)
    assert s["noise"]["requested_rate"] == 0.2 and s["noise"]["flipped"] > 0
    assert s["n_test"] == 10 and 0.0 <= s["test_accuracy"] <= 1.0
    assert max(s["export_parity"].values()) < 1e-4
    emb = Embedder(s["onnx"])
    emb.require_expression()  # a facial-expression embedder: accepted by expr
    assert sorted(emb.class_names) == ["angry", "happy", "neutral", "sad", "surprise"]
    assert isinstance(emb.contract.crop, TemplateCrop) and emb.input_size == 48
    again = train_expression_model(tmp_path, set_config=ExpressionSetConfig(n_train_per_class=8, n_test_per_class=2,
                                                                            variants_per_photo=1),
                                   config=ExpressionModelConfig(epochs=2, relabel_epoch=1), n_jobs=1)
    assert again == json.loads(json.dumps(s))  # finished: reused, not retrained
