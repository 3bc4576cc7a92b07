"""Batches of labelled passages for the training loop, with the interface of tokens/loader.py
(`next`, `state_dict`, `load_state_dict`, `batch_size`, `block_size`, `gen`, `batches`): every
passage once per epoch, in an order seeded by (seed, epoch), so a resume draws the next batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lmforge.errors import LmforgeError


class LabelledBatches:
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        if len(x) < batch_size:
            raise LmforgeError(f"only {len(x)} training passages: fewer than one batch of {batch_size}",
                               f"lower train.batch_size to {max(1, len(x))} or less, or add documents")
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.batch_size, self.block_size, self.seed = batch_size, x.shape[1], seed
        self.per_epoch = len(x) // batch_size
        self.gen = torch.Generator().manual_seed(seed)  # the shared interface; the order comes from (seed, epoch)
        self.batches = 0
        self._order: tuple[int, torch.Tensor] | None = None

    def order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            self._order = (epoch, perm)
        return self._order[1]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pos = divmod(self.batches, self.per_epoch)
        rows = self.order(epoch)[pos * self.batch_size: (pos + 1) * self.batch_size]
        self.batches += 1
        return self.x[rows], self.y[rows]

    def next_with_mask(self) -> Any:
        raise LmforgeError("train.doc_mask does not apply to passages", "set train.doc_mask=false")

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])
        self.gen.set_state(state["generator"])
