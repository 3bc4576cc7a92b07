"""Batches from packed token files: memory-mapped random windows for training, sequential for eval.

The training loader is deterministic from its seed, and its state (a torch.Generator state and
the batch count) goes into every checkpoint, so a resumed run draws exactly the next batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load_tokens(tokens_dir: Path, split: str) -> np.ndarray:
    meta = json.loads((tokens_dir / "meta.json").read_text())
    return np.memmap(tokens_dir / f"{split}.bin", dtype=np.dtype(meta["dtype"]), mode="r")


class RandomWindows:
    """Random (x, y) windows of length block_size, y shifted by one token."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, seed: int) -> None:
        if len(data) <= block_size + 1:
            raise ValueError(f"only {len(data)} tokens: fewer than one window of {block_size + 1}")
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.batches = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.data) - self.block_size - 1, (self.batch_size,), generator=self.gen)
        rows = np.stack([self.data[s: s + self.block_size + 1] for s in starts.tolist()]).astype(np.int64)
        chunk = torch.from_numpy(rows)
        self.batches += 1
        return chunk[:, :-1], chunk[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])
        self.gen.set_state(state["generator"])


def sequential_windows(data: np.ndarray, block_size: int, batch_size: int,
                       max_tokens: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows covering the split once (every token after the first is predicted once)."""
    n = len(data) - 1 if max_tokens is None else min(len(data) - 1, max_tokens)
    starts = list(range(0, n, block_size))
    for i in range(0, len(starts), batch_size):
        xs, ys = [], []
        for s in starts[i: i + batch_size]:
            length = min(block_size, n - s)
            xs.append(torch.from_numpy(data[s: s + length].astype(np.int64)))
            ys.append(torch.from_numpy(data[s + 1: s + 1 + length].astype(np.int64)))
        if all(len(x) == len(xs[0]) for x in xs):
            yield torch.stack(xs), torch.stack(ys)
        else:  # the last, shorter window goes alone
            for x, y in zip(xs, ys):
                yield x[None], y[None]
