"""Corpus-wide steps on cleaned records: boilerplate lines, exact and near dedup, reference dedup.

Each function takes the kept records and returns (kept, rejected); a rejected record carries
`rule`, `reason` and, for duplicates, `duplicate_of` and `similarity`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import xxhash

from lmforge.config.schema import NearDedupConfig
from lmforge.console import Ticker
from lmforge.data import quality
from lmforge.data.clean import too_short
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
    """Keeps the first record of each normalised text; holds a 128-bit digest and an id per text."""

    def __init__(self) -> None:
        self.seen: dict[bytes, str] = {}

    def apply(self, rec: Record) -> tuple[Record, bool]:
        digest = text_hash(rec["text"])
        first = self.seen.get(bytes.fromhex(digest[:32]))
        if first is not None:
            return reject(rec, "exact_duplicate", f"same normalised text as {first}", duplicate_of=first,
                          similarity=1.0), True
        self.seen[bytes.fromhex(digest[:32])] = rec["id"]
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


def _keeper(members: list[int], records: list[Record], rule: str) -> int:
    """The member to keep: deterministic for every rule (ties go to the earliest record)."""
    if rule == "longest":
        return min(members, key=lambda i: (-_chars(records[i]), i))
    if rule == "quality":
        return min(members, key=lambda i: (-_quality(records[i]), i))
    return min(members)


def near_dedup(records: list[Record], cfg: NearDedupConfig, seed: int) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """MinHash LSH clusters; keep one member per cluster (or tag all with the cluster when
    action=cluster). Every record gets `cluster`, the id of its cluster's kept member."""
    index = _index(cfg, seed)
    ticker = Ticker("data: near dedup", len(records), "documents hashed")
    for rec in records:
        index.add(rec["text"])
        ticker.advance()
    return near_decisions(index, records, cfg)


def near_decisions(index: NearDedup, records: list[Record], cfg: NearDedupConfig
                   ) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """near_dedup's decisions for records already added to `index`, in the same order. The records
    may be rows without text that carry `chars` (and `quality` for keep=quality) instead. Each
    record gets its `cluster` in place; only clusters of two or more get tables, so a corpus of
    mostly unique documents costs no memory per document here."""
    res: NearDupResult = index.clusters()
    groups: dict[int, list[int]] = {}
    for i, root in enumerate(res.cluster):
        if root != i:  # the root is the cluster's smallest index, so it comes first
            groups.setdefault(root, [root]).append(i)
    kept, rejected = [], []
    keeper_of = {root: _keeper(members, records, cfg.keep) for root, members in groups.items()}
    for i, rec in enumerate(records):
        k = keeper_of.get(res.cluster[i], i)
        rec["cluster"] = records[k]["id"]
        if i == k or cfg.action == "cluster":
            kept.append(rec)
            continue
        pair = (min(i, k), max(i, k))
        sim = res.pairs.get(pair)
        if sim is None:  # linked through other members: measure against the kept one directly
            sim = jaccard(index.shingles[i], index.shingles[k])
        rejected.append(reject(rec, "near_duplicate",
                               f"near-duplicate of {records[k]['id']} (Jaccard {sim:.3f}, threshold {cfg.threshold}, "
                               f"kept by rule '{cfg.keep}')", duplicate_of=records[k]["id"], similarity=round(sim, 4)))
    stats = {"bands": res.bands, "rows": res.rows, "candidate_pairs": res.candidates,
             "verified_pairs": len(res.pairs), "clusters": len(groups),
             "pairs": res.pairs}
    return kept, rejected, stats


def cross_split_contamination(records: list[Record], pairs: dict[tuple[int, int], float],
                              position: dict[str, int]) -> tuple[list[Record], list[Record]]:
    """Remove validation/test records that have a verified near-duplicate in train.

    `pairs` are verified pairs over the indices used when they were found; `position` maps a
    record id to that index. Exact duplicates cannot cross splits: exact dedup ran first."""
    split_of = {position[r["id"]]: r["split"] for r in records if r["id"] in position}
    id_of = {position[r["id"]]: r["id"] for r in records if r["id"] in position}
    bad: dict[str, tuple[str, float]] = {}
    for (i, j), sim in pairs.items():
        si, sj = split_of.get(i), split_of.get(j)
        if si is None or sj is None or si == sj:
            continue
        if si == "train" or sj == "train":
            held, train = (j, i) if si == "train" else (i, j)
            bad[id_of[held]] = (id_of[train], sim)
        else:  # val and test: drop the test copy
            held, other = (i, j) if si == "test" else (j, i)
            bad[id_of[held]] = (id_of[other], sim)
    kept, rejected = [], []
    for rec in records:
        if rec["id"] in bad:
            other, sim = bad[rec["id"]]
            rejected.append(reject(rec, "split_contamination",
                                   f"{rec['split']} document is a near-duplicate (Jaccard {sim:.3f}) of {other}, "
                                   f"which is in another split", duplicate_of=other, similarity=round(sim, 4)))
        else:
            kept.append(rec)
    return kept, rejected
