import numpy as np
import pytest
import torch

from cdrscreen.errors import CdrscreenError
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
