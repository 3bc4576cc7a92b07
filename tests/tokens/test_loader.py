"""Loaders: windows are shifted pairs, resume is exact, ranks are disjoint, masks stay in documents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.tokens.loader import (
    EpochWindows,
    RandomWindows,
    build_loader,
    document_mask,
    sequential_windows,
    shard_bounds,
    spread_windows,
)

DATA = np.arange(5000, dtype=np.uint32)  # token i has id i, so a window's ids are its positions


@pytest.mark.parametrize("kind", ["random", "epoch"])
def test_targets_are_inputs_shifted_by_one(kind: str) -> None:
    loader = build_loader(kind, DATA, 32, 8, seed=0)
    x, y = loader.next()
    assert x.shape == y.shape == (8, 32) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # consecutive positions of the stream
    assert loader.batches == 1


@pytest.mark.parametrize("kind", ["random", "epoch"])
def test_resume_continues_with_exactly_the_next_batch(kind: str) -> None:
    ref = build_loader(kind, DATA, 16, 4, seed=7)
    for _ in range(37):  # EpochWindows: 312 windows = 78 batches per epoch, so the 100 below cross an epoch
        ref.next()
    state = ref.state_dict()
    expected = [ref.next()[0] for _ in range(100)]
    resumed = build_loader(kind, DATA, 16, 4, seed=7)
    resumed.load_state_dict(state)
    assert resumed.batches == 37
    got = [resumed.next()[0] for _ in range(100)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    fresh = build_loader(kind, DATA, 16, 4, seed=7)
    assert not torch.equal(fresh.next()[0], expected[0])  # without the state it would replay batch 1


def test_random_windows_match_the_original_sampler() -> None:
    """Single-rank RandomWindows draws what the foundation's loader drew (old checkpoints resume)."""
    gen = torch.Generator().manual_seed(3)
    starts = torch.randint(len(DATA) - 64 - 1, (4,), generator=gen)
    x, _ = RandomWindows(DATA, 64, 4, seed=3).next()
    assert x[:, 0].tolist() == starts.tolist()


def test_epoch_sees_every_window_once_then_reshuffles() -> None:
    loader = EpochWindows(DATA, 50, 5, seed=0)  # 99 windows -> 19 batches of 5 per epoch
    firsts = [loader.next()[0][:, 0] for _ in range(loader.per_epoch)]
    starts = torch.cat(firsts).tolist()
    assert len(starts) == len(set(starts)) == 95 and all(s % 50 == 0 for s in starts)
    second = torch.cat([loader.next()[0][:, 0] for _ in range(loader.per_epoch)]).tolist()
    assert second != starts and loader.epoch == 2


@pytest.mark.parametrize("kind", ["random", "epoch"])
def test_ranks_see_disjoint_data(kind: str) -> None:
    seen = []
    for rank in range(3):
        loader = build_loader(kind, DATA, 16, 4, seed=0, rank=rank, world_size=3)
        tokens: set[int] = set()
        for _ in range(getattr(loader, "per_epoch", 40)):  # within one epoch (each reshuffles)
            x, _ = loader.next()
            tokens |= set(x.flatten().tolist())
        seen.append(tokens)
    if kind == "random":  # contiguous shards: token sets are disjoint
        assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    else:  # windows are disjoint; each rank's window starts differ
        starts = [{t for t in s if t % 16 == 0} for s in seen]
        assert not (starts[0] & starts[1]) and not (starts[1] & starts[2]) and not (starts[0] & starts[2])
        assert sum(map(len, starts)) == 3 * 26 * 4  # 312 windows = 104 per rank = 26 batches of 4


def test_shard_bounds_cover_everything_once() -> None:
    bounds = [shard_bounds(10, r, 3) for r in range(3)]
    assert bounds == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(ValueError):
        shard_bounds(10, 3, 3)


def test_document_mask_is_causal_and_within_documents() -> None:
    doc_starts = np.array([0, 5, 12])
    mask = document_mask(np.array([3]), 6, doc_starts)[0]  # positions 3..8: doc 0 (3,4), doc 1 (5..8)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0, 0] = expected[1, :2] = True
    for i in range(2, 6):
        expected[i, 2: i + 1] = True
    assert torch.equal(mask, expected)
    loader = RandomWindows(DATA, 8, 2, seed=0, doc_starts=np.arange(0, 5000, 3))
    _, _, m = loader.next_with_mask()
    assert m.shape == (2, 8, 8) and m.sum(-1).max() <= 3  # documents of 3 tokens


def test_too_little_data_is_reported() -> None:
    with pytest.raises(ValueError, match="fewer than one window"):
        RandomWindows(DATA[:10], 16, 2, seed=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochWindows(DATA[:100], 16, 8, seed=0)
    with pytest.raises(LmforgeError, match="unknown loader"):
        build_loader("shuffled", DATA, 16, 2, seed=0)


def test_spread_windows_sample_the_whole_split_the_same_way_each_time() -> None:
    batches = list(spread_windows(DATA, 50, 4, 10))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert [len(b[0]) for b in batches] == [4, 4, 2] and torch.equal(y, x + 1)
    starts = x[:, 0].tolist()
    assert starts[0] == 0 and starts[-1] >= 4800  # from the first window to the last full one
    assert all(b - a >= 50 for a, b in itertools.pairwise(starts))  # non-overlapping, in order
    again = torch.cat([b[0] for b in spread_windows(DATA, 50, 4, 10)])
    assert torch.equal(x, again)
    # asking for more windows than the split holds gives every full window once
    every = torch.cat([b[0] for b in spread_windows(DATA[:501], 50, 4, 99)])
    assert every[:, 0].tolist() == list(range(0, 500, 50))


def test_sequential_windows_predict_every_token_once() -> None:
    targets = torch.cat([y.flatten() for _, y in sequential_windows(DATA[:1000], 64, 4)])
    assert targets.tolist() == list(range(1, 1000))
