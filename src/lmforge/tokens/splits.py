"""Holdout splits by document: whole documents go to train, validation or test, never a cut stream."""

from __future__ import annotations

import random

from lmforge.config import DataConfig
from lmforge.errors import LmforgeError


def split_documents(n: int, cfg: DataConfig) -> list[str]:
    """Assign each of n documents to train/val/test, by document, seeded."""
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    n_val = max(cfg.min_val_docs, round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
    n_test = max(cfg.min_test_docs, round(n * cfg.test_fraction)) if cfg.test_fraction > 0 else 0
    if n_val + n_test >= n:
        raise LmforgeError(
            f"only {n} documents survived cleaning: too few to hold out {n_val} validation and "
            f"{n_test} test documents and still train",
            "add data (data.paths), or lower data.val_fraction / data.test_fraction",
        )
    split = ["train"] * n
    for i in order[:n_val]:
        split[i] = "val"
    for i in order[n_val:n_val + n_test]:
        split[i] = "test"
    return split
