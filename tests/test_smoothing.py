import numpy as np
import pytest

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.tracking.smoothing import (
    expression_timeline,
    macro_f1,
    majority_vote,
    smooth_probabilities,
    timeline_segments,
)


def test_centered_vote_removes_isolated_flips_on_planted_sequence():
    # planted persistent segments with isolated one-frame errors
    truth = np.array([0] * 8 + [2] * 8 + [1] * 8)
    noisy = truth.copy()
    noisy[[3, 11, 20]] = [1, 0, 2]
    out = majority_vote(noisy, 5)
    np.testing.assert_array_equal(out, truth)


def test_centered_vote_hand_computed_with_boundaries_and_ties():
    labels = [0, 1, 1, 0, 2, 2, 2]
    # window 3 centred: frame0 -> {0,1}: tie, own label 0 wins; frame1 -> {0,1,1}=1;
    # frame2 -> {1,1,0}=1; frame3 -> {1,0,2}: three-way tie, own 0 wins; frame4 -> {0,2,2}=2;
    # frame5 -> 2; frame6 -> {2,2}=2
    np.testing.assert_array_equal(majority_vote(labels, 3), [0, 1, 1, 0, 2, 2, 2])
    # window 4: frame t sees [t-1, t+2]; frame0 -> {0,1,1}=1, frame3 -> {1,0,2,2}=2
    np.testing.assert_array_equal(majority_vote(labels, 4), [1, 1, 1, 2, 2, 2, 2])


def test_block_vote_is_the_papers_literal_reading():
    labels = [0, 1, 1, 2, 2, 0, 1]
    # blocks of 3: [0,1,1] -> 1 ; [2,2,0] -> 2 ; [1] -> 1
    np.testing.assert_array_equal(majority_vote(labels, 3, mode="block"), [1, 1, 1, 2, 2, 2, 1])


def test_missing_frames_do_not_vote_and_stay_missing_unless_filled():
    labels = [1, 1, -1, -1, 0, 1, 1]
    out = majority_vote(labels, 3)
    # frame 4 sees {0, 1} (frame 3 does not vote): a tie, its own label 0 stays
    np.testing.assert_array_equal(out, [1, 1, -1, -1, 0, 1, 1])
    filled = majority_vote(labels, 3, fill_missing=True)
    assert filled[2] == 1 and filled[3] == 0  # frame 3 sees only the 0 of frame 4
    assert majority_vote([-1, -1, -1], 3, fill_missing=True).tolist() == [-1, -1, -1]


def test_window_one_and_bad_input():
    x = np.array([3, 1, 2])
    np.testing.assert_array_equal(majority_vote(x, 1), x)
    with pytest.raises(CdrscreenError, match="window"):
        majority_vote(x, 0)
    with pytest.raises(CdrscreenError, match="negative"):
        majority_vote([0, -3], 3)
    with pytest.raises(CdrscreenError, match="mode"):
        majority_vote(x, 3, mode="other")


def test_probability_smoothing_mean_and_missing_rows():
    p = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan], [1.0, 0.0]])
    out = smooth_probabilities(p, 3, method="mean")
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    np.testing.assert_allclose(out[1], [0.5, 0.5])  # frames 0 and 1 only (2 is missing)
    np.testing.assert_allclose(out[2], [0.5, 0.5])  # frames 1 and 3
    np.testing.assert_allclose(out[3], [1.0, 0.0])
    np.testing.assert_allclose(out.sum(1), 1.0)


def test_ema_is_causal_and_gaussian_rows_sum_to_one():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=30)
    e1 = smooth_probabilities(p, 5, method="ema")
    p2 = p.copy()
    p2[20:] = rng.dirichlet(np.ones(4), size=10)
    e2 = smooth_probabilities(p2, 5, method="ema")
    np.testing.assert_allclose(e1[:20], e2[:20])
    assert not np.allclose(e1[20:], e2[20:])
    g = smooth_probabilities(p, 7, method="gaussian")
    np.testing.assert_allclose(g.sum(1), 1.0)
    assert g.std(axis=0).mean() < p.std(axis=0).mean()


def test_macro_f1_hand_computed():
    y = [0, 0, 1, 1, -1]
    yp = [0, 1, 1, 1, 0]
    # class0: P=1, R=.5 -> 2/3 ; class1: P=2/3, R=1 -> 0.8 ; class2 absent -> 0
    assert macro_f1(y, yp, 2) == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(y, yp, 3) == pytest.approx((2 / 3 + 0.8) / 3)
    with pytest.raises(CdrscreenError):
        macro_f1([0, 1], [0], 2)


def test_expression_timeline_and_segments():
    names = ["neutral", "happy"]
    p = np.array([[0.9, 0.1]] * 4 + [[0.2, 0.8]] + [[0.9, 0.1]] * 2 + [[np.nan, np.nan]] + [[0.1, 0.9]] * 4)
    tl = expression_timeline(p, fps=4.0, class_names=names, window=3)
    assert list(tl.columns[:6]) == ["frame", "time", "success", "label", "expression", "confidence"]
    assert tl.loc[4, "expression"] == "neutral"  # the one-frame "happy" is voted away
    assert tl.loc[7, "label"] == -1 and tl.loc[7, "expression"] == "none" and not tl.loc[7, "success"]
    assert tl.loc[9, "expression"] == "happy"
    assert tl["time"].iloc[-1] == pytest.approx(11 / 4.0)
    seg = timeline_segments(tl)
    assert seg["label"].tolist() == [0, -1, 1]
    assert seg["duration"].tolist() == pytest.approx([7 / 4, 1 / 4, 4 / 4])
    soft = expression_timeline(p, fps=4.0, class_names=names, window=3, method="mean", fill_missing=True)
    assert soft.loc[7, "label"] == 1 or soft.loc[7, "label"] == 0
    assert np.isfinite(soft["confidence"]).all()


def test_timeline_summary_hand_computed():
    from cdrscreen.tracking.smoothing import timeline_summary

    names = ["neutral", "happy"]
    p = np.array([[0.9, 0.1]] * 6 + [[np.nan, np.nan]] * 2 + [[0.1, 0.9]] * 2)
    tl = expression_timeline(p, fps=2.0, class_names=names)  # 10 frames = 5 s
    s = timeline_summary(tl, names)
    assert s["frac_neutral"] == pytest.approx(6 / 8) and s["frac_happy"] == pytest.approx(2 / 8)
    assert s["transitions_per_min"] == pytest.approx(1 / (5 / 60))
    assert s["mean_run_s"] == pytest.approx((3.0 + 1.0) / 2)
    assert s["face_frac"] == pytest.approx(0.8)
