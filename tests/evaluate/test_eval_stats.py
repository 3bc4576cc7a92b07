"""Bootstrap intervals and paired tests on fixed data."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.evaluate import stats


def test_ratio_interval_contains_point_and_repeats():
    num = np.array([10.0, 12.0, 30.0, 8.0])
    den = np.array([10.0, 10.0, 20.0, 10.0])
    a = stats.ratio_interval(num, den, rounds=500, seed=1)
    b = stats.ratio_interval(num, den, rounds=500, seed=1)
    assert a == b
    assert a[0] <= num.sum() / den.sum() <= a[1]
    assert stats.ratio_interval(num[:1], den[:1]) is None


def test_mcnemar_by_hand():
    a = np.array([1, 1, 1, 1, 1, 0, 1, 1], bool)
    b = np.array([0, 0, 0, 1, 1, 0, 1, 0], bool)  # A alone right 4 times, B alone right 0 times
    res = stats.mcnemar(a, b)
    assert (res["a_only_right"], res["b_only_right"]) == (4, 0)
    assert res["p_value"] == pytest.approx(2 * 0.5 ** 4)
    assert res["chi2"] == pytest.approx((4 - 0 - 1) ** 2 / 4)
    assert stats.mcnemar(a, a)["p_value"] == 1.0


def test_paired_bootstrap_detects_a_clear_difference_only():
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.8
    b = rng.random(200) < 0.5
    clear = stats.paired_bootstrap(a.astype(float), b.astype(float), rounds=2000)
    assert clear["difference"] == pytest.approx(a.mean() - b.mean())
    assert clear["p_value"] < 0.01 and clear["ci95"][0] > 0
    same = stats.paired_bootstrap(a.astype(float), a.astype(float), rounds=500)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0
