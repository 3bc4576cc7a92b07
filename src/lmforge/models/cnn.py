"""Convolutional language model: causal gated convolutions in the manner of Dauphin et al. 2017
(gated linear units, residual blocks), with dilations doubling per layer as in WaveNet
(van den Oord et al. 2016) so the receptive field grows exponentially with depth.

Causality comes from padding only on the left: output t sees inputs t-(k-1)·d .. t. No position
table is needed (convolutions are translation equivariant), so any length works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.models.common import LanguageModel, output_head
from lmforge.models.init import initialize


class GatedConvBlock(nn.Module):
    """x + proj(GLU(causal_conv(norm(x)))): pre-norm keeps the residual stream's scale stable."""

    def __init__(self, cfg: ModelConfig, dilation: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
        self.pad = (cfg.kernel_size - 1) * dilation
        self.conv = nn.Conv1d(cfg.n_embd, 2 * cfg.n_embd, cfg.kernel_size, dilation=dilation, bias=True)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (b, c, t) for Conv1d
        h = self.conv(F.pad(h, (self.pad, 0)))
        h = F.glu(h, dim=1).transpose(1, 2)  # a ⊙ sigmoid(b): Dauphin et al.'s gated linear unit
        return x + self.drop(self.proj(h))


class GatedCNN(LanguageModel):
    """Token ids (batch, time) in, logits (batch, time, vocab) out."""

    max_len_is_hard = False

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.tok_emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.n_layer)]
        self.blocks = nn.ModuleList(GatedConvBlock(cfg, d) for d in self.dilations)
        self.norm_f = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
        self.head = output_head(cfg, vocab_size, self.tok_emb)
        self.init_report = initialize(self, cfg)

    @property
    def receptive_field(self) -> int:
        """Tokens of context one output sees: 1 + sum over layers of (k - 1)·dilation."""
        return 1 + sum((self.cfg.kernel_size - 1) * d for d in self.dilations)

    def residual_outputs(self) -> list[str]:
        return [f"blocks.{i}.proj.weight" for i in range(len(self.blocks))]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.check_length(idx)
        x = self.drop(self.tok_emb(idx))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm_f(x))
