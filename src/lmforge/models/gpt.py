"""GPT-2 style decoder (Radford et al. 2019): learned positions, pre-norm LayerNorm blocks, GELU MLP.

Attention is common.causal_attention (SDPA, or an explicit form in bf16 on CPU). By default the output projection
of each residual branch starts at std / sqrt(2 * n_layer), as in GPT-2, so the residual stream
does not grow with depth (models/init.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.models.common import LanguageModel, causal_attention, output_head
from lmforge.models.init import initialize


def dropout(p: float) -> nn.Module:
    """nn.Dropout, or nothing at p=0: at small CPU shapes each skipped call is measurable."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.causal = cfg.family != "encoder"  # the BERT-style encoder (models/encoder.py) sees both ways

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        y = causal_attention(q, k, v, attn_mask, self.dropout if self.training else 0.0, self.causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.mlp_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_dim, cfg.n_embd, bias=cfg.bias)
        # exact GELU is several times cheaper on CPU than GPT-2's tanh form (bench/models_gpt_vs_hf.py); the tanh
        # form is kept for loading GPT-2 checkpoints ("gelu_new" in transformers)
        self.approximate = "tanh" if cfg.activation == "gelu_tanh" else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate=self.approximate))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.drop = dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), attn_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(LanguageModel):
    """Token ids (batch, time) in, logits (batch, time, vocab) out."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.tok_emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
        self.head = output_head(cfg, vocab_size, self.tok_emb)
        self.init_report = initialize(self, cfg)

    def features(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (batch, T, n_embd) after the final norm: what the LM head and a
        classification head (models/classifier.py) both read."""
        self.check_length(idx)
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attn_mask` (batch, T, T) bool, True = may attend; None = causal over the whole window."""
        return self.head(self.features(idx, attn_mask))
