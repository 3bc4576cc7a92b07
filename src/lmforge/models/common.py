"""What every family shares: the length check and the list of residual-branch outputs."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config.schema import ModelConfig
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

    # Truncated BPTT (models/rnn.py): a model that carries its hidden state from one training
    # window to the next overrides these four; for every other family they do nothing, so the
    # loop, the loaders and the checkpoints call them on any model without probing.
    @property
    def carries_state(self) -> bool:
        """Whether row i of each batch must continue row i of the last (tokens/stream.py)."""
        return False

    def reset_state(self) -> None:
        """Start the carried state from zeros (training starts)."""

    def carried_state(self) -> dict[str, torch.Tensor]:
        """The state carried into the next window, by name, for a checkpoint (empty: none)."""
        return {}

    def load_carried_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `carried_state` returned."""

    def features(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (batch, T, width) before the LM head, for a classification head. The
        attention families (gpt, llama, encoder) have them; the others say so."""
        raise LmforgeError(f"model family '{self.cfg.family}' offers no hidden states for a classification head",
                           "fine-tune a gpt, llama or encoder base")

    def residual_outputs(self) -> list[str]:
        """Names of the last projection of each residual branch (GPT-2 scales these at init)."""
        return [n for n, _ in self.named_parameters() if n.endswith(("attn.proj.weight", "mlp.proj.weight"))]

    def check_length(self, idx: torch.Tensor) -> None:
        if idx.ndim != 2:
            raise ValueError(f"expected token ids of shape (batch, time), got {tuple(idx.shape)}")
        if self.max_len_is_hard and idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} tokens is longer than "
                             f"model.block_size={self.cfg.block_size}")


_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def layer_depth(name: str, n_layer: int) -> int:
    """How deep a parameter sits: 0 for embeddings, i + 1 for block i, n_layer + 1 for the rest
    (final norm, LM head, a classification head). Names may carry wrappers' prefixes (a
    classifier's `backbone.`, peft's `base_model.model.`). Layer-wise LR decay and freezing the
    first k blocks both read it."""
    found = _BLOCK.search(name)
    if found:
        return int(found.group(1)) + 1
    if "emb" in name:
        return 0
    return n_layer + 1


def output_head(cfg: ModelConfig, vocab_size: int, embedding: nn.Embedding) -> nn.Linear:
    """The logits projection; tied to the input embedding by default (Press & Wolf 2017)."""
    head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
    if cfg.tie_embeddings:
        head.weight = embedding.weight
    return head


EXPLICIT_MAX_LEN = 256  # measured crossover on a 2-core avx512_bf16 CPU (see causal_attention)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                     dropout_p: float = 0.0, causal: bool = True) -> torch.Tensor:
    """Causal attention over (batch, heads, T, head_dim); `attn_mask` (batch, T, T) bool, True = may
    attend (already causal, e.g. also kept inside each document). Fewer k/v heads than q heads is
    grouped-query attention. `causal` off (an encoder): every position may attend to every other
    one that `attn_mask` allows (all of them without a mask).

    In bf16 on CPU at T <= 256 the explicit form (two bf16 matmuls, softmax in fp32) beats
    PyTorch's CPU flash kernel, whose bf16 backward is slow (training step 1.6x faster at T = 64
    and 128, 1.1x at 256); from T = 512 the flash kernel wins and needs no T x T scores in memory
    (bench/attention_cpu.py, docs/benchmarks.md "Training"). Everywhere else SDPA picks its kernel.
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.shape[-2] <= EXPLICIT_MAX_LEN:
        return _explicit_attention(q, k, v, attn_mask, dropout_p, causal)
    mask = {"is_causal": causal} if attn_mask is None else {"attn_mask": attn_mask[:, None]}
    return F.scaled_dot_product_attention(q, k, v, **mask, dropout_p=dropout_p, enable_gqa=k.shape[1] != q.shape[1])


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                        dropout_p: float, causal: bool = True) -> torch.Tensor:
    if k.shape[1] != q.shape[1]:
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    # the mask as an additive fp32 bias: one add both masks and lifts the bf16 scores to fp32
    # (a masked_fill and a cast cost one pass each over the T x T scores, forward and backward)
    full = torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool, device=q.device)
    allowed = (full.tril() if causal else full) if attn_mask is None else attn_mask[:, None]
    bias = torch.zeros(allowed.shape, dtype=torch.float32, device=q.device).masked_fill_(~allowed, float("-inf"))
    probs = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias, dim=-1)
    if dropout_p > 0:
        probs = F.dropout(probs, dropout_p)
    return probs.to(v.dtype) @ v
