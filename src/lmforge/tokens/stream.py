"""Batches for models that carry state across windows (truncated BPTT, Williams & Peng 1990).

Row i of every batch continues exactly where row i of the previous batch stopped, so a
recurrent model's carried hidden state belongs to the text it reads next. Rows start at evenly
spaced offsets (shifted by a seeded random amount) and wrap at the end of the split. The
interface is RandomWindows' (next, batches, gen, state_dict), so the one training loop and its
checkpoints use it unchanged; the position is a function of the batch count, so resume is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class StreamWindows:
    """Consecutive (x, y) windows per batch row; y is x shifted by one token."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, seed: int) -> None:
        span = len(data) - 1
        if span < block_size * batch_size:
            raise ValueError(f"only {len(data)} tokens: fewer than {batch_size} streams of {block_size + 1}")
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        shift = int(torch.randint(span, (1,), generator=self.gen))
        stride = span // batch_size
        self.offsets = [(shift + i * stride) % span for i in range(batch_size)]
        self.span = span
        self.batches = 0

    def _row(self, start: int) -> np.ndarray:
        idx = (start + np.arange(self.block_size + 1)) % (self.span + 1)
        return np.asarray(self.data[idx], dtype=np.int64)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.batches * self.block_size
        rows = np.stack([self._row((o + step) % self.span) for o in self.offsets])
        self.batches += 1
        chunk = torch.from_numpy(rows)
        return chunk[:, :-1], chunk[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])
        self.gen.set_state(state["generator"])
