"""Bootstrap intervals: our vectorised confusion-matrix resampling against calling scikit-learn
on every resample (the obvious way, and our peer), on the same resamples.

Usage:  .venv/bin/python bench/eval_bootstrap.py [--n 2000] [--classes 5] [--rounds 1000] [--repeats 3]
Checks both give the same intervals, then prints median seconds of each, machine and versions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import sklearn
from sklearn import metrics as skm

from lmforge.evaluate import classification as cl
from lmforge.evaluate.stats import percentile_interval, resample_indices

METRICS = {
    "accuracy": (skm.accuracy_score, cl.cm_accuracy),
    "balanced_accuracy": (skm.balanced_accuracy_score, cl.cm_balanced_accuracy),
    "mcc": (skm.matthews_corrcoef, cl.cm_mcc),
    "f1_macro": (lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
                 lambda cm: cl.cm_averages(cm)["f1_macro"]),
}


def sklearn_loop(y, p, picks):
    return {name: percentile_interval(np.array([fn(y[r], p[r]) for r in picks]))
            for name, (fn, _) in METRICS.items()}


def vectorised(y, p, picks, c):
    stack = cl.confusion_stack(y, p, c, picks)
    return {name: percentile_interval(fn(stack)) for name, (_, fn) in METRICS.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    # every class present in every resample, so balanced accuracy means the same in both
    y = np.tile(np.arange(a.classes), a.n // a.classes)
    p = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, a.classes, len(y)))
    picks = resample_indices(len(y), a.rounds, seed=0)
    ref, ours = sklearn_loop(y, p, picks), vectorised(y, p, picks, a.classes)
    for name in METRICS:
        assert np.allclose(ref[name], ours[name]), (name, ref[name], ours[name])
    t_ref, t_ours = [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        sklearn_loop(y, p, picks)
        t_ref.append(time.perf_counter() - t)
        t = time.perf_counter()
        vectorised(y, p, picks, a.classes)
        t_ours.append(time.perf_counter() - t)
    print(f"# eval_bootstrap: {' '.join(sys.argv)}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"versions: python {platform.python_version()}, scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    print(f"{len(y)} examples, {a.classes} classes, {a.rounds} resamples, metrics: {', '.join(METRICS)}; "
          "intervals identical: yes")
    ref_med, ours_med = statistics.median(t_ref), statistics.median(t_ours)
    print(f"\n| method | median seconds (of {a.repeats}) | speed-up |\n|---|---|---|")
    print(f"| scikit-learn on every resample | {ref_med:.3f} | 1 |")
    print(f"| lmforge vectorised confusion matrices | {ours_med:.3f} | {ref_med / ours_med:.0f}x |")


if __name__ == "__main__":
    main()
