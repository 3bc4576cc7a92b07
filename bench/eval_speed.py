"""How long the eval stage's parts take on the default model shape (they must stay seconds).

Usage:  .venv/bin/python bench/eval_speed.py RUN [--repeats 3]
RUN must hold tokens (e.g. `lmforge data RUN && lmforge tokenize RUN` with the default preset).
The model is the default shape at initialisation: scoring cost does not depend on training.
Prints the median over repeats of each part, with machine and versions.
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
import torch
from tokenizers import Tokenizer

from lmforge.config.load import load_config
from lmforge.evaluate.classification import classification_report
from lmforge.evaluate.score import score_split
from lmforge.evaluate.stage import task_items
from lmforge.evaluate.tasks import score_items, task_metrics
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir
from lmforge.tokens.tokenizer import token_byte_lengths


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    run = RunDir(args.run)
    cfg = load_config(run.config if run.config.is_file() else None)
    tok = Tokenizer.from_file(str(run.tokenizer))
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).eval()
    byte_lengths = token_byte_lengths(tok)
    eos = tok.token_to_id(cfg.tokenizer.eos_token) or 0
    rows: dict[str, list[float]] = {}
    info: dict[str, str] = {}
    for _ in range(args.repeats):
        for split in cfg.eval.splits:
            sec, res = timed(score_split, model, run, split, cfg, byte_lengths)
            rows.setdefault(f"score {split} split (LM metrics + intervals)", []).append(sec)
            info[split] = f"{res['tokens']:,} tokens, {res['documents']} documents"
        items, _ = task_items(run, cfg, "next_line")
        sec, lls = timed(score_items, model, tok, items, cfg.model.block_size, eos, cfg.eval.batch_size * 2)
        rows[f"next_line: score {len(items)} items x {cfg.eval.task_choices} choices"] = \
            rows.get(f"next_line: score {len(items)} items x {cfg.eval.task_choices} choices", []) + [sec]
        sec, _ = timed(task_metrics, items, lls, cfg.eval.bootstrap_rounds)
        rows.setdefault("next_line: metrics + classification report (1000 resamples)", []).append(sec)
        rng = np.random.default_rng(0)
        y = rng.integers(0, 4, 1000)
        p = np.where(rng.random(1000) < 0.7, y, rng.integers(0, 4, 1000))
        proba = np.full((1000, 4), 0.1)
        proba[np.arange(1000), p] = 0.7
        sec, _ = timed(classification_report, y, p, proba, None, 1000)
        rows.setdefault("classification report, 1000 examples, 4 classes, 1000 resamples", []).append(sec)
    print(f"# eval_speed: {' '.join(sys.argv)}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    print(f"model: {cfg.model.family} {cfg.model.n_layer}x{cfg.model.n_embd}, block {cfg.model.block_size}; "
          + "; ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"\n| part | median seconds (of {args.repeats}) | runs |\n|---|---|---|")
    for name, secs in rows.items():
        print(f"| {name} | {statistics.median(secs):.2f} | {', '.join(f'{s:.2f}' for s in secs)} |")


if __name__ == "__main__":
    main()
