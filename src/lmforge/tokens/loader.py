"""Batches from packed token files: memory-mapped, deterministic from a seed, resumable, sharded.

- RandomWindows (pretraining): windows at random offsets, drawn from a torch.Generator.
- EpochWindows: the split cut into non-overlapping windows, shuffled afresh each epoch, each
  window seen once per epoch.
- sequential_windows (evaluation): non-overlapping windows in order, every token predicted once.
- spread_windows (validation during training): a fixed sample of windows spread over the whole split.

Both training loaders have the same interface (`next`, `state_dict`, `load_state_dict`,
`batch_size`, `block_size`, `gen`, `batches`). Their position is part of every checkpoint, and
`load_state_dict` jumps straight to it, so a resumed run draws exactly the next batch without
replaying the skipped ones (the cost HF Trainer pays, transformers #16784).

Distributed: rank r of w sees only its own shard (RandomWindows: a contiguous 1/w of the
stream; EpochWindows: every w-th window of the shuffled order), so ranks never share data.
Document masks: `next_with_mask` adds a (B, T, T) boolean mask, True where a query may attend
to a key (causal and within one document), for attention that must not cross documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lmforge.errors import LmforgeError


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous share of n items (the first n % w ranks get one more)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def gather_windows(data: np.ndarray, starts: np.ndarray, length: int) -> torch.Tensor:
    """Rows data[s: s + length] for every start, as one int64 tensor (one fancy-index read)."""
    idx = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(np.asarray(data[idx], dtype=np.int64))


def document_mask(starts: np.ndarray, block_size: int, doc_starts: np.ndarray) -> torch.Tensor:
    """(B, T, T) bool: query i may attend key j when j <= i and both lie in the same document.
    Built in NumPy: the same three torch ops measured ~100x slower on a busy 2-core machine."""
    pos = starts[:, None] + np.arange(block_size)[None, :]
    doc = np.searchsorted(doc_starts, pos, side="right")
    same = doc[:, :, None] == doc[:, None, :]
    return torch.from_numpy(same & np.tri(block_size, dtype=bool))


class _Windows:
    """What both training loaders share: a batch from `_starts()`, the document mask, and a
    position (batch count + generator state) that goes into checkpoints for exact resume."""

    data: np.ndarray
    block_size: int
    batch_size: int
    doc_starts: np.ndarray | None
    gen: torch.Generator
    batches: int
    _last: np.ndarray | None

    def _starts(self) -> np.ndarray:
        raise NotImplementedError

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self._starts()
        self._last = starts
        chunk = gather_windows(self.data, starts, self.block_size + 1)
        self.batches += 1
        return chunk[:, :-1], chunk[:, 1:]

    def next_with_mask(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like next(), plus the document mask of the batch (needs doc_starts)."""
        if self.doc_starts is None:
            raise ValueError(f"{type(self).__name__} was built without doc_starts: no document mask")
        x, y = self.next()
        assert self._last is not None
        return x, y, document_mask(self._last, self.block_size, self.doc_starts)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])
        self.gen.set_state(state["generator"])


class RandomWindows(_Windows):
    """Random (x, y) windows of length block_size, y shifted by one token."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, doc_starts: np.ndarray | None = None) -> None:
        self.lo, self.hi = shard_bounds(len(data), rank, world_size)
        if self.hi - self.lo <= block_size + 1:
            raise ValueError(f"only {self.hi - self.lo} tokens in this shard: fewer than one window of "
                             f"{block_size + 1}")
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.doc_starts = doc_starts
        # each rank its own stream, so shards are not sampled in lockstep
        self.gen = torch.Generator().manual_seed(seed + 1_000_003 * rank)
        self.batches = 0
        self._last: np.ndarray | None = None

    def _starts(self) -> np.ndarray:
        span = self.hi - self.lo - self.block_size - 1
        return self.lo + torch.randint(span, (self.batch_size,), generator=self.gen).numpy()


class EpochWindows(_Windows):
    """Non-overlapping windows, shuffled each epoch by a permutation seeded with (seed, epoch);
    the position is just the batch count, so resuming computes the epoch and offset directly."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, doc_starts: np.ndarray | None = None) -> None:
        n_windows = (len(data) - 1) // block_size
        # every rank gets the same number of batches, so ranks step together (the rest is dropped)
        self.per_rank = n_windows // world_size
        self.per_epoch = self.per_rank // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"{len(data)} tokens make {n_windows} windows of {block_size}: fewer than one "
                             f"batch of {batch_size} per rank across {world_size} rank(s)")
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.seed, self.rank, self.world_size, self.n_windows = seed, rank, world_size, n_windows
        self.doc_starts = doc_starts
        self.gen = torch.Generator().manual_seed(seed)  # kept for the shared interface; order comes from (seed, epoch)
        self.batches = 0
        self._order: tuple[int, np.ndarray] | None = None
        self._last: np.ndarray | None = None

    @property
    def epoch(self) -> int:
        return self.batches // self.per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """Window indices of this rank for one epoch."""
        if self._order is None or self._order[0] != epoch:
            perm = torch.randperm(self.n_windows, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            self._order = (epoch, perm.numpy()[self.rank::self.world_size][: self.per_rank])
        return self._order[1]

    def _starts(self) -> np.ndarray:
        pos = self.batches % self.per_epoch
        windows = self.order(self.epoch)[pos * self.batch_size: (pos + 1) * self.batch_size]
        return windows.astype(np.int64) * self.block_size


def build_loader(kind: str, data: np.ndarray, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, doc_starts: np.ndarray | None = None
                 ) -> RandomWindows | EpochWindows:
    """The training loader by name: 'random' windows or shuffled 'epoch's."""
    cls = {"random": RandomWindows, "epoch": EpochWindows}.get(kind)
    if cls is None:
        raise LmforgeError(f"unknown loader '{kind}'", "use 'random' or 'epoch'")
    return cls(data, block_size, batch_size, seed, rank, world_size, doc_starts)


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


def spread_windows(data: np.ndarray, block_size: int, batch_size: int,
                   windows: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`windows` non-overlapping full windows at evenly spaced places over the whole split, the
    same every call: a validation estimate on a sample of the split, not on its first pages (a
    split's start is one document's title and cast list, unlike the rest). All full windows when
    the split holds no more than asked."""
    full = (len(data) - 1) // block_size
    if full < 1:
        yield from sequential_windows(data, block_size, batch_size)
        return
    picks = np.arange(full) if windows >= full else np.linspace(0, full - 1, windows).round().astype(np.int64)
    starts = picks * block_size
    for i in range(0, len(starts), batch_size):
        rows = starts[i: i + batch_size]
        xs = np.stack([data[s: s + block_size] for s in rows]).astype(np.int64)
        ys = np.stack([data[s + 1: s + 1 + block_size] for s in rows]).astype(np.int64)
        yield torch.from_numpy(xs), torch.from_numpy(ys)


class MixedWindows:
    """Each batch from two loaders: `share` of its rows from `other`, the rest from `main`.
    Replay in continual training (Robins 1995; Rolnick et al. 2019) mixes a fraction of an earlier
    domain's windows into every batch of the new one. Same interface as the loaders above."""

    def __init__(self, main: RandomWindows | EpochWindows, other: RandomWindows | EpochWindows, share: float) -> None:
        if not 0.0 < share < 1.0:
            raise LmforgeError(f"a replay share must lie strictly between 0 and 1, got {share}")
        if main.block_size != other.block_size:
            raise ValueError("both loaders need the same block_size")
        self.main, self.other, self.share = main, other, share
        self.block_size, self.gen = main.block_size, main.gen
        self.batch_size = main.batch_size
        self.doc_starts = None

    @property
    def batches(self) -> int:
        return self.main.batches

    def split(self) -> tuple[int, int]:
        """Rows from (main, other) in a batch of `batch_size` (at least one from each)."""
        k = min(self.batch_size - 1, max(1, round(self.share * self.batch_size)))
        return self.batch_size - k, k

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.main.batch_size, self.other.batch_size = self.split()
        xa, ya = self.main.next()
        xb, yb = self.other.next()
        return torch.cat([xa, xb]), torch.cat([ya, yb])

    def next_with_mask(self) -> Any:
        raise LmforgeError("train.doc_mask is not available with replay", "set train.doc_mask=false")

    def state_dict(self) -> dict[str, Any]:
        return {"main": self.main.state_dict(), "other": self.other.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "main" not in state:  # a checkpoint keeps one generator: the replayed stream's would be lost
            raise LmforgeError("a run with replay cannot resume from a checkpoint exactly",
                               "start the replay run again from its base")
        self.main.load_state_dict(state["main"])
        self.other.load_state_dict(state["other"])
