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


class _Diversity:
    """What a source contributes after cleaning, summed one record at a time."""

    def __init__(self) -> None:
        self.documents = self.characters = self.tokens = 0
        self.lengths: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()

    def add(self, rec: Record) -> None:
        n = len(rec["text"])
        self.documents += 1
        self.characters += n
        self.tokens += rec.get("tokens", 0)
        self.lengths.update(length_histogram([n]))
        self.languages[rec.get("language", "unknown")] += 1  # type: ignore[call-overload]

    def summary(self) -> dict[str, Any]:
        return {"documents": self.documents, "characters": self.characters, "tokens": self.tokens,
                "length_histogram": dict(sorted(self.lengths.items())),
                "languages": dict(self.languages.most_common())}


def diversity(records: list[Record]) -> dict[str, Any]:
    """What a source contributes after cleaning: size, length spread and languages."""
    d = _Diversity()
    for rec in records:
        d.add(rec)
    return d.summary()


def _funnel(n_in: int, by_rule: Counter[str], info: dict[str, Any]) -> list[dict[str, Any]]:
    funnel = [{"step": "read", "documents": n_in, "removed": 0}]
    left = n_in
    for rule in PHASE1_RULES:
        if by_rule.get(rule):
            left -= by_rule[rule]
            funnel.append({"step": rule, "documents": left, "removed": by_rule[rule]})
    return funnel + [f for f in info.get("funnel", []) if f["removed"] or f["step"] == "near dedup"]


class LedgerBuilder:
    """The ledger, built one record at a time (the stage never holds the corpus): add every kept
    and every rejected record once, then `build`."""

    def __init__(self) -> None:
        self.kept = _Diversity()
        self.sources: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"kept": 0, "rejected": 0, "by_rule": Counter(), "chars": 0, "tokens": 0, "div": _Diversity()})
        self.rules: dict[str, dict[str, Any]] = {}
        self.splits = {name: {"documents": 0, "characters": 0, "bytes": 0, "tokens": 0,
                              "ids": [] if name != "train" else None} for name in ("train", "val", "test")}
        self.rejected = {"documents": 0, "characters": 0, "tokens": 0}
        self.pii: Counter[str] = Counter()
        self.filled: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()

    def _both(self, rec: Record) -> None:
        self.pii.update(rec.get("pii") or {})  # type: ignore[call-overload]
        self.filled.update(f"{field}:{how}" for field, how in (rec.get("filled") or {}).items())  # type: ignore[attr-defined]
        for flag in ("gutenberg_stripped", "html_stripped", "control_chars_removed", "cut"):
            if rec.get(flag):
                self.flags[flag] += rec[flag] if flag == "control_chars_removed" else 1  # type: ignore[literal-required]

    def add_kept(self, rec: Record) -> None:
        self._both(rec)
        self.kept.add(rec)
        src = self.sources[rec["source"]]
        src["kept"] += 1
        src["div"].add(rec)
        split = self.splits[rec["split"]]
        split["documents"] += 1
        split["characters"] += len(rec["text"])
        split["bytes"] += len(rec["text"].encode("utf-8"))
        split["tokens"] += rec.get("tokens", 0)
        if split["ids"] is not None:
            split["ids"].append(rec["id"])

    def add_rejected(self, rec: Record) -> None:
        """A rejected record; its token count is estimated here when no step set it."""
        self._both(rec)
        tokens = rec["tokens"] if "tokens" in rec else count_tokens(rec.get("text", ""))
        chars = len(rec.get("text", ""))
        src = self.sources[rec.get("source", "unknown")]
        src["rejected"] += 1
        src["by_rule"][rec["rule"]] += 1
        self.rejected["documents"] += 1
        self.rejected["characters"] += chars
        self.rejected["tokens"] += tokens
        rule = self.rules.setdefault(rec["rule"], {"documents": 0, "characters": 0, "tokens": 0,
                                                   "reasons": Counter(), "examples": []})
        rule["documents"] += 1
        rule["characters"] += chars
        rule["tokens"] += tokens
        rule["reasons"][str(rec.get("reason", ""))[:80]] += 1
        if len(rule["examples"]) < _EXAMPLES:
            rule["examples"].append({k: rec.get(k) for k in ("id", "source", "reason", "duplicate_of", "similarity")
                                     if rec.get(k) is not None} | {"preview": rec.get("text", "")[:_PREVIEW]})

    def build(self, counts: dict[str, dict[str, int]], info: dict[str, Any]) -> dict[str, Any]:
        """Everything data/ledger.json holds (see docs/data.md for each key)."""
        sources = {}
        for name in sorted(set(counts) | set(self.sources)):
            n_in = counts.get(name, {}).get("in", 0)
            src = self.sources[name]
            div = src["div"].summary()
            sources[name] = {
                "in": n_in, "kept": src["kept"], "rejected": src["rejected"],
                "rejected_by_rule": dict(src["by_rule"].most_common()),
                "balanced": n_in == src["kept"] + src["rejected"],
                "characters_in": counts.get(name, {}).get("characters", 0),
                "characters_kept": div["characters"],
                "tokens_kept": div["tokens"],
                "diversity": div,
            }
        rules = {name: {**rule, "reasons": dict(rule["reasons"].most_common(10))} for name, rule in self.rules.items()}
        n_in = sum(c.get("in", 0) for c in counts.values())
        by_rule = Counter({name: rule["documents"] for name, rule in self.rules.items()})
        n_kept, n_rejected = self.kept.documents, self.rejected["documents"]
        return {
            "in": n_in,
            "kept": n_kept,
            "rejected": n_rejected,
            "balanced": n_in == n_kept + n_rejected and all(s["balanced"] for s in sources.values()),
            "characters": {"in": sum(c.get("characters", 0) for c in counts.values()),
                           "kept": self.kept.characters, "rejected": self.rejected["characters"]},
            "tokens": {"kept": self.kept.tokens, "rejected": self.rejected["tokens"],
                       "unit": "words + CJK characters + punctuation marks (before any tokenizer)"},
            "sources": sources,
            "rules": rules,
            "splits": self.splits,
            "funnel": _funnel(n_in, by_rule, info),
            "pii_masked": dict(self.pii),
            "missing_values_filled": dict(self.filled),
            "gutenberg_boilerplate_removed": self.flags["gutenberg_stripped"],
            "html_stripped": self.flags["html_stripped"],
            "control_chars_removed": self.flags["control_chars_removed"],
            "documents_cut": self.flags["cut"],
            "near_dedup": info.get("near_dedup"),
            "split_contamination_removed": by_rule.get("split_contamination", 0),
            "filters": info.get("plan", {}),
            "seconds": info.get("seconds", {}),
        }


def build_ledger(counts: dict[str, dict[str, int]], kept: list[Record], rejected: list[Record],
                 info: dict[str, Any]) -> dict[str, Any]:
    """The ledger of lists of kept and rejected records (LedgerBuilder, for callers holding them)."""
    builder = LedgerBuilder()
    for rec in kept:
        builder.add_kept(rec)
    for rec in rejected:
        builder.add_rejected(rec)
    return builder.build(counts, info)
