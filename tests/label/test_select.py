"""Pseudo-labels keep only sure predictions; the three uncertainty scores pick the unsure records."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.errors import LmforgeError
from lmforge.label.select import model_label_rows, pseudo_labels, query, uncertainty

P = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])


def test_each_strategy_ranks_the_unsure_first() -> None:
    assert query(P, "least_confidence", 2) == [4, 1]
    assert query(P, "margin", 2) == [2, 4]  # tied top two: margin 0
    assert query(P, "entropy", 1) == [4]
    assert query(P, "entropy", 2, exclude=[4]) == [1, 3]  # entropies 1.08 and 0.80; [0.5, 0.5, 0] has 0.69
    assert np.argmin(uncertainty(P, "entropy")) == 0
    with pytest.raises(LmforgeError, match="margin"):
        uncertainty(P, "random")


def test_pseudo_labels_above_the_threshold_with_their_confidence() -> None:
    idx, cls, conf = pseudo_labels(P, 0.7)
    assert idx.tolist() == [0, 3] and cls.tolist() == [0, 0] and np.allclose(conf, [0.98, 0.7])
    rows = model_label_rows(["a", "b", "c", "d", "e"], ["x", "y", "z"], P, 0.9, "ft-run", "2026-01-01")
    assert rows == [{"id": "a", "label": "x", "source": "model", "by": "ft-run", "at": "2026-01-01", "confidence": 0.98}]
    with pytest.raises(LmforgeError, match="between 0 and 1"):
        pseudo_labels(P, 1.5)
