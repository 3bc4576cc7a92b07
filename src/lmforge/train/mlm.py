"""Masked-language modelling, the encoder's objective (BERT, Devlin et al. 2019): 15% of the
positions are chosen; of those 80% become [MASK], 10% a random token and 10% stay as they are;
the loss is the LM loss at the chosen positions only (every other target is IGNORE_INDEX), so
the one training loop runs it unchanged. Every window starts with [CLS], which is never chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.models.loss import IGNORE_INDEX, lm_loss
from lmforge.runtime import autocast
from lmforge.tokens.loader import spread_windows

RATE, AS_MASK, AS_RANDOM = 0.15, 0.8, 0.1


def mask_tokens(x: torch.Tensor, mask_id: int, vocab: int, gen: torch.Generator, rate: float = RATE
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for token ids `x` whose column 0 is [CLS] (never chosen)."""
    chosen = torch.rand(x.shape, generator=gen) < rate
    chosen[:, 0] = False
    targets = torch.where(chosen, x, torch.full_like(x, IGNORE_INDEX))
    roll = torch.rand(x.shape, generator=gen)
    inputs = x.clone()
    inputs[chosen & (roll < AS_MASK)] = mask_id
    swap = chosen & (roll >= AS_MASK) & (roll < AS_MASK + AS_RANDOM)
    inputs[swap] = torch.randint(vocab, (int(swap.sum()),), generator=gen)
    return inputs, targets


def with_cls(x: torch.Tensor, cls_id: int) -> torch.Tensor:
    return torch.cat([torch.full((x.shape[0], 1), cls_id, dtype=x.dtype), x], 1)


class MaskedWindows:
    """A training loader (tokens/loader.py) of windows one token shorter than the model's
    context, turned into [CLS] + masked window and its masked-LM targets."""

    def __init__(self, inner: Any, mask_id: int, cls_id: int, vocab: int) -> None:
        self.inner, self.mask_id, self.cls_id, self.vocab = inner, mask_id, cls_id, vocab
        self.block_size, self.gen, self.doc_starts = inner.block_size + 1, inner.gen, None

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.inner.batch_size = value

    @property
    def batches(self) -> int:
        return self.inner.batches

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.inner.next()  # the shifted targets of next-token prediction are not used
        return mask_tokens(with_cls(x, self.cls_id), self.mask_id, self.vocab, self.gen)

    def next_with_mask(self) -> Any:
        from lmforge.errors import LmforgeError

        raise LmforgeError("train.doc_mask is not available for the encoder", "set train.doc_mask=false")

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


@torch.no_grad()
def masked_loss(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int, batches: int,
                dtype: str, seed: int = 0) -> float:
    """Masked-LM loss on `batches` batches of windows spread over the split, masked the same way
    every call."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for x, _ in spread_windows(data, block_size - 1, batch_size, batches * batch_size):
        inputs, targets = mask_tokens(with_cls(x, model.cls_id), model.mask_id, model.text_vocab, gen)
        with autocast(device, dtype):
            logits = model(inputs.to(device))
        total += lm_loss(logits, targets.to(device), "sum").item()
        count += int((targets != IGNORE_INDEX).sum())
    model.train(was_training)
    return total / max(1, count)
