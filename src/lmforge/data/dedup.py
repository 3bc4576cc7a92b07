"""Corpus-wide steps on cleaned records: boilerplate lines, exact and near dedup, reference dedup.

Each function takes the kept records and returns (kept, rejected); a rejected record carries
`rule`, `reason` and, for duplicates, `duplicate_of` and `similarity`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

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


def remove_boilerplate_lines(records: list[Record], min_docs: int, min_chars: int) -> tuple[list[Record], list[Record]]:
    """Drop lines that occur in at least `min_docs` documents (navigation, licences, footers),
    the cross-document line rule of CCNet (Wenzek et al. 2020, section 3.3)."""
    if min_docs <= 0:
        return records, []
    df: Counter[str] = Counter()
    for rec in records:
        df.update({ln.strip() for ln in rec["text"].splitlines() if ln.strip()})
    common = {ln for ln, n in df.items() if n >= min_docs}
    kept, rejected = [], []
    for rec in records:
        lines = rec["text"].splitlines()
        new = [ln for ln in lines if ln.strip() not in common]
        if len(new) != len(lines):
            rec = {**rec, "text": "\n".join(new).strip("\n") + "\n", "boilerplate_lines": len(lines) - len(new)}
            why = too_short(rec["text"], min_chars)
            if why:
                rejected.append(reject(rec, "boilerplate", f"only boilerplate lines: {why}"))
                continue
        kept.append(rec)
    return kept, rejected


def exact_dedup(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """Keep the first record of each normalised text."""
    seen: dict[str, str] = {}
    kept, rejected = [], []
    for rec in records:
        digest = text_hash(rec["text"])
        if digest in seen:
            rejected.append(reject(rec, "exact_duplicate", f"same normalised text as {seen[digest]}",
                                   duplicate_of=seen[digest], similarity=1.0))
            continue
        seen[digest] = rec["id"]
        kept.append({**rec, "sha256": digest})
    return kept, rejected


def _index(cfg: NearDedupConfig, seed: int) -> NearDedup:
    return NearDedup(cfg.threshold, cfg.num_perm, cfg.ngram, cfg.cjk_ngram, cfg.verify, seed)


def reference_dedup(records: list[Record], reference: list[Record], cfg: NearDedupConfig,
                    seed: int) -> tuple[list[Record], list[Record]]:
    """Drop records that duplicate (exactly or nearly) a document of an existing corpus."""
    if not reference:
        return records, []
    exact = {text_hash(r["text"]): r["id"] for r in reference}
    index = _index(cfg, seed)
    for ref in reference:
        index.add(ref["text"])
    kept, rejected = [], []
    for rec in records:
        if rec.get("sha256", text_hash(rec["text"])) in exact:
            ref_id = exact[rec.get("sha256", text_hash(rec["text"]))]
            rejected.append(reject(rec, "reference_duplicate", f"same text as {ref_id} in data.dedup_against",
                                   duplicate_of=ref_id, similarity=1.0))
            continue
        hits = index.query(rec["text"])
        if hits:
            i, sim = max(hits, key=lambda h: h[1])
            rejected.append(reject(rec, "reference_duplicate",
                                   f"near-duplicate (Jaccard {sim:.3f}) of {reference[i]['id']} in data.dedup_against",
                                   duplicate_of=reference[i]["id"], similarity=round(sim, 4)))
            continue
        kept.append(rec)
    return kept, rejected


def _keeper(members: list[int], records: list[Record], rule: str) -> int:
    """The member to keep: deterministic for every rule (ties go to the earliest record)."""
    if rule == "longest":
        return min(members, key=lambda i: (-len(records[i]["text"]), i))
    if rule == "quality":
        return min(members, key=lambda i: (-quality.quality_score(records[i]["text"]), i))
    return min(members)


def near_dedup(records: list[Record], cfg: NearDedupConfig, seed: int) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """MinHash LSH clusters; keep one member per cluster (or tag all with the cluster when
    action=cluster). Every record gets `cluster`, the id of its cluster's kept member."""
    index = _index(cfg, seed)
    ticker = Ticker("data: near dedup", len(records), "documents hashed")
    for rec in records:
        index.add(rec["text"])
        ticker.advance()
    res: NearDupResult = index.clusters()
    groups: dict[int, list[int]] = {}
    for i, root in enumerate(res.cluster):
        groups.setdefault(root, []).append(i)
    kept, rejected = [], []
    keeper_of = {root: _keeper(members, records, cfg.keep) for root, members in groups.items()}
    for i, rec in enumerate(records):
        k = keeper_of[res.cluster[i]]
        rec = {**rec, "cluster": records[k]["id"]}
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
             "verified_pairs": len(res.pairs), "clusters": sum(1 for m in groups.values() if len(m) > 1),
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
