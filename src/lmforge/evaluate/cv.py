"""k-fold cross-validation of the language model over documents.

The train and validation documents of a run are cut into k folds (the token stage's
`kfold_indices`: scikit-learn's KFold, StratifiedKFold by source, GroupKFold when near-duplicate
clusters are recorded); the test split is never touched. Each fold becomes a small run directory
of its own (cv/rR-fF/tokens with train.bin = the other folds, test.bin = the held-out fold) and
is trained by the one training stage (train/stage.run_train), then scored like any split. Only
the stage contract is shared, never a copy of the loop.

Why k-fold at all for a language model: a holdout estimate from 2–4 validation documents swings
with which documents were drawn; k folds use every document once for testing, and the spread
across folds shows how much (Kohavi 1995 studies this bias/variance trade-off for accuracy).
"""

from __future__ import annotations

import shutil
import statistics
import time
from typing import Any

import numpy as np

from lmforge.config.schema import Config
from lmforge.console import console, show
from lmforge.data.splits import kfold_indices
from lmforge.errors import LmforgeError
from lmforge.evaluate.score import load_trained, score_split, split_sources
from lmforge.rundir import RunDir, read_jsonl_gz
from lmforge.tokens.store import load_doc_starts, load_tokens, read_meta, write_meta, write_split
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.loop import CallbackFactory
from lmforge.train.stage import run_train, short_run

POOL = ("train", "val")  # the documents cross-validation may use; test stays untouched
METRICS = ("loss", "bits_per_byte", "accuracy")


def pool_labels(run: RunDir, splits: tuple[str, ...] = POOL) -> tuple[int, list[str], list[str] | None]:
    """Document count, sources and (if recorded) near-duplicate clusters of every document of
    `splits`, read without the token data, so the folds can be planned before any slow work."""
    n = 0
    sources: list[str] = []
    clusters: list[str] = []
    for split in splits:
        if not run.token_file(split).is_file():
            continue
        count = len(load_doc_starts(run.tokens, split))
        n += count
        sources += split_sources(run, split, count) or [""] * count
        if run.split_file(split).is_file():
            clusters += [str(r.get("cluster", "")) for r in read_jsonl_gz(run.split_file(split))]
    has_clusters = len(clusters) == n and any(clusters)
    return n, sources, clusters if has_clusters else None


def pool_documents(run: RunDir, splits: tuple[str, ...] = POOL
                   ) -> tuple[list[np.ndarray], list[str], list[str] | None]:
    """Token arrays, sources and (if recorded) near-duplicate clusters of every document of `splits`."""
    docs: list[np.ndarray] = []
    for split in splits:
        path = run.token_file(split)
        if not path.is_file():
            continue
        data = np.asarray(load_tokens(run.tokens, split))
        starts = load_doc_starts(run.tokens, split)
        ends = np.append(starts[1:], len(data))
        docs += [data[s:e] for s, e in zip(starts, ends)]
    _, sources, clusters = pool_labels(run, splits)
    return docs, sources, clusters


def _write_fold_tokens(fold: RunDir, meta: dict[str, Any], parts: dict[str, list[np.ndarray]]) -> None:
    """A fold's tokens/ folder in the tokens stage's format, so the train stage reads it as any run."""
    dtype = np.dtype(meta["dtype"])
    splits = {split: write_split(fold.tokens, split, docs, dtype) for split, docs in parts.items()}
    write_meta(fold.tokens, {**meta, "splits": splits, "cv_fold": True})


def _aggregate(folds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in METRICS:
        values = [f[m] for f in folds if f.get(m) is not None]
        if values:
            out[m] = {"mean": statistics.fmean(values),
                      "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                      "min": min(values), "max": max(values)}
    return out


def train_and_score(run: RunDir, name: str, train_docs: list[np.ndarray], test_docs: list[np.ndarray],
                    cfg: Config, meta: dict[str, Any], byte_lengths: np.ndarray, keep: bool = False,
                    callbacks: CallbackFactory | None = None) -> dict[str, Any]:
    """Train one model on `train_docs` through the train stage and score it on `test_docs`.

    The model lives in its own run directory under RUN/cv/NAME; unless `keep`, its weights and
    token copies are removed afterwards (metrics.jsonl and events.jsonl stay).
    """
    started = time.time()
    fold = RunDir(run.root / "cv" / name)
    if fold.root.exists():
        shutil.rmtree(fold.root)
    fold.create()
    fold.tokenizer.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.tokenizer, fold.tokenizer)
    _write_fold_tokens(fold, meta, {"train": train_docs, "val": [], "test": test_docs})
    trained = run_train(fold, cfg, show_progress=False, callbacks=callbacks)
    model, _, _ = load_trained(fold, cfg)
    scored = score_split(model, fold, "test", cfg, byte_lengths, per_source=False)
    if not keep:
        for sub in (fold.checkpoints, fold.tokens, fold.tokenizer.parent):
            shutil.rmtree(sub, ignore_errors=True)
    return {"steps": trained["step"], "seconds": round(time.time() - started, 2),
            **{key: scored.get(key) for key in
               ("tokens", "documents", "loss", "loss_ci95", "bits_per_byte", "bits_per_byte_ci95",
                "accuracy", "accuracy_ci95")}}


def plan_folds(run: RunDir, cfg: Config) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Every repeat's (train_idx, test_idx) folds over the run's train+val documents.

    Needs only document counts, sources and clusters, so it is cheap: `run_eval` calls it before
    scoring anything, and too few documents, too few near-duplicate groups or a stratification
    that cannot be made fail at once instead of after the holdout evaluation.
    """
    k, stratified = cfg.eval.cv_folds, cfg.eval.cv_stratified
    n, sources, clusters = pool_labels(run)
    if n < k:
        raise LmforgeError(
            f"cannot make {k} folds: the run has only {n} train+validation documents",
            f"use --cv {max(2, n)} or fewer, or add documents (data.paths)")
    return [kfold_indices(n, k, seed=cfg.eval.seed + r, labels=sources if stratified else None,
                          groups=clusters) for r in range(cfg.eval.cv_repeats)]


def check_folds(run: RunDir, cfg: Config) -> None:
    """Fail before any work when the folds `cfg.eval` asks for cannot be made from the run."""
    plan_folds(run, cfg)


def cross_validate(run: RunDir, cfg: Config, keep_folds: bool = False,
                   callbacks: CallbackFactory | None = None) -> dict[str, Any]:
    """Train and score k models per repeat; mean, standard deviation and every fold. `callbacks`
    (the pipeline's monitoring) attach to each fold's training."""
    k, repeats, stratified = cfg.eval.cv_folds, cfg.eval.cv_repeats, cfg.eval.cv_stratified
    plan = plan_folds(run, cfg)
    docs, sources, clusters = pool_documents(run)
    if stratified and len(set(sources)) < 2:
        show(("cv: every document has the same source; stratified folds equal plain folds", "yellow"))
    meta = read_meta(run.tokens)
    byte_lengths = token_byte_lengths(load_tokenizer(run.tokenizer))
    fcfg = short_run(cfg, cfg.eval.cv_steps)  # quiet, with no cross-validation inside
    folds: list[dict[str, Any]] = []
    for r in range(repeats):
        for f, (train_idx, test_idx) in enumerate(plan[r]):
            console.print(f"cv: repeat {r + 1}/{repeats}, fold {f + 1}/{k}: training on {len(train_idx)} "
                          f"documents, testing on {len(test_idx)}")
            scored = train_and_score(run, f"r{r}-f{f}", [docs[i] for i in train_idx],
                                     [docs[i] for i in test_idx], fcfg, meta, byte_lengths, keep_folds, callbacks)
            folds.append({"repeat": r, "fold": f, "train_documents": len(train_idx),
                          "test_documents": len(test_idx),
                          "test_sources": sorted({sources[i] for i in test_idx}), **scored})
    return {
        "k": k, "repeats": repeats, "stratified": stratified, "grouped": clusters is not None,
        "documents": len(docs), "steps_per_fold": fcfg.train.steps,
        "summary": _aggregate(folds),
        "per_repeat": [_aggregate([f for f in folds if f["repeat"] == r]) for r in range(repeats)],
        "folds": folds,
    }
