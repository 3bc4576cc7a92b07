"""Mixing sources by weight and token budget, without repeating any document.

Weights are target shares of tokens. The mix is the largest one that every source can fill
from what it has (so no document is repeated: repeats would undo deduplication); the rest of a
source, beyond its share or its `max_tokens`, is rejected with the rule that cut it.
"""

from __future__ import annotations

import random

import numpy as np

from lmforge.data.record import Record


def mix_columns(sources: list[str], source_of: np.ndarray, tokens: np.ndarray, weights: dict[str, float],
                budgets: dict[str, int | None], seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[str, str]]]:
    """`mix` on columns: document i is from `sources[source_of[i]]` and has `tokens[i]`. Returns
    (kept mask, rejected indices in the order they were cut, {source: (rule, reason)} of the
    sources that were cut)."""
    codes, first = np.unique(source_of, return_index=True)
    by_source = {sources[int(c)]: np.flatnonzero(source_of == c) for c in codes[np.argsort(first)]}
    have = {s: int(tokens[idx].sum()) for s, idx in by_source.items()}
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
    kept = np.ones(len(source_of), dtype=bool)
    rejected: list[np.ndarray] = []
    why: dict[str, tuple[str, str]] = {}
    for s, idx in by_source.items():
        if have[s] <= limit[s]:
            continue
        order = idx.copy()
        random.Random(f"{seed}:{s}").shuffle(order)  # which documents fill the share: seeded (as a list would be)
        used = 0
        cut = np.zeros(len(order), dtype=bool)
        for j, n in enumerate(tokens[order].tolist()):
            if used + n <= limit[s]:
                used += n
            else:
                cut[j] = True
        kept[order[cut]] = False
        rejected.append(order[cut])
        how = "token budget" if rule[s] == "token_budget" else f"weight {w[s]:g}"
        why[s] = (rule[s], f"beyond source '{s}' share of {int(limit[s]):,} tokens ({how})")
    return kept, np.concatenate(rejected) if rejected else np.zeros(0, dtype=np.int64), why


def mix(records: list[Record], weights: dict[str, float], budgets: dict[str, int | None],
        seed: int) -> tuple[list[Record], list[Record]]:
    """Downsample sources to their weighted shares and budgets. Records need a `tokens` count."""
    names = list(dict.fromkeys(r["source"] for r in records))
    code = {s: i for i, s in enumerate(names)}
    source_of = np.array([code[r["source"]] for r in records], dtype=np.int64)
    tokens = np.array([r["tokens"] for r in records], dtype=np.int64)
    kept, rejected, why = mix_columns(names, source_of, tokens, weights, budgets, seed)
    out = [{**records[i], "rule": why[records[i]["source"]][0], "reason": why[records[i]["source"]][1]}
           for i in rejected.tolist()]
    return [r for r, k in zip(records, kept.tolist()) if k], out
