"""cleanlab on out-of-fold probabilities finds injected label flips."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lmforge.errors import LmforgeError
from lmforge.label.issues import find_issues, out_of_fold_proba, precision_recall

LETTERS = ["abcde", "fghij", "klmno"]


def documents(per_class: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for c, letters in enumerate(LETTERS):
        for _ in range(per_class):
            texts.append(" ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 6))) for _ in range(40)))
            labels.append(c)
    return texts, labels


def test_injected_flips_are_found_with_precision_and_recall() -> None:
    texts, gold = documents(40, seed=0)
    rng = np.random.default_rng(0)
    flipped = sorted(rng.choice(len(gold), 12, replace=False).tolist())
    noisy = list(gold)
    for i in flipped:
        noisy[i] = (gold[i] + int(rng.integers(1, 3))) % 3
    proba = out_of_fold_proba(texts, noisy, folds=5, seed=0)
    found = find_issues(noisy, proba)
    pr = precision_recall(found, flipped)
    assert pr["recall"] >= 0.9 and pr["precision"] >= 0.8, pr
    clean = find_issues(gold, out_of_fold_proba(texts, gold, folds=5, seed=0))
    assert len(clean) <= 2  # clean labels: (almost) nothing to report


def test_a_class_with_one_record_is_refused() -> None:
    with pytest.raises(LmforgeError, match="at least 2 records of every class"):
        out_of_fold_proba(["a b", "c d", "e f"], [0, 0, 1])
