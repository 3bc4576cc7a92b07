"""MinHash LSH near-duplicate detection with verified pairs and union-find clusters.

Broder 1997 (MinHash), Leskovec et al. "Mining of Massive Datasets" ch. 3 (banding). Unlike
datatrove's MinHash (fixed 14 bands x 8 rows, no similarity check), the bands and rows come from
the threshold by minimising false-positive plus false-negative area, as datasketch does, and
every candidate pair is verified by its exact (or estimated) Jaccard similarity before it counts.
"""

from __future__ import annotations

import functools
import tempfile
from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import xxhash

from lmforge.data import text as T

_MASK32 = np.uint64(0xFFFFFFFF)


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """Probability that two documents of Jaccard similarity s share at least one band."""
    return 1.0 - (1.0 - s**rows) ** bands


# datasketch weighs both errors 0.5. Every lmforge candidate is verified, so a false positive
# costs only one Jaccard computation while a false negative is a missed duplicate: weigh misses
# 0.95 (at threshold 0.8 and 128 permutations: 16 bands x 8 rows, a pair at Jaccard 0.8 becomes a
# candidate with probability 0.95 instead of 0.40 with datasketch's 9 x 13).
FP_WEIGHT, FN_WEIGHT = 0.05, 0.95


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = FP_WEIGHT,
                  fn_weight: float = FN_WEIGHT) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted areas under the
    candidate curve below the threshold (false positives) and above it (false negatives)."""
    best, best_cost = (1, num_perm), float("inf")
    lo, hi = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1.0 - (1.0 - lo**r) ** b, lo)
            fn = np.trapezoid((1.0 - hi**r) ** b, hi)
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


def shingles(text: str, ngram: int, cjk_ngram: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the document's shingles: word n-grams, or character n-grams
    for CJK text (which has no spaces to split words at)."""
    if T.is_cjk(text):
        units = [c for c in text if not c.isspace()]
        n = cjk_ngram
    else:
        units = text.lower().split()
        n = ngram
    if not units:
        return np.zeros(0, dtype=np.uint64)
    table = {u: xxhash.xxh64_intdigest(u.encode("utf-8")) for u in set(units)}
    ids = np.fromiter(map(table.__getitem__, units), dtype=np.uint64, count=len(units))
    n = min(n, len(ids))  # a short document is one shingle
    m = len(ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    mult = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = (h ^ ids[k:k + m]) * mult  # FNV-1a over the unit hashes
    return np.unique(h)


class MinHasher:
    """num_perm multiply-shift hash functions (Dietzfelbinger et al. 1997), seeded."""

    def __init__(self, num_perm: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self.num_perm = num_perm

    def signature(self, shingle_hashes: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """The minimum of each hash function over the shingles (32-bit values)."""
        sig = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        if len(shingle_hashes) == 0:
            return sig
        with np.errstate(over="ignore"):
            for start in range(0, len(shingle_hashes), chunk):
                x = shingle_hashes[start:start + chunk, None]
                vals = (x * self.a + self.b) >> np.uint64(32)
                np.minimum(sig, vals.min(axis=0), out=sig)
        return sig


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class UnionFind:
    """Union-find over 0..n-1 in one int64 array (8 bytes a document, not a Python list of ints)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def roots(self) -> np.ndarray:
        """find() of every element at once, by pointer jumping."""
        parent = self.parent.copy()
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                return parent
            parent = up


@dataclass
class NearDupResult:
    """Clusters over document indices, with the verified similarity of each linked pair."""

    cluster: np.ndarray  # cluster root (smallest index in the cluster) per document, int64
    pairs: dict[tuple[int, int], float]  # verified pairs (i < j) -> similarity
    candidates: int  # pairs that shared a band, before verification
    bands: int
    rows: int


class ArrayStore:
    """Numpy arrays appended to an unnamed temporary file and read back by index: the shingles of a
    large corpus do not fit in memory (8 bytes a word), so only their offsets stay there."""

    def __init__(self, dtype: type = np.uint64, folder: str | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 -- lives as long as the store
        self._ends = array("Q")

    def append(self, values: np.ndarray) -> None:
        self._file.seek(0, 2)
        self._file.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self._ends.append(self._file.tell())

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> np.ndarray:
        start = self._ends[i - 1] if i > 0 else 0
        self._file.seek(start)
        return np.frombuffer(self._file.read(self._ends[i] - start), dtype=self.dtype)


class BandKeys:
    """The LSH band keys of every document, `bands` 64-bit values a row, in a temporary file: only
    one band's column is in memory at a time (8 bytes a document), when candidates are listed."""

    def __init__(self, bands: int, folder: str | None = None) -> None:
        self.bands = bands
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 -- lives as long as the index
        self._pending = array("Q")
        self._rows = 0

    def append(self, keys: list[int]) -> None:
        self._pending.extend(keys)
        self._rows += 1
        if len(self._pending) >= 1 << 16:
            self._flush()

    def _flush(self) -> None:
        self._file.seek(0, 2)
        self._file.write(self._pending.tobytes())
        self._pending = array("Q")

    def __len__(self) -> int:
        return self._rows

    def band(self, b: int) -> np.ndarray:
        """Band b's key of every document, in index order."""
        self._flush()
        if not self._rows:
            return np.zeros(0, dtype=np.uint64)
        table = np.memmap(self._file, dtype=np.uint64, mode="r", shape=(self._rows, self.bands))
        column = np.array(table[:, b])
        del table
        return column


class NearDedup:
    """Index documents; find verified near-duplicate pairs and cluster them.

    Shingles, signatures and band keys go to temporary files (`folder`): shingles and signatures
    are read back only for the candidate pairs being verified, band keys one band at a time."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, cjk_ngram: int = 5,
                 verify: str = "exact", seed: int = 1, folder: str | None = None) -> None:
        self.threshold, self.verify = threshold, verify
        self.ngram, self.cjk_ngram = ngram, cjk_ngram
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        self.hasher = MinHasher(num_perm, seed)
        self.shingles = ArrayStore(np.uint64, folder)
        self.sigs = ArrayStore(np.uint32, folder)  # MinHasher values are 32-bit
        self.keys = BandKeys(self.bands, folder)
        self._lookup: list[dict[int, list[int]]] | None = None

    def _band_keys(self, sig: np.ndarray) -> list[int]:
        r = self.rows
        sig32 = sig.astype(np.uint32)
        return [xxhash.xxh64_intdigest(sig32[i * r:(i + 1) * r].tobytes()) for i in range(self.bands)]

    def add(self, text: str) -> int:
        """Index one document; returns its index."""
        sh = shingles(text, self.ngram, self.cjk_ngram)
        sig = self.hasher.signature(sh)
        i = len(self.sigs)
        self.shingles.append(sh)
        self.sigs.append(sig)
        self.keys.append(self._band_keys(sig))
        self._lookup = None
        return i

    def __len__(self) -> int:
        return len(self.sigs)

    def similarity(self, i: int, j: int) -> float:
        if self.verify == "exact":
            return jaccard(self.shingles[i], self.shingles[j])
        return float(np.mean(self.sigs[i] == self.sigs[j]))

    def _buckets(self, k: np.ndarray) -> Iterator[list[int]]:
        """Indices sharing one key in a band (buckets of two or more), in index order."""
        order = np.argsort(k, kind="stable")
        ks = k[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if len(ks) else np.zeros(0, dtype=np.int64)
        sizes = np.diff(np.r_[starts, len(ks)])
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            yield order[start:start + size].tolist()

    def candidate_pairs(self) -> set[tuple[int, int]]:
        pairs: set[tuple[int, int]] = set()
        for b in range(self.bands):
            for members in self._buckets(self.keys.band(b)):
                first = members[0]
                # Linking each member to the bucket's first keeps work linear in bucket size;
                # other links arrive through other bands or transitively through union-find.
                for other in members[1:]:
                    pairs.add((first, other))
                if len(members) <= 50:
                    for a in range(1, len(members)):
                        for b in range(a + 1, len(members)):
                            pairs.add((members[a], members[b]))
        return pairs

    def clusters(self) -> NearDupResult:
        candidates = self.candidate_pairs()
        uf = UnionFind(len(self))
        verified: dict[tuple[int, int], float] = {}
        for i, j in sorted(candidates):
            sim = 1.0 if self.verify == "none" else self.similarity(i, j)
            if self.verify == "none" or sim >= self.threshold:
                verified[(i, j)] = sim
                uf.union(i, j)
        return NearDupResult(uf.roots(), verified, len(candidates),
                             self.bands, self.rows)

    def query(self, text: str) -> list[tuple[int, float]]:
        """Indexed documents that are verified near-duplicates of `text` (not indexed)."""
        if self._lookup is None:
            self._lookup = []
            for b in range(self.bands):
                table: dict[int, list[int]] = defaultdict(list)
                for i, key in enumerate(self.keys.band(b).tolist()):
                    table[key].append(i)
                self._lookup.append(table)
        sh = shingles(text, self.ngram, self.cjk_ngram)
        sig = self.hasher.signature(sh).astype(np.uint32)
        found: set[int] = set()
        for table, key in zip(self._lookup, self._band_keys(sig)):
            found.update(table.get(key, ()))
        out = []
        for i in sorted(found):
            if self.verify == "exact":
                sim = jaccard(sh, self.shingles[i])
            elif self.verify == "estimate":
                sim = float(np.mean(sig == self.sigs[i]))
            else:
                sim = 1.0
            if self.verify == "none" or sim >= self.threshold:
                out.append((i, sim))
        return out
