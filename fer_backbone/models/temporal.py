"""Transformer temporal encoder over per-frame features (Yu et al., ABAW6 2024, section 3.4).

The paper states only that a Transformer encoder applies self-attention along time to the
image features of neighbouring frames and that a classifier predicts every frame. Decided
here where it is silent: a linear projection to ``d_model``, sinusoidal (or learned)
positional encoding, pre-norm encoder layers, a per-frame linear classifier, and an option
for causal attention (a frame sees only itself and earlier frames, for online use).

Masks: ``padding_mask`` (True = padded position, not a frame) and ``missing_mask`` (True = a
real frame without a face, whose feature is unknown). Neither kind is attended to as a key;
a missing frame is replaced by a learned token and still receives an output computed from
the frames it may see, so its expression can be inferred from context. Every query may
always attend to itself, so no attention row is empty.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cdrscreen.core.errors import CdrscreenError


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """Return the fixed sinusoidal positional encoding of Vaswani et al., shape ``(length, dim)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class TemporalEncoder(nn.Module):
    """Per-frame expression classifier over a window of frame features.

    Parameters
    ----------
    in_dim : int
        Dimension of the frozen per-frame features.
    num_classes : int
        Number of expression classes.
    d_model, nhead, num_layers, dim_feedforward, dropout
        Transformer encoder size.
    max_len : int
        Longest window the positional encoding supports.
    causal : bool
        If True a frame attends only to itself and earlier frames.
    positional : {"sinusoidal", "learned"}
        Positional encoding kind.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        max_len: int = 512,
        causal: bool = False,
        positional: str = "sinusoidal",
    ) -> None:
        super().__init__()
        if d_model % nhead:
            raise CdrscreenError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.in_dim, self.num_classes, self.nhead = in_dim, num_classes, nhead
        self.causal, self.max_len = causal, max_len
        self.input_norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, d_model)
        self.missing_token = nn.Parameter(torch.zeros(d_model))
        if positional == "sinusoidal":
            self.register_buffer("pos", sinusoidal_encoding(max_len, d_model), persistent=False)
            self.pos_learned = None
        elif positional == "learned":
            self.pos_learned = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            raise CdrscreenError(f"positional must be 'sinusoidal' or 'learned', got {positional!r}")
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, num_classes)

    def attention_mask(self, key_blocked: torch.Tensor) -> torch.Tensor:
        """Boolean attention mask ``(B * nhead, L, L)``, True = not allowed.

        ``key_blocked`` is ``(B, L)``: positions that must not be attended to as keys.
        """
        b, length = key_blocked.shape
        blocked = key_blocked[:, None, :].expand(b, length, length).clone()
        if self.causal:
            future = torch.triu(torch.ones(length, length, dtype=torch.bool, device=blocked.device), 1)
            blocked |= future
        blocked &= ~torch.eye(length, dtype=torch.bool, device=blocked.device)
        return blocked.repeat_interleave(self.nhead, dim=0)

    def encode(
        self,
        features: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        missing_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Temporal features ``(B, L, d_model)`` of frame features ``(B, L, in_dim)``."""
        if features.ndim != 3 or features.shape[-1] != self.in_dim:
            raise CdrscreenError(
                f"temporal encoder: expected features (batch, frames, {self.in_dim}), got {tuple(features.shape)}"
            )
        b, length, _ = features.shape
        if length > self.max_len:
            raise CdrscreenError(f"temporal encoder: window of {length} frames exceeds max_len={self.max_len}")
        pad = torch.zeros(b, length, dtype=torch.bool, device=features.device) if padding_mask is None else padding_mask.bool()
        miss = torch.zeros_like(pad) if missing_mask is None else missing_mask.bool()
        x = self.proj(self.input_norm(torch.nan_to_num(features)))
        x = torch.where(miss[..., None], self.missing_token.expand_as(x), x)
        pos = self.pos[:length] if self.pos_learned is None else self.pos_learned[:length]
        x = self.dropout(x + pos)
        mask = self.attention_mask(pad | miss)
        h = self.encoder(x, mask=mask)
        return self.norm(h)

    def forward(
        self,
        features: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        missing_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-frame class logits ``(B, L, num_classes)``."""
        return self.classifier(self.encode(features, padding_mask, missing_mask))
