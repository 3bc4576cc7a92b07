"""Resampling statistics shared by every evaluation: bootstrap intervals and paired tests.

Every interval here is a nonparametric percentile bootstrap (Efron & Tibshirani 1993, ch. 13):
resample the independent units (documents, test examples) with replacement, recompute the
statistic, and take the 2.5th and 97.5th percentiles. Units, not tokens, are resampled because
tokens of one document are not independent; an interval over tokens would be far too narrow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sstats

DEFAULT_ROUNDS = 1000
LEVEL = 0.95


def resample_indices(n: int, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> np.ndarray:
    """(rounds, n) indices drawn with replacement; one seeded generator so intervals repeat exactly."""
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """Central `level` percentile interval of bootstrap replicates (NaN replicates dropped)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def ratio_interval(num: np.ndarray, den: np.ndarray, rounds: int = DEFAULT_ROUNDS, seed: int = 0,
                   transform: Any = None) -> list[float] | None:
    """Interval of sum(num)/sum(den) (optionally transformed) resampling units; None with < 2 units.

    Ratios of sums (not means of ratios) match how the point estimate is computed: loss per token
    and bits per byte weight each document by its length.
    """
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if len(num) < 2:
        return None  # one unit gives no spread to resample
    picks = resample_indices(len(num), rounds, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = num[picks].sum(1) / den[picks].sum(1)
    if transform is not None:
        values = transform(values)
    return percentile_interval(values)


def paired_bootstrap(num_a: np.ndarray, num_b: np.ndarray, den: np.ndarray | None = None,
                     rounds: int = 10_000, seed: int = 0, den_b: np.ndarray | None = None) -> dict[str, Any]:
    """Compare two systems scored on the same units: the difference A − B of sum(num)/sum(den).

    `den_b` gives system B its own denominators (two tokenizers count the bytes of the same
    document slightly differently); by default both share `den`.

    The p-value tests "no difference" by centring the bootstrap distribution of the difference on
    zero (Efron & Tibshirani 1993, sec. 16.4; used for MT by Koehn 2004): the share of resampled
    differences at least as far from the observed one as the observed one is from zero.
    """
    num_a, num_b = np.asarray(num_a, dtype=np.float64), np.asarray(num_b, dtype=np.float64)
    if num_a.shape != num_b.shape:
        raise ValueError(f"paired comparison needs the same units: {num_a.shape} vs {num_b.shape}")
    den = np.ones_like(num_a) if den is None else np.asarray(den, dtype=np.float64)
    db = den if den_b is None else np.asarray(den_b, dtype=np.float64)
    observed = float(num_a.sum() / den.sum() - num_b.sum() / db.sum())
    if len(num_a) < 2:
        return {"difference": observed, "ci95": None, "p_value": None, "units": len(num_a), "rounds": 0}
    picks = resample_indices(len(num_a), rounds, seed)
    diffs = num_a[picks].sum(1) / den[picks].sum(1) - num_b[picks].sum(1) / db[picks].sum(1)
    p = float(np.mean(np.abs(diffs - observed) >= abs(observed) - 1e-12))
    return {"difference": observed, "ci95": percentile_interval(diffs), "p_value": p,
            "units": len(num_a), "rounds": rounds}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test (McNemar 1947) on paired right/wrong outcomes of two classifiers.

    Only discordant pairs carry information: b = A right and B wrong, c = A wrong and B right.
    Under "equal error rates" b ~ Binomial(b + c, 1/2); we report the exact two-sided binomial
    p-value (recommended over the chi-square form for small b + c, Fagerland et al. 2013) and
    the continuity-corrected chi-square statistic for reference.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError(f"McNemar needs the same examples: {a.shape} vs {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return {"a_only_right": b, "b_only_right": c, "p_value": 1.0, "chi2": 0.0}
    p = float(sstats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue)
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"a_only_right": b, "b_only_right": c, "p_value": min(1.0, p), "chi2": float(chi2)}
