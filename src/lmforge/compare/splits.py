"""`lmforge compare splits`: Kohavi's 1995 experiment in miniature, for a language model.

Kohavi compared accuracy estimators (holdout, k-fold, stratified k-fold) by their bias against
the true accuracy and by their spread over repetitions. Here the score is held-out bits per byte:

1. every document of the run (train, val and test) is cut to an equal centred chunk, so each
   weighs the same and the experiment stays small;
2. a third of the documents (a stratified fold) is set aside as the "truth" set; a model
   trained on all the rest (the sample S) and scored on it gives the value every estimator
   tries to predict;
3. on S alone, each estimator is run `repeats` times with new shuffles: holdout (train on 2/3,
   test on 1/3), k-fold and stratified k-fold (by source) for each K;
4. bias = mean estimate − truth; spread = standard deviation over repeats.

Every model is trained by the one train stage (through evaluate.cv.train_and_score).
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.data.splits import kfold_indices
from lmforge.errors import LmforgeError
from lmforge.evaluate.cv import pool_documents, train_and_score
from lmforge.monitor import build_callbacks
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text
from lmforge.tokens.store import (
    read_meta,
)
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.stage import short_run

METRIC = "bits_per_byte"
# a fresh run directory gets the setting of the measured table in docs/benchmarks.md: two sources
# (so stratification has something to do), a small vocabulary and a model small enough to train
# 176 times in minutes on 2 cores
FRESH_DEFAULTS = ["data.authors=[shakespeare,milton]", "tokenizer.vocab_size=512", "model.n_layer=1",
                  "model.n_head=2", "model.n_embd=32", "model.block_size=32", "train.batch_size=8"]


def prepare(run: RunDir, overrides: list[str]) -> Config:
    """The run's config (FRESH_DEFAULTS first when the folder has none), with data and tokens made
    by the data and tokenize stages when they are missing."""
    from lmforge.config.load import load_config
    from lmforge.pipeline import run_all

    fresh = not run.config.is_file()
    cfg = load_config(None if fresh else run.config, None, ([*FRESH_DEFAULTS] if fresh else []) + overrides)
    if not (run.tokens / "meta.json").is_file():
        run_all(run, cfg, stages=["data", "tokenize"])
    return cfg


def centred_chunks(docs: list[np.ndarray], length: int) -> list[np.ndarray]:
    """The middle `length` tokens of each document (the whole document when shorter)."""
    out = []
    for d in docs:
        lo = max(0, (len(d) - length) // 2)
        out.append(d[lo: lo + length])
    return out


def experiment_config(cfg: Config, steps: int) -> Config:
    """The run's config for the experiment's small models: `steps` steps, whole test sets, no extras."""
    out = short_run(cfg, steps)
    out.train.eval_interval = out.train.checkpoint_interval = steps
    if cfg.train.threads == 0:
        # these models are tiny: one thread beats two on 2 cores (measured 10x and more when the
        # machine is shared; docs/evaluation.md), since OpenMP's barriers cost more than the matmuls
        out.train.threads = 1
    out.eval.max_tokens = None
    return out


def _summary(estimates: list[float], truth: float, trainings: int, seconds: float) -> dict[str, Any]:
    mean = statistics.fmean(estimates)
    return {"estimates": estimates, "mean": mean, "bias": mean - truth,
            "std": statistics.stdev(estimates) if len(estimates) > 1 else 0.0,
            "trainings": trainings, "seconds": round(seconds, 1)}


def compare_splits(run: RunDir, cfg: Config, ks: list[int], repeats: int, steps: int,
                   doc_tokens: int, seed: int = 0) -> dict[str, Any]:
    """Run the experiment; returns a JSON-ready record with the table's numbers."""
    run.require(run.tokens / "meta.json", "tokenize")
    docs, sources, _ = pool_documents(run, ("train", "val", "test"))
    docs = centred_chunks(docs, doc_tokens)
    if len(docs) < 3 * max(ks):
        raise LmforgeError(f"the run has {len(docs)} documents: too few for K={max(ks)} on two thirds of them",
                           "use smaller --ks, or a run with more documents")
    meta = read_meta(run.tokens)
    byte_lengths = token_byte_lengths(load_tokenizer(run.tokenizer))
    ecfg = experiment_config(cfg, steps)
    started = time.time()

    def fit(name: str, train: list[int], test: list[int], pool: list[int]) -> dict[str, Any]:
        return train_and_score(run, f"splits/{name}", [docs[pool[i]] for i in train],
                               [docs[pool[i]] for i in test], ecfg, meta, byte_lengths,
                               callbacks=build_callbacks)

    everything = list(range(len(docs)))
    sample_idx, truth_idx = kfold_indices(len(docs), 3, seed=seed, labels=sources)[0]
    sample = [everything[i] for i in sample_idx]
    console.print(f"splits: truth = model trained on {len(sample)} documents, scored on {len(truth_idx)}")
    truth_run = fit("truth", sample, truth_idx.tolist(), everything)
    truth = float(truth_run[METRIC])
    labels = [sources[i] for i in sample]
    methods: dict[str, dict[str, Any]] = {}

    def estimate(name: str, k: int, stratified: bool, holdout: bool = False) -> None:
        t0, values, trainings = time.time(), [], 0
        for r in range(repeats):
            folds = kfold_indices(len(sample), k, seed=seed + 1 + r, labels=labels if stratified else None)
            if holdout:
                folds = folds[:1]  # one third held out once: the holdout estimate
            scores = []
            for f, (tr, te) in enumerate(folds):
                console.print(f"splits: {name}, repeat {r + 1}/{repeats}, fold {f + 1}/{len(folds)}")
                scores.append(float(fit(f"{name.replace(' ', '_')}-r{r}-f{f}", tr.tolist(), te.tolist(),
                                        sample)[METRIC]))
                trainings += 1
            values.append(statistics.fmean(scores))
        methods[name] = {"k": k, "stratified": stratified, **_summary(values, truth, trainings, time.time() - t0)}

    estimate("holdout 2/3", 3, stratified=False, holdout=True)
    for k in ks:
        estimate(f"{k}-fold", k, stratified=False)
        estimate(f"stratified {k}-fold", k, stratified=True)
    return {
        "metric": METRIC, "truth": truth, "truth_ci95": truth_run.get(f"{METRIC}_ci95"), "documents": len(docs), "sample_documents": len(sample),
        "truth_documents": len(truth_idx), "sources": sorted(set(sources)), "doc_tokens": doc_tokens,
        "steps": steps, "repeats": repeats, "ks": ks, "seed": seed, "methods": methods,
        "model": ecfg.section("model"), "seconds": round(time.time() - started, 1),
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(), "platform": platform.platform()},
    }


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    ci = result.get("truth_ci95")
    ci_text = f" (95% interval over its documents {ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
    lines = [(f"truth ({result['metric']} of a model trained on all {result['sample_documents']} sample "
              f"documents, scored on {result['truth_documents']} others): {result['truth']:.4f}{ci_text}"), "",
             "| estimator | mean estimate | bias | std over repeats | models trained | seconds |",
             "|---|---|---|---|---|---|"]
    for name, m in result["methods"].items():
        lines.append(f"| {name} | {m['mean']:.4f} | {m['bias']:+.4f} | {m['std']:.4f} | {m['trainings']} "
                     f"| {m['seconds']} |")
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any], out: Any) -> None:
    """Mean estimate ± one standard deviation per estimator, with the truth as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["methods"])
    means = [result["methods"][n]["mean"] for n in names]
    stds = [result["methods"][n]["std"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.errorbar(range(len(names)), means, yerr=stds, fmt="o", capsize=4, label="mean ± 1 std over repeats")
    ax.axhline(result["truth"], color="grey", ls="--", label="truth")
    if result.get("truth_ci95"):
        ax.axhspan(*result["truth_ci95"], color="grey", alpha=0.12, label="truth's 95% interval (documents)")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(f"estimated {result['metric']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def run_compare_splits(run: RunDir, cfg: Config, ks: list[int], repeats: int, steps: int,
                       doc_tokens: int, seed: int = 0) -> dict[str, Any]:
    """Run, then write RUN/compare/splits.{json,md,png}."""
    result = compare_splits(run, cfg, ks, repeats, steps, doc_tokens, seed)
    out = run.root / "compare"
    atomic_write_json(out / "splits.json", result)
    atomic_write_text(out / "splits.md", table(result))
    figure(result, out / "splits.png")
    return result
