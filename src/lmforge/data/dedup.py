"""Corpus-wide steps on cleaned records: boilerplate lines, exact and near dedup, reference dedup.

Each function takes the kept records and returns (kept, rejected); a rejected record carries
`rule`, `reason` and, for duplicates, `duplicate_of` and `similarity`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import xxhash

from lmforge.config.schema import NearDedupConfig
from lmforge.console import Ticker
from lmforge.data import quality
from lmforge.data.clean import too_short
from lmforge.data.columns import KeyIndex, StringStore
from lmforge.data.minhash import NearDedup, NearDupResult, jaccard
from lmforge.data.record import Record

_SPACES = re.compile(r"\s+")


def reject(rec: Record, rule: str, reason: str, **extra: Any) -> Record:
    return {**rec, "rule": rule, "reason": reason, **extra}


def text_hash(text: str) -> str:
    """SHA-256 of the text with whitespace collapsed and case folded: the exact-dedup key."""
    return hashlib.sha256(_SPACES.sub(" ", text).strip().casefold().encode("utf-8")).hexdigest()


def _line_key(line: str) -> int:
    return xxhash.xxh64_intdigest(line.encode("utf-8"))


class Boilerplate:
    """Lines that occur in at least `min_docs` documents (navigation, licences, footers), the
    cross-document line rule of CCNet (Wenzek et al. 2020, section 3.3). Lines are counted by a
    64-bit hash, so memory grows with the number of distinct lines, not their length."""

    def __init__(self, min_docs: int, min_chars: int) -> None:
        self.min_docs, self.min_chars = min_docs, min_chars
        self.df: Counter[int] = Counter()
        self.common: set[int] = set()

    def count(self, text: str) -> None:
        self.df.update({_line_key(ln.strip()) for ln in text.splitlines() if ln.strip()})

    def freeze(self) -> None:
        self.common = {key for key, n in self.df.items() if n >= self.min_docs}
        self.df = Counter()

    def apply(self, rec: Record) -> tuple[Record, bool]:
        """(record without its boilerplate lines, whether it is rejected for holding only them)."""
        lines = rec["text"].splitlines()
        new = [ln for ln in lines if _line_key(ln.strip()) not in self.common]
        if len(new) == len(lines):
            return rec, False
        rec = {**rec, "text": "\n".join(new).strip("\n") + "\n", "boilerplate_lines": len(lines) - len(new)}
        why = too_short(rec["text"], self.min_chars)
        if why:
            return reject(rec, "boilerplate", f"only boilerplate lines: {why}"), True
        return rec, False


def remove_boilerplate_lines(records: list[Record], min_docs: int, min_chars: int) -> tuple[list[Record], list[Record]]:
    """Drop lines that occur in at least `min_docs` documents (see Boilerplate)."""
    if min_docs <= 0:
        return records, []
    rule = Boilerplate(min_docs, min_chars)
    for rec in records:
        rule.count(rec["text"])
    rule.freeze()
    return _partition(rule.apply(rec) for rec in records)


def _partition(results: Iterable[tuple[Record, bool]]) -> tuple[list[Record], list[Record]]:
    kept: list[Record] = []
    rejected: list[Record] = []
    for rec, dropped in results:
        (rejected if dropped else kept).append(rec)
    return kept, rejected


class ExactDedup:
    """Keeps the first record of each normalised text. Holds a 128-bit digest per text (in a
    KeyIndex, 24 bytes) and the first record's id on disk (`folder`)."""

    def __init__(self, folder: str | None = None) -> None:
        self.seen = KeyIndex()
        self.first = StringStore(folder)

    def apply(self, rec: Record) -> tuple[Record, bool]:
        digest = text_hash(rec["text"])
        key = int(digest[:32], 16)
        at = self.seen.get(key)
        if at is not None:
            first = self.first[at]
            return reject(rec, "exact_duplicate", f"same normalised text as {first}", duplicate_of=first,
                          similarity=1.0), True
        self.seen[key] = self.first.append(rec["id"])
        return {**rec, "sha256": digest}, False


def exact_dedup(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """Keep the first record of each normalised text."""
    rule = ExactDedup()
    return _partition(rule.apply(rec) for rec in records)


def _index(cfg: NearDedupConfig, seed: int, folder: str | None = None) -> NearDedup:
    return NearDedup(cfg.threshold, cfg.num_perm, cfg.ngram, cfg.cjk_ngram, cfg.verify, seed, folder)


class ReferenceDedup:
    """Drops records that duplicate (exactly or nearly) a document of an existing corpus."""

    def __init__(self, reference: Iterable[Record], cfg: NearDedupConfig, seed: int, folder: str | None = None) -> None:
        self.exact: dict[str, str] = {}
        self.ids: list[str] = []
        self.index = _index(cfg, seed, folder)
        for ref in reference:
            self.exact[text_hash(ref["text"])] = ref["id"]
            self.ids.append(ref["id"])
            self.index.add(ref["text"])

    def apply(self, rec: Record) -> tuple[Record, bool]:
        digest = rec.get("sha256") or text_hash(rec["text"])
        if digest in self.exact:
            ref_id = self.exact[digest]
            return reject(rec, "reference_duplicate", f"same text as {ref_id} in data.dedup_against",
                          duplicate_of=ref_id, similarity=1.0), True
        hits = self.index.query(rec["text"])
        if hits:
            i, sim = max(hits, key=lambda h: h[1])
            return reject(rec, "reference_duplicate",
                          f"near-duplicate (Jaccard {sim:.3f}) of {self.ids[i]} in data.dedup_against",
                          duplicate_of=self.ids[i], similarity=round(sim, 4)), True
        return rec, False


def reference_dedup(records: list[Record], reference: list[Record], cfg: NearDedupConfig,
                    seed: int) -> tuple[list[Record], list[Record]]:
    """Drop records that duplicate (exactly or nearly) a document of an existing corpus."""
    if not reference:
        return records, []
    rule = ReferenceDedup(reference, cfg, seed)
    return _partition(rule.apply(rec) for rec in records)


def _chars(rec: Record) -> int:
    return int(rec["chars"]) if "chars" in rec else len(rec["text"])  # type: ignore[typeddict-item]


def _quality(rec: Record) -> float:
    return float(rec["quality"]) if "quality" in rec else quality.quality_score(rec["text"])  # type: ignore[typeddict-item]


def _keeper(members: list[int], rank: Callable[[int], float] | None) -> int:
    """The member to keep: the highest `rank` (None: the first); ties go to the earliest record."""
    if rank is None:
        return min(members)
    return min(members, key=lambda i: (-rank(i), i))


def _rank(records: list[Record], rule: str) -> Callable[[int], float] | None:
    if rule == "longest":
        return lambda i: _chars(records[i])
    if rule == "quality":
        return lambda i: _quality(records[i])
    return None


def near_dedup(records: list[Record], cfg: NearDedupConfig, seed: int) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """MinHash LSH clusters; keep one member per cluster (or tag all with the cluster when
    action=cluster). Every record gets `cluster`, the id of its cluster's kept member."""
    index = _index(cfg, seed)
    ticker = Ticker("data: near dedup", len(records), "documents hashed")
    for rec in records:
        index.add(rec["text"])
        ticker.advance()
    return near_decisions(index, records, cfg)


def near_keepers(index: NearDedup, rank: Callable[[int], float] | None, cfg: NearDedupConfig
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For documents already added to `index`: (keeper, similarity, stats). keeper[i] is the index
    of the member kept for i's cluster (i itself when alone); similarity[i] is i's Jaccard to its
    keeper when i is removed, NaN otherwise. `rank` orders members for keep=longest/quality.
    Only clusters of two or more get tables, so mostly unique documents cost 16 bytes each."""
    res: NearDupResult = index.clusters()
    n = len(res.cluster)
    keeper = np.arange(n, dtype=np.int64)
    similarity = np.full(n, np.nan)
    groups: dict[int, list[int]] = {}
    for i in np.flatnonzero(res.cluster != keeper).tolist():  # the root is the smallest index: it comes first
        root = int(res.cluster[i])
        groups.setdefault(root, [root]).append(i)
    for members in groups.values():
        k = _keeper(members, rank)
        keeper[members] = k
        if cfg.action == "cluster":
            continue
        for i in members:
            if i != k:
                sim = res.pairs.get((min(i, k), max(i, k)))
                if sim is None:  # linked through other members: measure against the kept one directly
                    sim = jaccard(index.shingles[i], index.shingles[k])
                similarity[i] = sim
    stats = {"bands": res.bands, "rows": res.rows, "candidate_pairs": res.candidates,
             "verified_pairs": len(res.pairs), "clusters": len(groups), "pairs": res.pairs}
    return keeper, similarity, stats


def near_reason(keeper_id: str, sim: float, cfg: NearDedupConfig) -> str:
    return f"near-duplicate of {keeper_id} (Jaccard {sim:.3f}, threshold {cfg.threshold}, kept by rule '{cfg.keep}')"


def near_decisions(index: NearDedup, records: list[Record], cfg: NearDedupConfig
                   ) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """near_dedup's decisions for records already added to `index`, in the same order. The records
    may be rows without text that carry `chars` (and `quality` for keep=quality) instead. Each
    record gets its `cluster` in place."""
    keeper, similarity, stats = near_keepers(index, _rank(records, cfg.keep), cfg)
    kept, rejected = [], []
    for i, rec in enumerate(records):
        k = int(keeper[i])
        rec["cluster"] = records[k]["id"]
        if i == k or cfg.action == "cluster":
            kept.append(rec)
            continue
        sim = float(similarity[i])
        rejected.append(reject(rec, "near_duplicate", near_reason(records[k]["id"], sim, cfg),
                               duplicate_of=records[k]["id"], similarity=round(sim, 4)))
    return kept, rejected, stats


def contaminated(split_at: np.ndarray, pairs: dict[tuple[int, int], float]) -> dict[int, tuple[int, float]]:
    """Held-out documents with a verified near-duplicate in another split: {index: (other index,
    similarity)}. `split_at` holds each index's split (0 train, 1 val, 2 test; -1 in none); a
    val/test pair drops the test copy. Exact duplicates cannot cross splits: exact dedup ran first."""
    bad: dict[int, tuple[int, float]] = {}
    for (i, j), sim in pairs.items():
        si = int(split_at[i]) if i < len(split_at) else -1
        sj = int(split_at[j]) if j < len(split_at) else -1
        if si < 0 or sj < 0 or si == sj:
            continue
        if si == 0 or sj == 0:
            held, other = (j, i) if si == 0 else (i, j)
        else:
            held, other = (i, j) if si == 2 else (j, i)
        bad[held] = (other, sim)
    return bad


def contamination_reason(split: str, other_id: str, sim: float) -> str:
    return f"{split} document is a near-duplicate (Jaccard {sim:.3f}) of {other_id}, which is in another split"


def cross_split_contamination(records: list[Record], pairs: dict[tuple[int, int], float],
                              position: dict[str, int]) -> tuple[list[Record], list[Record]]:
    """Remove validation/test records that have a verified near-duplicate in train.

    `pairs` are verified pairs over the indices used when they were found; `position` maps a
    record id to that index."""
    at = {position[r["id"]]: r for r in records if r["id"] in position}
    split_at = np.full(max(at, default=-1) + 1, -1, dtype=np.int8)
    for i, rec in at.items():
        split_at[i] = ("train", "val", "test").index(rec["split"])
    bad = {at[held]["id"]: (at[other]["id"], sim) for held, (other, sim) in contaminated(split_at, pairs).items()}
    kept, rejected = [], []
    for rec in records:
        if rec["id"] in bad:
            other, sim = bad[rec["id"]]
            rejected.append(reject(rec, "split_contamination", contamination_reason(rec["split"], other, sim),
                                   duplicate_of=other, similarity=round(sim, 4)))
        else:
            kept.append(rec)
    return kept, rejected
