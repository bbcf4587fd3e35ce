import subprocess
import sys

import numpy as np
import pytest

from cdrscreen.core.embedder import DEFAULT_TEMPLATE, keypoints, similarity_transform
from cdrscreen.core.errors import CdrscreenError, InputError
from cdrscreen.features.expression import (
    Embedder,
    ExpressionExtractor,
    episodes,
    pool_features,
    window_frames,
)

TEMPLATE = np.array(list(DEFAULT_TEMPLATE.points.values()))
NAMES = list(DEFAULT_TEMPLATE.points)


def test_similarity_transform_recovers_known_map():
    rng = np.random.default_rng(0)
    src = rng.random((3, 2)) * 100
    ang, s, t = 0.3, 1.7, np.array([5.0, -2.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_pool_features_by_hand():
    emb = np.array([[0.0, 2.0], [2.0, 2.0], [9.0, 9.0], [4.0, 2.0]], np.float32)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.6, 0.4]], np.float32)
    valid = np.array([True, True, False, True])
    t = np.array([0.0, 0.5, 1.0, 2.0])
    t = np.array([0.0, 0.5, 1.0, 1.5])
    f = pool_features(emb, probs, valid, t, ["neutral", "happy"])
    assert f["valid_fraction"] == 0.75 and f["n_frames"] == 4
    assert f["emb_mean_0"] == pytest.approx(2.0) and f["emb_std_1"] == pytest.approx(0.0)
    assert f["hist_neutral"] == pytest.approx(2 / 3) and f["hist_happy"] == pytest.approx(1 / 3)
    assert f["prob_mean_happy"] == pytest.approx((0.1 + 0.8 + 0.4) / 3)
    # labels n, h, -, n over 2 s (4 frames of 0.5 s): 2 changes -> 60 per minute; episodes skip the gap
    assert f["transition_rate"] == pytest.approx(2 / (2.0 / 60)) == f["transition_rate_raw"]
    assert f["episodes_neutral"] == 2 and f["episodes_happy"] == 1
    assert f["episode_rate_happy"] == pytest.approx(30.0) and f["episode_mean_s_happy"] == pytest.approx(0.5)
    assert f["expressivity"] == pytest.approx(1 - (0.9 + 0.2 + 0.6) / 3)
    assert f["emb_dispersion"] == pytest.approx((2 + 0 + 2) / 3)


def test_no_embedder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CDRSCREEN_EXPR_EMBEDDER", raising=False)
    ex = ExpressionExtractor()  # constructing never fails (parameters only)
    with pytest.raises(CdrscreenError, match="needs an expression embedder: pass --embedder PATH"):
        ex.get_config()
    with pytest.raises(InputError, match="missing.onnx: expression embedder"):
        ExpressionExtractor(embedder=tmp_path / "missing.onnx").get_config()


def test_runtime_does_not_import_torch(fer_embedder_onnx):
    code = (
        "import sys, numpy as np\n"
        "from cdrscreen.features.expression import Embedder\n"
        f"e = Embedder(r'{fer_embedder_onnx}')\n"
        "emb, p = e(np.zeros((3, e.input_size, e.input_size, 3), np.uint8))\n"
        "assert emb.shape == (3, e.meta['embedding_dim']) and abs(p.sum(1) - 1).max() < 1e-5\n"
        "from cdrscreen.features.expression import pool_features\n"
        "f = pool_features(emb, p, np.ones(3, bool), np.arange(3.0), e.class_names, window=3)\n"
        "assert np.isfinite(f['transition_rate'])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


@pytest.mark.slow
def test_extractor_on_real_face_video(face_video, fer_embedder_onnx, tmp_path):
    from cdrscreen.tracking.face import track_video

    ex = ExpressionExtractor(embedder=fer_embedder_onnx, every=5)
    df = ex.process_file(face_video)
    assert len(df) == 1 and all(c.startswith("expr__") for c in df.columns)
    row = df.iloc[0]
    assert row["expr__n_frames"] == 15  # 75 frames, every 5th
    assert row["expr__valid_fraction"] > 0.8
    hist = row[[c for c in df.columns if c.startswith("expr__hist_")]]
    assert hist.sum() == pytest.approx(1.0) and len(hist) == 7
    assert np.isfinite(row["expr__expressivity"]) and row["expr__emb_dispersion"] >= 0
    per_frame = ex.frame_table(face_video)
    assert per_frame.index.names == ["file", "frame", "time"] and "success" in per_frame.columns
    assert {"label_raw", "expression_raw", "label", "expression"} <= set(per_frame.columns)
    # the crop puts the eyes where the template says
    track = track_video(face_video)
    r = int(np.flatnonzero(track.table["success"].to_numpy())[0])
    m = similarity_transform(keypoints(track.landmarks[r], NAMES), TEMPLATE * 48)
    kp = keypoints(track.landmarks[r], NAMES)
    mapped = kp @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped[:2] - TEMPLATE[:2] * 48).max() < 3.0
    assert Embedder(fer_embedder_onnx).class_names[-1] == "neutral"


def _planted_timeline(rate_per_min: float, minutes: float, fps: float, flicker: float, seed: int):
    """Probabilities of a neutral/happy timeline with happy episodes (1-3 s) at ``rate_per_min``,
    plus single-frame classifier flicker on a fraction ``flicker`` of the frames."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fps)
    truth = np.zeros(n, int)
    n_ep = int(round(rate_per_min * minutes))
    starts = np.sort(rng.choice(np.arange(0, n - int(4 * fps), int(5 * fps)), n_ep, replace=False))
    for s in starts:
        truth[s : s + int(rng.uniform(1, 3) * fps)] = 1
    pred = truth.copy()
    flip = rng.random(n) < flicker
    pred[flip] = 1 - pred[flip]
    p_happy = np.where(pred == 1, 0.8, 0.2)
    return np.c_[1 - p_happy, p_happy].astype(np.float32), 2 * n_ep  # each episode: two transitions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transition_rate_on_a_planted_timeline(seed):
    """Smoothed transition rate within 20 % of the planted one; the raw rate is inflated by flicker."""
    fps = 6.0  # 30 fps video, every 5th frame embedded
    probs, transitions = _planted_timeline(2.7, 3.0, fps, flicker=0.06, seed=seed)
    t = np.arange(len(probs)) / fps
    valid = np.ones(len(probs), bool)
    f = pool_features(np.zeros((len(probs), 2), np.float32), probs, valid, t, ["neutral", "happy"],
                      window=window_frames(1.0, fps))
    planted = transitions / 3.0
    assert abs(f["transition_rate"] - planted) <= 0.2 * planted, (f["transition_rate"], planted)
    assert f["transition_rate_raw"] > 2 * planted
    assert abs(f["episode_rate_happy"] - 2.7) <= 0.2 * 2.7


def test_window_and_episodes():
    assert window_frames(1.0, 6.0) == 7 and window_frames(0.0, 6.0) == 1 and window_frames(1.0, 5.0) == 5
    assert episodes(np.array([0, 0, -1, 1, 1, 1, 0]), 0.5) == [(0, 0, 1.0), (1, 3, 1.5), (0, 6, 0.5)]


@pytest.fixture(scope="module")
def digits_embedder(tmp_path_factory):
    """A tiny embedder whose classes are the digits, as the digits recipes export."""
    import torch

    from fer_backbone.export import export_onnx
    from fer_backbone.tasks import build_task
    from tests.fixtures_fer import TINY_BACKBONE

    torch.manual_seed(0)
    task = build_task("baseline", backbone={"name": TINY_BACKBONE}, num_classes=10, num_train=4).eval()
    return export_onnx(task, tmp_path_factory.mktemp("digits") / "digits.onnx", input_size=32,
                       mean=(0.5,) * 3, std=(0.25,) * 3, class_names=[str(i) for i in range(10)],
                       contract={"crop": {"kind": "image"}})


def test_non_expression_embedder_is_refused_unless_allowed(digits_embedder):
    with pytest.raises(InputError, match=r"digits.onnx: embedder '.*' is not a facial-expression model "
                                         r"\(classes 0, 1, 2, 3, 4, \.\.\.\); .*--allow-non-expression"):
        ExpressionExtractor(embedder=digits_embedder).check()
    ExpressionExtractor(embedder=digits_embedder, allow_non_expression=True).check()


def test_cli_refuses_digits_embedder_in_one_line(digits_embedder, face_video, tmp_path):
    manifest = tmp_path / "study.csv"
    manifest.write_text(f"subject,video,cdr\ns1,{face_video},0.5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cdrscreen", "extract", str(manifest), "--features", "expr", "--embedder",
         str(digits_embedder), "--out", str(tmp_path / "f.parquet"), "--cache", str(tmp_path / "c"),
         "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "is not a facial-expression model" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "f.parquet").exists()
