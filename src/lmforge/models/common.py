"""What every family shares: the length check and the list of residual-branch outputs."""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError


class LanguageModel(nn.Module):
    """Base of every family: token ids (batch, time) in, logits (batch, time, vocab) out.

    `blocks` is the ModuleList of layers (the signal-propagation check hooks each one).
    """

    max_len_is_hard = True  # learned positions / rotary tables stop at block_size

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 2:
            raise LmforgeError(f"vocabulary of {vocab_size} tokens is too small for a language model",
                               "train the tokenizer first (`lmforge tokenize RUN`)")
        self.cfg, self.vocab_size = cfg, vocab_size

    def residual_outputs(self) -> list[str]:
        """Names of the last projection of each residual branch (GPT-2 scales these at init)."""
        return [n for n, _ in self.named_parameters() if n.endswith(("attn.proj.weight", "mlp.proj.weight"))]

    def check_length(self, idx: torch.Tensor) -> None:
        if idx.ndim != 2:
            raise ValueError(f"expected token ids of shape (batch, time), got {tuple(idx.shape)}")
        if self.max_len_is_hard and idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} tokens is longer than "
                             f"model.block_size={self.cfg.block_size}")


def output_head(cfg: ModelConfig, vocab_size: int, embedding: nn.Embedding) -> nn.Linear:
    """The logits projection; tied to the input embedding by default (Press & Wolf 2017)."""
    head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
    if cfg.tie_embeddings:
        head.weight = embedding.weight
    return head


def mask_args(attn_mask: torch.Tensor | None) -> dict:
    """SDPA arguments: the plain causal mask, or a (batch, T, T) boolean mask (already causal,
    e.g. one that also keeps attention inside each document) broadcast over heads."""
    return {"is_causal": True} if attn_mask is None else {"attn_mask": attn_mask[:, None]}
