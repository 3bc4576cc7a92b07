"""Phase 2's compact columns: the 128-bit key index, strings on disk, band keys on disk,
union-find roots, repeated ids, and memory per document that stays small."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lmforge.config.schema import DataConfig
from lmforge.data import columns, stage
from lmforge.data.columns import KeyIndex, StringStore, key128
from lmforge.data.minhash import BandKeys, UnionFind


def test_key_index_finds_keys_in_its_buffer_and_its_sorted_arrays() -> None:
    rng = random.Random(0)
    keys = [rng.getrandbits(128) for _ in range(1000)]
    keys += [(keys[0] >> 64 << 64) | 7, (keys[0] >> 64 << 64) | 9]  # same high half as keys[0]
    index = KeyIndex(buffer=64)
    for i, k in enumerate(keys):
        assert index.get(k) is None
        index[k] = i
    assert len(index) == len(keys)
    assert [index.get(k) for k in keys] == list(range(len(keys)))  # most merged, the last few buffered
    assert index.get(rng.getrandbits(128)) is None and index.get((keys[0] >> 64 << 64) | 8) is None


def test_string_store_round_trips(tmp_path: Path) -> None:
    store = StringStore(str(tmp_path))
    texts = ["doc1", "", "桃花源记#2", "x" * 10_000]
    assert [store.append(t) for t in texts] == [0, 1, 2, 3]
    assert [store[i] for i in (3, 0, 2, 1)] == [texts[3], texts[0], texts[2], texts[1]]


def test_band_keys_columns_survive_flushes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = rng.integers(0, 2**63, size=(20_000, 4), dtype=np.uint64)  # more rows than one flush holds
    keys = BandKeys(4, str(tmp_path))
    for row in table:
        keys.append(row.tolist())
    assert len(keys) == 20_000
    for b in range(4):
        assert np.array_equal(keys.band(b), table[:, b])


def test_union_find_roots_are_each_finds_root() -> None:
    rng = random.Random(1)
    uf = UnionFind(500)
    for _ in range(300):
        uf.union(rng.randrange(500), rng.randrange(500))
    roots = uf.roots()
    assert roots.tolist() == [uf.find(i) for i in range(500)]
    assert all(r <= i for i, r in enumerate(roots.tolist()))  # the root is its set's smallest index


def test_repeated_ids_are_numbered_past_a_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "BUFFER", 8)
    ids = stage._UniqueIds()
    out = [ids({"id": name})["id"] for name in ["a", *(f"u{i}" for i in range(50)), "a", "b", "a", "u3"]]
    assert out[0] == "a" and out[-4:] == ["a#2", "b", "a#3", "u3#2"]
    assert key128("a") != key128("a#2")


def _phase2_peak(tmp_path: Path, n: int) -> int:
    """Peak traced bytes of phase 2 on n short distinct records from two sources."""
    words = ["river", "garden", "letter", "morning", "window", "harbour", "stone", "bridge", "winter", "candle"]
    rng = random.Random(n)

    def records() -> list[dict]:
        out = []
        for i in range(n):
            text = " ".join(rng.choice(words) for _ in range(12)) + f" {i}."
            out.append({"id": f"doc{i}", "source": "ab"[i % 2], "text": text})
        return out

    recs = records()
    folder = tmp_path / f"p{n}"
    spool, rejects = stage.Spool(folder / "kept.jsonl"), stage._Rejects(folder / "rejected.jsonl")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        decisions, _ = stage.run_phase2(lambda: iter(recs), DataConfig(corpus="none", paths=["x"]), spool,
                                        rejects, folder)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        spool.close()
        rejects.spool.close()
    assert len(decisions.rows) == n
    return peak


def test_phase2_memory_per_document_stays_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows as dicts, ids and digests in dicts and sets measured ~910 bytes a document here; the
    # columns measure ~370, transient arrays of the splits included.
    monkeypatch.setattr(columns, "BUFFER", 256)
    _phase2_peak(tmp_path, 200)  # first-call imports and caches
    small, large = _phase2_peak(tmp_path, 500), _phase2_peak(tmp_path, 2000)
    assert (large - small) / 1500 < 600
