"""Mixing sources by weight and token budget, without repeating any document.

Weights are target shares of tokens. The mix is the largest one that every source can fill
from what it has (so no document is repeated: repeats would undo deduplication); the rest of a
source, beyond its share or its `max_tokens`, is rejected with the rule that cut it.
"""

from __future__ import annotations

import random

from lmforge.data.record import Record


def mix(records: list[Record], weights: dict[str, float], budgets: dict[str, int | None],
        seed: int) -> tuple[list[Record], list[Record]]:
    """Downsample sources to their weighted shares and budgets. Records need a `tokens` count."""
    by_source: dict[str, list[Record]] = {}
    for rec in records:
        by_source.setdefault(rec["source"], []).append(rec)
    have = {s: sum(r["tokens"] for r in recs) for s, recs in by_source.items()}
    limit: dict[str, float] = {s: float(budgets.get(s) or have[s]) for s in by_source}
    rule = {s: "token_budget" for s in by_source if budgets.get(s) and budgets[s] < have[s]}
    w = {s: weights.get(s, 1.0) for s in by_source}
    if len(by_source) > 1 and len(set(w.values())) > 1:
        total = sum(w.values())
        # the largest total whose weighted shares fit within every source's tokens (and budget)
        scale = min(min(have[s], limit[s]) / (w[s] / total) for s in by_source)
        for s in by_source:
            share = scale * w[s] / total
            if share < limit[s] - 0.5:
                limit[s] = share
                rule.setdefault(s, "mixing")
    kept_ids: set[int] = set()
    rejected: list[Record] = []
    for s, recs in by_source.items():
        if have[s] <= limit[s]:
            kept_ids.update(id(r) for r in recs)
            continue
        order = list(recs)
        random.Random(f"{seed}:{s}").shuffle(order)  # which documents fill the share: seeded
        used = 0
        for rec in order:
            if used + rec["tokens"] <= limit[s]:
                used += rec["tokens"]
                kept_ids.add(id(rec))
            else:
                why = ("token budget" if rule[s] == "token_budget" else f"weight {w[s]:g}")
                rejected.append({**rec, "rule": rule[s],
                                 "reason": f"beyond source '{s}' share of {int(limit[s]):,} tokens ({why})"})
    return [r for r in records if id(r) in kept_ids], rejected
