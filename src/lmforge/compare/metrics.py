"""`lmforge compare metrics` (course topic 10): the same next-token predictions on the same
validation text, scored by accuracy, macro precision, recall and F1, Matthews correlation (MCC),
perplexity and bits per byte, for a few models of different quality, and where the metrics
disagree on which model is better.

Next-token prediction is a classification over the vocabulary, so the classification metrics
apply as they are (scikit-learn computes them; macro averages weigh every character alike, so
rare characters count as much as spaces and `e`). Perplexity and bits per byte score the whole
predicted distribution, the others only its top choice. A unigram baseline (always the most
frequent training token; its frequencies as probabilities) shows the split most plainly.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.compare.cells import SEEDS, size_config, sweep
from lmforge.compare.output import pyplot, save_cell, save_figure, write_table
from lmforge.config.schema import Config
from lmforge.evaluate.lm import NATS_TO_BITS
from lmforge.rundir import RunDir, atomic_write_json
from lmforge.tokens.loader import sequential_windows
from lmforge.tokens.store import load_tokens
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.loop import Callback, Trainer

NAME = "metrics"
METRICS = ["accuracy", "macro precision", "macro recall", "macro F1", "MCC", "perplexity", "bits/byte"]
HIGHER_IS_BETTER = {"accuracy": True, "macro precision": True, "macro recall": True, "macro F1": True,
                    "MCC": True, "perplexity": False, "bits/byte": False}
COLUMNS = ["model", *METRICS]


def arms(size: str, overrides: list[str]) -> dict[str, list[str]]:
    steps = size_config(size, overrides).train.steps
    return {"gpt, 1/5 of the steps": [f"train.steps={max(2, steps // 5)}"], "gpt": [],
            "lstm": ["model.family=lstm", "train.lr=1e-2", "train.min_lr=1e-3"], "cnn": ["model.family=cnn"]}


def scores(targets: np.ndarray, predicted: np.ndarray, nats: float, nbytes: float) -> dict[str, float]:
    """Every metric of one set of predictions (targets and top-1 predictions, summed loss)."""
    from sklearn.metrics import accuracy_score, matthews_corrcoef, precision_recall_fscore_support

    labels = np.unique(targets)  # the classes that occur: macro averages over them
    p, r, f, _ = precision_recall_fscore_support(targets, predicted, labels=labels, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(targets, predicted)), "macro precision": float(p),
            "macro recall": float(r), "macro F1": float(f), "MCC": float(matthews_corrcoef(targets, predicted)),
            "perplexity": math.exp(nats / max(1, len(targets))), "bits/byte": nats / max(1.0, nbytes) * NATS_TO_BITS}


@torch.no_grad()
def predictions(model: torch.nn.Module, data: np.ndarray, block_size: int, max_tokens: int | None
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Targets, top-1 predictions and summed loss in nats over the validation windows."""
    was = model.training
    model.eval()
    ys, preds, nats = [], [], 0.0
    for x, y in sequential_windows(data, block_size, 32, max_tokens):
        logits = model(x).float()
        nats += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
        ys.append(y.flatten().numpy())
        preds.append(logits.argmax(-1).flatten().numpy())
    model.train(was)
    return np.concatenate(ys), np.concatenate(preds), nats


class Score(Callback):
    """At the end of training, score the model's validation predictions into scores.json."""

    def __init__(self, base: RunDir, run: RunDir, cfg: Config) -> None:
        self.base, self.run, self.cfg = base, run, cfg

    def on_train_end(self, trainer: Trainer) -> None:
        val = load_tokens(self.base.tokens, "val")
        y, pred, nats = predictions(trainer.raw_model, val, self.cfg.model.block_size, self.cfg.eval.max_tokens)
        nbytes = float(token_byte_lengths(load_tokenizer(self.base.tokenizer))[y].sum())
        atomic_write_json(self.run.root / "scores.json", scores(y, pred, nats, nbytes))


def unigram(base: RunDir, cfg: Config) -> dict[str, float]:
    """Always the most frequent training token; the training frequencies (add-one) as probabilities."""
    train, val = load_tokens(base.tokens, "train"), load_tokens(base.tokens, "val")
    vocab = int(max(train.max(), val.max())) + 1
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    n = len(val) - 1 if cfg.eval.max_tokens is None else min(len(val) - 1, cfg.eval.max_tokens)
    y = np.asarray(val[1: n + 1], dtype=np.int64)
    nbytes = float(token_byte_lengths(load_tokenizer(base.tokenizer))[y].sum())
    return scores(y, np.full_like(y, int(counts.argmax())), float(-logp[y].sum()), nbytes)


def disagreements(table: dict[str, dict[str, float]]) -> list[str]:
    """Pairs of models that two metrics rank in opposite order."""
    found = []
    for a, b in combinations(table, 2):
        says = {m: (table[a][m] > table[b][m]) == HIGHER_IS_BETTER[m] for m in METRICS
                if table[a][m] != table[b][m]}
        better_a = [m for m, v in says.items() if v]
        better_b = [m for m, v in says.items() if not v]
        if better_a and better_b:
            found.append(f"{a} vs {b}: {', '.join(better_a)} prefer {a}; {', '.join(better_b)} prefer {b}")
    return found


def figure(table: dict[str, dict[str, float]], path: Path) -> None:
    """Each metric scaled to 0 (worst model) .. 1 (best model): crossing lines are disagreements."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for model, vals in table.items():
        ys = []
        for m in METRICS:
            col = [t[m] for t in table.values()]
            lo, hi = min(col), max(col)
            rel = (vals[m] - lo) / (hi - lo) if hi > lo else 1.0
            ys.append(rel if HIGHER_IS_BETTER[m] else 1 - rel)
        ax.plot(range(len(METRICS)), ys, "o-", label=model)
    ax.set_xticks(range(len(METRICS)), METRICS, rotation=15)
    ax.set_ylabel("relative standing (1 = best of these models)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def run(size: str, out: Path, overrides: list[str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> dict[str, Any]:
    keys = arms(size, overrides)
    holder: dict[str, RunDir] = {}

    def hook(arm: str, cfg: Config) -> Any:
        return lambda run: [Score(holder["base"], run, cfg)]

    base_cfg = size_config(size, overrides)
    holder["base"] = RunDir(out / "base")
    base, by_arm = sweep(NAME, size, keys, out, overrides, only, seeds or SEEDS[size][:1], monitoring=False,
                         extra=hook)
    table: dict[str, dict[str, float]] = {"unigram baseline": unigram(base, base_cfg)}
    cells = [{"arm": "unigram baseline", "seed": None, "config": base_cfg.model_dump(mode="json"),
              "command": f"lmforge compare metrics --size {size} -o {out}", "values": table["unigram baseline"]}]
    for arm, arm_cells in by_arm.items():
        cell = arm_cells[0]
        if "scores" not in cell["values"]:
            cell["values"]["scores"] = json.loads((out / "cells" / f"{arm}-s{cell['seed']}" / "scores.json").read_text())
            save_cell(out, cell)
        table[arm] = cell["values"]["scores"]
        cells.append(cell)
    rows = [[model, *(round(v[m], 4) for m in METRICS)] for model, v in table.items()]
    found = disagreements(table)
    notes = [("the same validation tokens and, per model, the same predictions under every metric; macro averages "
              "over the characters that occur; perplexity per token, bits per byte of the text"),
             *(["where they disagree: " + "; ".join(found)] if found else ["the metrics agree on every pair"])]
    return write_table(out, NAME, "evaluation metrics: the same predictions under seven metrics", COLUMNS, rows,
                       cells, lambda p: figure(table, p), notes, {"size": size, "disagreements": found})
