"""The ledger: proof that in == kept + rejected, per source and per rule, with characters and
tokens, plus the diversity report, the cleaning funnel and examples of each rule's rejections."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from lmforge.data.record import Record
from lmforge.data.text import count_tokens

# Order of the per-document rules in the datatrove pipeline, for the funnel.
PHASE1_RULES = ["read", "decode", "missing_value", "too_short", "language",
                "gopher_quality", "gopher_repetition", "c4", "fineweb", "code"]
_EXAMPLES = 3
_PREVIEW = 300


def length_histogram(lengths: list[int]) -> dict[str, int]:
    """Documents per power-of-ten character length bucket ('1e3' = 1,000..9,999 characters)."""
    out: Counter[str] = Counter()
    for n in lengths:
        out[f"1e{int(math.log10(n)) if n > 0 else 0}"] += 1
    return dict(sorted(out.items()))


def diversity(records: list[Record]) -> dict[str, Any]:
    """What a source contributes after cleaning: size, length spread and languages."""
    return {
        "documents": len(records),
        "characters": sum(len(r["text"]) for r in records),
        "tokens": sum(r.get("tokens", 0) for r in records),
        "length_histogram": length_histogram([len(r["text"]) for r in records]),
        "languages": dict(Counter(r.get("language", "unknown") for r in records).most_common()),
    }


def _funnel(n_in: int, rejected: list[Record], info: dict[str, Any]) -> list[dict[str, Any]]:
    by_rule = Counter(r["rule"] for r in rejected)
    funnel = [{"step": "read", "documents": n_in, "removed": 0}]
    left = n_in
    for rule in PHASE1_RULES:
        if by_rule.get(rule):
            left -= by_rule[rule]
            funnel.append({"step": rule, "documents": left, "removed": by_rule[rule]})
    return funnel + [f for f in info.get("funnel", []) if f["removed"] or f["step"] == "near dedup"]


def build_ledger(counts: dict[str, dict[str, int]], kept: list[Record], rejected: list[Record],
                 info: dict[str, Any]) -> dict[str, Any]:
    """Everything data/ledger.json holds (see docs/data.md for each key)."""
    for rec in rejected:
        rec.setdefault("tokens", count_tokens(rec.get("text", "")))
    kept_by: dict[str, list[Record]] = defaultdict(list)
    for rec in kept:
        kept_by[rec["source"]].append(rec)
    rej_by: dict[str, list[Record]] = defaultdict(list)
    for rec in rejected:
        rej_by[rec.get("source", "unknown")].append(rec)
    sources = {}
    for src in sorted(set(counts) | set(kept_by) | set(rej_by)):
        n_in = counts.get(src, {}).get("in", 0)
        k, r = kept_by[src], rej_by[src]
        sources[src] = {
            "in": n_in, "kept": len(k), "rejected": len(r),
            "rejected_by_rule": dict(Counter(x["rule"] for x in r).most_common()),
            "balanced": n_in == len(k) + len(r),
            "characters_in": counts.get(src, {}).get("characters", 0),
            "characters_kept": sum(len(x["text"]) for x in k),
            "tokens_kept": sum(x.get("tokens", 0) for x in k),
            "diversity": diversity(k),
        }
    rules: dict[str, Any] = {}
    for rec in rejected:
        rule = rules.setdefault(rec["rule"], {"documents": 0, "characters": 0, "tokens": 0,
                                              "reasons": Counter(), "examples": []})
        rule["documents"] += 1
        rule["characters"] += len(rec.get("text", ""))
        rule["tokens"] += rec["tokens"]
        rule["reasons"][str(rec.get("reason", ""))[:80]] += 1
        if len(rule["examples"]) < _EXAMPLES:
            rule["examples"].append({k: rec.get(k) for k in ("id", "source", "reason", "duplicate_of", "similarity")
                                     if rec.get(k) is not None} | {"preview": rec.get("text", "")[:_PREVIEW]})
    for rule in rules.values():
        rule["reasons"] = dict(rule["reasons"].most_common(10))
    splits = {}
    for name in ("train", "val", "test"):
        docs = [r for r in kept if r["split"] == name]
        splits[name] = {"documents": len(docs), "characters": sum(len(d["text"]) for d in docs),
                        "bytes": sum(len(d["text"].encode("utf-8")) for d in docs),
                        "tokens": sum(d.get("tokens", 0) for d in docs),
                        "ids": [d["id"] for d in docs] if name != "train" else None}
    pii: Counter[str] = Counter()
    filled: Counter[str] = Counter()
    for rec in kept + rejected:
        pii.update(rec.get("pii") or {})
        filled.update(f"{field}:{how}" for field, how in (rec.get("filled") or {}).items())
    n_in = sum(c.get("in", 0) for c in counts.values())
    return {
        "in": n_in,
        "kept": len(kept),
        "rejected": len(rejected),
        "balanced": n_in == len(kept) + len(rejected) and all(s["balanced"] for s in sources.values()),
        "characters": {"in": sum(c.get("characters", 0) for c in counts.values()),
                       "kept": sum(len(r["text"]) for r in kept),
                       "rejected": sum(len(r.get("text", "")) for r in rejected)},
        "tokens": {"kept": sum(r.get("tokens", 0) for r in kept), "rejected": sum(r["tokens"] for r in rejected),
                   "unit": "words + CJK characters + punctuation marks (before any tokenizer)"},
        "sources": sources,
        "rules": rules,
        "splits": splits,
        "funnel": _funnel(n_in, rejected, info),
        "pii_masked": dict(pii),
        "missing_values_filled": dict(filled),
        "gutenberg_boilerplate_removed": sum(1 for r in kept + rejected if r.get("gutenberg_stripped")),
        "html_stripped": sum(1 for r in kept + rejected if r.get("html_stripped")),
        "near_dedup": info.get("near_dedup"),
        "split_contamination_removed": sum(1 for r in rejected if r["rule"] == "split_contamination"),
        "filters": info.get("plan", {}),
        "seconds": info.get("seconds", {}),
    }
