"""Leakage check: how much of each held-out split's text already appears in train.

The measure is GPT-3's contamination check (Brown et al. 2020, appendix C): word 13-grams,
lowercased with punctuation dropped; a held-out n-gram that also occurs anywhere in train counts
as seen. Near-duplicate documents that straddle splits show up here as high per-document overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

WORD = re.compile(r"\w+")
MULT = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant (Knuth's golden-ratio multiplier)
FLAG_ABOVE = 0.5  # documents with more than half their n-grams seen in train are listed


class Vocabulary:
    """Word -> small integer, shared by every split of one check so equal words get equal ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> np.ndarray:
        ids = self.ids
        return np.fromiter((ids.setdefault(w, len(ids)) for w in WORD.findall(text.lower())), dtype=np.uint64)


def ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit polynomial hash of every word n-gram in one document (wrapping arithmetic)."""
    m = len(words) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * MULT + words[j: j + m] + np.uint64(1)
    return h


def train_ngrams(texts: Iterable[str], n: int, vocab: Vocabulary) -> np.ndarray:
    """Sorted unique n-gram hashes of the training split. (Sort and drop repeats: numpy 2's
    hash-based np.unique measured ~10x slower on these arrays.)"""
    parts = [ngram_hashes(vocab.encode(t), n) for t in texts]
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    h = np.sort(np.concatenate(parts))
    return h[np.concatenate([[True], h[1:] != h[:-1]])] if len(h) else h


def seen_in(h: np.ndarray, seen: np.ndarray) -> int:
    """How many of h occur in the sorted array `seen` (binary search, no re-sorting of `seen`)."""
    if len(h) == 0 or len(seen) == 0:
        return 0
    pos = np.minimum(np.searchsorted(seen, h), len(seen) - 1)
    return int((seen[pos] == h).sum())


def split_overlap(docs: Iterable[tuple[str, str]], seen: np.ndarray, n: int, vocab: Vocabulary) -> dict[str, Any]:
    """Fraction of a split's n-grams seen in train, overall and for the worst documents."""
    total = hits = 0
    per_doc: list[dict[str, Any]] = []
    for doc_id, text in docs:
        h = ngram_hashes(vocab.encode(text), n)
        k = seen_in(h, seen)
        total += len(h)
        hits += k
        per_doc.append({"id": doc_id, "ngrams": len(h), "seen": k, "fraction": round(k / len(h), 4) if len(h) else 0.0})
    per_doc.sort(key=lambda d: -d["fraction"])
    return {
        "ngrams": total, "seen_in_train": hits, "fraction": round(hits / total, 6) if total else 0.0,
        "documents": len(per_doc),
        "documents_over_half": sum(d["fraction"] > FLAG_ABOVE for d in per_doc),
        "worst_documents": per_doc[:5],
    }


def leakage_report(train_texts: Iterable[str], heldout: dict[str, Iterable[tuple[str, str]]], n: int = 13
                   ) -> dict[str, Any]:
    """The check for every held-out split, ready to write as tokens/leakage.json."""
    vocab = Vocabulary()
    seen = train_ngrams(train_texts, n, vocab)
    return {
        "measure": f"fraction of each split's word {n}-grams (lowercased, punctuation dropped) that occur in train",
        "source": "GPT-3 contamination check, Brown et al. 2020, appendix C",
        "n": n, "train_ngrams_unique": len(seen),
        "splits": {name: split_overlap(docs, seen, n, vocab) for name, docs in heldout.items()},
    }
