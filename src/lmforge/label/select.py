"""Labels from a model: pseudo-labels where it is sure, and which records a person should label
next where it is unsure (active learning).

Pseudo-labelling keeps a model's own predictions above a confidence threshold as training labels
(Lee 2013, "Pseudo-label: the simple and efficient semi-supervised learning method"). Uncertainty
sampling (Lewis & Gale 1994; the three scores as surveyed by Settles 2009, "Active learning
literature survey") asks about the records the model is least sure of: least confidence
(1 - max p), margin (the gap between the two most likely classes, smallest first) and entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError

STRATEGIES = ("least_confidence", "margin", "entropy")


def uncertainty(proba: np.ndarray, strategy: str) -> np.ndarray:
    """One score per record, higher = less sure."""
    p = np.asarray(proba, dtype=float)
    if strategy == "least_confidence":
        return 1.0 - p.max(1)
    if strategy == "margin":
        top = np.sort(p, 1)
        return 1.0 - (top[:, -1] - top[:, -2])
    if strategy == "entropy":
        return -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
    raise LmforgeError(f"unknown active-learning strategy '{strategy}'", f"choose from: {', '.join(STRATEGIES)}")


def query(proba: np.ndarray, strategy: str, n: int, exclude: Sequence[int] = ()) -> list[int]:
    """The `n` least sure records not in `exclude`, least sure first (ties by index)."""
    score = uncertainty(proba, strategy)
    skip = set(exclude)
    order = [int(i) for i in np.lexsort((np.arange(len(score)), -score)) if int(i) not in skip]
    return order[:n]


def pseudo_labels(proba: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices, predicted classes and confidences of the records whose top probability reaches `threshold`."""
    if not 0.0 <= threshold <= 1.0:
        raise LmforgeError(f"pseudo-label threshold must be between 0 and 1, got {threshold}", "e.g. 0.9")
    p = np.asarray(proba, dtype=float)
    sure = np.flatnonzero(p.max(1) >= threshold)
    return sure, p[sure].argmax(1), p[sure].max(1)


def model_label_rows(ids: Sequence[str], names: Sequence[str], proba: np.ndarray, threshold: float, by: str,
                     at: str) -> list[dict[str, Any]]:
    """Pseudo-labels as label-log entries: source model, by the model that made them, with confidence."""
    idx, cls, conf = pseudo_labels(proba, threshold)
    return [{"id": ids[i], "label": names[c], "source": "model", "by": by, "at": at, "confidence": round(float(p), 4)}
            for i, c, p in zip(idx.tolist(), cls.tolist(), conf.tolist())]
