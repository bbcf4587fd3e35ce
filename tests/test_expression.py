import subprocess
import sys

import numpy as np
import pytest

from cdrscreen.core.errors import CdrscreenError, InputError
from cdrscreen.features.expression import (
    TEMPLATE,
    Embedder,
    ExpressionExtractor,
    _keypoints,
    pool_features,
    similarity_transform,
)


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
    f = pool_features(emb, probs, valid, t, ["neutral", "happy"])
    assert f["valid_fraction"] == 0.75 and f["n_frames"] == 4
    assert f["emb_mean_0"] == pytest.approx(2.0) and f["emb_std_1"] == pytest.approx(0.0)
    assert f["hist_neutral"] == pytest.approx(2 / 3) and f["hist_happy"] == pytest.approx(1 / 3)
    assert f["prob_mean_happy"] == pytest.approx((0.1 + 0.8 + 0.4) / 3)
    assert f["transition_rate"] == pytest.approx(2 / 2.0)  # n->h->n over 2 s
    assert f["expressivity"] == pytest.approx(1 - (0.9 + 0.2 + 0.6) / 3)
    assert f["emb_dispersion"] == pytest.approx((2 + 0 + 2) / 3)


def test_no_embedder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CDRSCREEN_EXPR_EMBEDDER", raising=False)
    ex = ExpressionExtractor()  # constructing never fails (parameters only)
    with pytest.raises(CdrscreenError, match="needs an expression embedder"):
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
    # the crop puts the eyes where the template says
    track = track_video(face_video)
    r = int(np.flatnonzero(track.table["success"].to_numpy())[0])
    m = similarity_transform(_keypoints(track.landmarks[r]), TEMPLATE * 48)
    kp = _keypoints(track.landmarks[r])
    mapped = kp @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped[:2] - TEMPLATE[:2] * 48).max() < 3.0
    assert Embedder(fer_embedder_onnx).class_names[-1] == "neutral"
