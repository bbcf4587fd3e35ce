import numpy as np
import pytest
import torch

from cdrscreen.core.errors import CdrscreenError
from fer_backbone.models.temporal import TemporalEncoder


def _model(causal: bool) -> TemporalEncoder:
    torch.manual_seed(0)
    m = TemporalEncoder(6, 3, d_model=16, nhead=2, num_layers=2, dim_feedforward=32, dropout=0.0,
                        max_len=32, causal=causal)
    return m.eval()


def test_causal_encoder_ignores_future_frames_noncausal_does_not():
    x = torch.randn(1, 10, 6)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 6)
    causal, full = _model(True), _model(False)
    with torch.no_grad():
        a, b = causal(x), causal(x2)
        torch.testing.assert_close(a[:, :6], b[:, :6])
        assert not torch.allclose(a[:, 6:], b[:, 6:])
        c, d = full(x), full(x2)
        assert not torch.allclose(c[:, :6], d[:, :6])


@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_makes_batched_equal_to_single(causal):
    m = _model(causal)
    short, long = torch.randn(5, 6), torch.randn(9, 6)
    batch = torch.zeros(2, 9, 6)
    batch[0, :5], batch[1] = short, long
    batch[0, 5:] = 1e3  # garbage in padded positions must not leak into real frames
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[0, 5:] = True
    with torch.no_grad():
        out = m(batch, padding_mask=pad)
        alone_short = m(short[None])
        alone_long = m(long[None])
    assert out.shape == (2, 9, 3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :5], alone_short[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], alone_long[0], atol=1e-5, rtol=1e-5)


def test_missing_frames_are_not_attended_but_get_context_predictions():
    m = _model(False)
    x = torch.randn(1, 8, 6)
    miss = torch.zeros(1, 8, dtype=torch.bool)
    miss[0, 0] = miss[0, 3] = True
    y = x.clone()
    y[0, 3] = float("nan")  # a frame without a face may carry NaN features
    y[0, 0] = 50.0
    with torch.no_grad():
        a = m(x, missing_mask=miss)
        b = m(y, missing_mask=miss)
    torch.testing.assert_close(a, b)  # the missing frames' content never matters
    assert torch.isfinite(b).all()


def test_bad_shapes_raise_clear_errors():
    m = _model(False)
    with pytest.raises(CdrscreenError, match="expected features"):
        m(torch.randn(2, 5, 4))
    with pytest.raises(CdrscreenError, match="max_len"):
        m(torch.randn(1, 40, 6))
    with pytest.raises(CdrscreenError, match="divisible"):
        TemporalEncoder(6, 3, d_model=10, nhead=3)


def test_learned_positional_encoding_and_backprop():
    torch.manual_seed(1)
    m = TemporalEncoder(6, 3, d_model=16, nhead=2, num_layers=1, max_len=16, positional="learned")
    x = torch.randn(2, 7, 6)
    out = m(x)
    out.sum().backward()
    assert m.pos_learned.grad is not None and np.isfinite(m.pos_learned.grad.numpy()).all()


# ---------------------------------------------------------------- phase 2: training and readers
from fer_backbone.temporal import (  # noqa: E402
    TemporalClassifier,
    extract_features,
    read_affwild2_sequences,
    window_starts,
)


def test_window_starts_cover_every_frame():
    assert window_starts(5, 8, 4).tolist() == [0]
    assert window_starts(20, 8, 4).tolist() == [0, 4, 8, 12]
    assert window_starts(21, 8, 5).tolist() == [0, 5, 10, 13]


def _planted(n_seq, length, rng, dim=8, noise=1.6):
    """Class means in feature space; each frame is noisy, labels persist over segments."""
    means = np.eye(dim)[:3] * 2.0
    feats, labels = [], []
    for _ in range(n_seq):
        y = np.repeat(rng.integers(0, 3, size=length // 10 + 1), 10)[:length]
        f = means[y] + rng.normal(0, noise, size=(length, dim))
        f[rng.random(length) < 0.1] = np.nan  # frames without a face
        feats.append(f.astype(np.float32))
        labels.append(y)
    return feats, labels


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save
    yield
    torch.set_num_threads(n)


def test_temporal_classifier_uses_context_beyond_single_frames(tmp_path, one_thread):
    rng = np.random.default_rng(0)
    ftr, ytr = _planted(24, 60, rng)
    fte, yte = _planted(8, 60, rng)
    clf = TemporalClassifier(3, window=20, stride=10, d_model=16, nhead=2, num_layers=1,
                             dim_feedforward=32, dropout=0.0, epochs=12, batch_size=16, lr=3e-3)
    clf.fit(ftr, ytr)
    assert clf.history_[-1] < clf.history_[0]
    pred = np.concatenate(clf.predict(fte))
    truth = np.concatenate(yte)
    # the best single-frame rule (nearest class mean) on the same frames
    means = np.eye(8)[:3] * 2.0
    frames = np.concatenate(fte)
    ok = ~np.isnan(frames).any(1)
    single = np.argmin(((frames[ok, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred[ok] == truth[ok]).mean() > (single == truth[ok]).mean() + 0.05
    # frames without a face are predicted from context, better than chance
    assert (pred[~ok] == truth[~ok]).mean() > 0.5
    clf.save(tmp_path / "t.pt")
    back = TemporalClassifier.load(tmp_path / "t.pt")
    np.testing.assert_allclose(back.predict_proba(fte[:1])[0], clf.predict_proba(fte[:1])[0], atol=1e-6)


def test_extract_features_marks_frames_without_face():
    lin = torch.nn.Linear(12, 4)
    frames = [torch.randn(3, 2, 2), None, torch.randn(3, 2, 2)]
    out = extract_features(lambda x: lin(x.flatten(1)), frames, batch_size=1)
    assert out.shape == (3, 4)
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    with pytest.raises(CdrscreenError, match="no frame"):
        extract_features(lambda x: x, [None, None])


def test_affwild2_sequence_reader(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "vidA.txt").write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n-1\n4\n7\n")
    (tmp_path / "crops" / "vidA").mkdir(parents=True)
    for i in (1, 3, 4):
        (tmp_path / "crops" / "vidA" / f"{i:05d}.jpg").write_bytes(b"x")
    seqs = read_affwild2_sequences(ann, tmp_path / "crops")
    assert len(seqs) == 1 and seqs[0].name == "vidA"
    assert seqs[0].labels.tolist() == [0, -1, 4, 7]
    assert seqs[0].has_face.tolist() == [True, False, True, True]
    (ann / "vidB.txt").write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n9\n")
    with pytest.raises(Exception, match=r"vidB.txt.*line 3"):
        read_affwild2_sequences(ann)


@pytest.mark.slow
def test_temporal_recipe_end_to_end_on_digit_videos(tmp_path, one_thread):
    """Phase 1 (tiny digits run) -> Aff-Wild2-style folders of real digit frames -> phase 2."""
    from PIL import Image

    from fer_backbone.build import run_recipe
    from fer_backbone.config import load_recipe
    from fer_backbone.data import load_digits_samples

    ov = ["model.backbone=test_resnet", "data.image_size=16", "train.epochs=1", "train.batch_size=32",
          "train.max_steps_per_epoch=4", "train.device=cpu", "train.threads=1", "train.selection=last"]
    run_recipe(load_recipe("recipes/fer_baseline_digits.yaml", ov), tmp_path / "phase1")

    s = load_digits_samples()
    rng = np.random.default_rng(0)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other,c8,c9\n"
    for split, n_vid in (("train", 3), ("val", 2)):
        (tmp_path / split).mkdir()
        for v in range(n_vid):
            name = f"{split}{v}"
            labels = np.repeat(rng.integers(0, 10, size=6), 8)
            (tmp_path / "crops" / name).mkdir(parents=True)
            for i, y in enumerate(labels, 1):
                if rng.random() < 0.1:
                    continue  # no face crop for this frame
                img = s.images[rng.choice(np.flatnonzero(s.labels == y))]
                Image.fromarray(img).save(tmp_path / "crops" / name / f"{i:05d}.jpg")
            lines = [str(int(y)) if rng.random() > 0.05 else "-1" for y in labels]
            (tmp_path / split / f"{name}.txt").write_text(header + "\n".join(lines) + "\n")
    proto = tmp_path / "temporal.yaml"
    proto.write_text(
        f"name: t\ntemporal:\n  student: {tmp_path / 'phase1'}\n"
        f"  annotations: {{train: {tmp_path / 'train'}, val: {tmp_path / 'val'}, frames_root: {tmp_path / 'crops'}}}\n"
        "  encoder: {window: 16, stride: 8, d_model: 16, nhead: 2, num_layers: 1, dim_feedforward: 32, epochs: 2}\n"
        "  smoothing: {method: vote, window: 5}\n"
    )
    rec = load_recipe(proto)
    assert rec.temporal.encoder.window == 16 and rec.kind == "temporal"
    res = run_recipe(rec, tmp_path / "phase2")
    from fer_backbone.cli import main

    assert main(["temporal", str(proto), "--out", str(tmp_path / "phase2_cli")]) == 0
    assert main(["train", str(proto), "--out", str(tmp_path / "phase2_train")]) == 0  # same runner
    assert (tmp_path / "phase2_cli" / "temporal.pt").exists()
    assert set(res["val_macro_f1"]) == {"per_frame", "temporal", "temporal+smoothing"}
    assert all(0.0 <= v <= 1.0 for v in res["val_macro_f1"].values())
    assert res["n_val_videos"] == 2 and (tmp_path / "phase2" / "results.json").exists()
    clf = TemporalClassifier.load(tmp_path / "phase2" / "temporal.pt")
    assert clf.window == 16 and clf.num_classes == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ntemporal: {student: x, annotations: {train: a, val: b, frames_root: c}, "
                   "encoder: {windw: 3}}\n")
    with pytest.raises(CdrscreenError, match="bad.yaml: unknown key 'temporal.encoder.windw' - did you mean 'window'"):
        load_recipe(bad)
