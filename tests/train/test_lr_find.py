"""LR range test: the rules on known curves, and the whole sweep + check on a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lmforge.rundir import RunDir
from lmforge.train.lr_find import exp_lr, lr_find, smooth, steepest, valley
from tests.helpers.runs import tiny_config


def _curve() -> tuple[list[float], list[float]]:
    """A textbook range-test curve: flat, a descent steepest near 1e-3, then a blow-up."""
    lrs = [exp_lr(i, 100, 1e-6, 1.0) for i in range(100)]
    x = np.log10(lrs)
    loss = 3 - 1.5 / (1 + np.exp(-(x + 3) * 4)) + np.where(x > -1.5, (x + 1.5) ** 2 * 6, 0)
    return lrs, loss.tolist()


def test_rules_on_a_known_curve() -> None:
    lrs, loss = _curve()
    assert lrs[0] == 1e-6 and math.isclose(lrs[-1], 1.0)
    s = steepest(lrs, loss)
    assert 3e-4 < s < 3e-3
    v = valley(lrs, loss)
    assert 1e-5 < v < 3e-2  # inside the descent, before the cliff


def test_smoothing_is_bias_corrected() -> None:
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])


def test_lr_find_end_to_end(tiny_run: RunDir) -> None:
    cfg = tiny_config("train.batch_size=8")
    found = lr_find(tiny_run, cfg, steps=40, check_steps=8, start_lr=1e-5, end_lr=10.0)
    assert found.sweep.stopped.startswith(("diverged", "loss not finite"))  # lr 10 must blow up
    assert found.suggestion is not None and 1e-5 <= found.suggestion <= 10
    assert [c["lr"] for c in found.checks] == [found.suggestion / 2, found.suggestion, found.suggestion * 2]
    assert found.recommended in [c["lr"] for c in found.checks]
    saved = json.loads((tiny_run.root / "lr_find.json").read_text())
    assert saved["recommended"] == found.recommended
    assert (tiny_run.root / "lr_find.png").stat().st_size > 1000
