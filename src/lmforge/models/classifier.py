"""A sequence-classification head on a pretrained backbone: pool the hidden states of a passage,
then one linear layer to the classes.

Passages come right-padded with PAD (-1), an id no tokenizer uses, so the model itself knows
each passage's length: a decoder reads its last real token (`last`, as GPT-2 classifiers in
transformers do) or the mean over real tokens (`mean`); an encoder reads position 0 (`cls`, the
[CLS] token of BERT, Devlin et al. 2019) and masks the padding out of attention. In a causal
decoder real tokens never attend to the padding that follows them, so no mask is needed there.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.models.common import LanguageModel

PAD = -1
POOLINGS = ("last", "mean", "cls")


class SequenceClassifier(LanguageModel):
    """Token ids (batch, T), right-padded with PAD, in; class logits (batch, classes) out.

    A LanguageModel itself (same config, no carried state), so the one training loop, its
    checkpoints and the optimizer's parameter groups treat it like any family."""

    def __init__(self, backbone: LanguageModel, n_classes: int, pooling: str = "last",
                 dropout: float = 0.0) -> None:
        super().__init__(backbone.cfg, backbone.vocab_size)
        if pooling not in POOLINGS:
            raise LmforgeError(f"unknown pooling '{pooling}'", f"choose one of: {', '.join(POOLINGS)}")
        bidirectional = getattr(backbone, "bidirectional", False)
        if pooling == "cls" and not bidirectional:
            raise LmforgeError("pooling 'cls' reads position 0, which a causal decoder computes from one token",
                               "use pooling last or mean for a decoder, or an encoder base")
        if n_classes < 2:
            raise LmforgeError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.backbone, self.pooling, self.n_classes = backbone, pooling, n_classes
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(backbone.cfg.n_embd, n_classes)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    @property
    def blocks(self) -> nn.ModuleList:  # the signal check and layer counts look here
        return self.backbone.blocks  # type: ignore[return-value]

    def pooled(self, idx: torch.Tensor) -> torch.Tensor:
        """One vector (batch, n_embd) per passage. A passage longer than model.block_size is read
        in consecutive windows of block_size; the pooled vectors of its windows are averaged,
        weighted by their real tokens."""
        b, t = idx.shape
        size = self.cfg.block_size
        if self.pooling == "cls":  # [CLS] opens the first window only: an encoder reads that one
            idx = idx[:, :size]
        if idx.shape[1] <= size:
            return self._pool_window(idx)
        n = -(-t // size)
        padded = torch.full((b, n * size), PAD, dtype=idx.dtype, device=idx.device)
        padded[:, :t] = idx
        windows = padded.view(b * n, size)
        vectors = self._pool_window(windows).view(b, n, -1)
        weight = (windows != PAD).sum(1).view(b, n, 1).to(vectors.dtype)
        return (vectors * weight).sum(1) / weight.sum(1).clamp(min=1)

    def _pool_window(self, idx: torch.Tensor) -> torch.Tensor:
        real = idx != PAD
        lengths = real.sum(1).clamp(min=1)
        ids = idx.clamp(min=0)  # padding becomes token 0: pooled out, and masked for encoders
        mask = None
        if getattr(self.backbone, "bidirectional", False):
            mask = real[:, None, :].expand(-1, idx.shape[1], -1)
        h = self.backbone.features(ids, mask)
        if self.pooling == "last":
            return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
        if self.pooling == "mean":
            w = real.to(h.dtype)[..., None]
            return (h * w).sum(1) / lengths[:, None].to(h.dtype)
        return h[:, 0]

    def forward(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.drop(self.pooled(idx)))
