"""Small training experiments for the comparisons: a prepared base run (data and tokenize stages)
and one short training per cell in its own folder beside it, through the train stage's own
trainer (`train.stage.build_trainer`) and the pipeline's monitoring callbacks, so every key means
what it means in `lmforge train`.

Two sizes: `tiny` (a few documents, a one-layer model, seconds per cell: the tests) and `small`
(the built-in corpus, a two-layer model, the course book). A cell's folder links the base run's
tokens and tokenizer, and holds its own config.yaml, metrics.jsonl, events.jsonl and sink files.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.evaluate.lm import bits_per_byte, token_losses
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir
from lmforge.tokens.store import load_tokens
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.loop import Callback, Trainer
from lmforge.train.stage import build_trainer

SIZES = ("tiny", "small")
# character tokens keep every comparison about its own subject (not the tokenizer); one thread,
# as in compare/models.py: on a shared 2-core machine a second OpenMP thread mostly waits
COMMON = ["tokenizer.kind=char", "tokenizer.vocab_size=256", "train.threads=1", "train.eval_interval=100000",
          "train.checkpoint_interval=100000", "train.keep_checkpoints=1", "monitor.tensorboard=false",
          "monitor.console=none", "monitor.stats_interval=0", "eval.samples=0", "eval.tasks=[]"]
SIZE_KEYS: dict[str, list[str]] = {
    "tiny": ["data.max_docs=3", "data.dedup=exact", "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
             "train.batch_size=8", "train.steps=30", "train.warmup_steps=3", "train.log_interval=1",
             "eval.max_tokens=2000", "train.eval_batches=2"],
    "small": ["model.n_layer=2", "model.n_head=4", "model.n_embd=64", "model.block_size=64",
              "train.batch_size=12", "train.steps=300", "train.warmup_steps=30", "train.log_interval=5",
              "eval.max_tokens=20000", "train.eval_batches=10"],
}
SEEDS = {"tiny": [0], "small": [0, 1]}  # several seeds where noise matters (the book)


def check_size(size: str) -> None:
    if size not in SIZES:
        raise LmforgeError(f"unknown --size '{size}'", f"choose from: {', '.join(SIZES)}")


def size_config(size: str, overrides: list[str]) -> Config:
    """The comparison's base config at `size`, with the caller's overrides on top."""
    check_size(size)
    return load_config(None, "default", COMMON + SIZE_KEYS[size] + overrides)


def with_keys(cfg: Config, keys: list[str], seed: int | None = None) -> Config:
    """`cfg` with `keys` (key=value) applied and, when given, train.seed set."""
    from lmforge.config.load import apply_overrides

    data = apply_overrides(cfg.model_dump(mode="json"), keys + ([f"train.seed={seed}"] if seed is not None else []))
    return Config.model_validate(data)


def prepare(folder: Path, cfg: Config) -> RunDir:
    """The base run: data and tokenize stages (skipped when unchanged, like any run)."""
    base = RunDir(folder)
    write_config(base, cfg)
    for stage in ("data", "tokenize"):
        run_stage(base, cfg, stage)
    return base


class Recorder(Callback):
    """Every logged step's numbers, and the events the callbacks announced."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.steps.append({k: metrics[k] for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")
                           if k in metrics})


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == target.resolve():
            return
        shutil.rmtree(link) if link.is_dir() and not link.is_symlink() else link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def cell_run(base: RunDir, folder: Path) -> RunDir:
    """A fresh cell folder on the base run's tokens and tokenizer (links, not copies)."""
    if folder.exists():
        shutil.rmtree(folder)  # a half-finished earlier attempt: measured again from nothing
    run = RunDir(folder)
    run.create()
    _link(base.tokens, run.tokens)
    run.tokenizer.parent.mkdir(parents=True, exist_ok=True)
    _link(base.tokenizer, run.tokenizer)
    return run


def reset_peak_rss() -> float:
    """Start a new peak-memory window for this process (Linux: writing 5 to clear_refs resets
    VmHWM to the current resident size); returns that size in MiB, the window's floor."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return next((int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                 if line.startswith("VmRSS:")), 0.0) if Path("/proc/self/status").is_file() else 0.0


def peak_rss_mib() -> float:
    from lmforge.compare.models import peak_rss_mib as peak

    return peak()


def val_bits_per_byte(base: RunDir, model: Any, cfg: Config) -> float:
    """Validation bits per byte of `model` on the base run's validation split."""
    val = load_tokens(base.tokens, "val")
    losses = token_losses(model, val, cfg.model.block_size, 32, cfg.eval.max_tokens)
    targets = np.asarray(val[1: len(losses) + 1], dtype=np.int64)
    nbytes = token_byte_lengths(load_tokenizer(base.tokenizer))[targets].sum()
    return bits_per_byte(float(losses.sum()), float(nbytes))


def train_cell(base: RunDir, folder: Path, cfg: Config, monitoring: bool = True,
               extra: Callable[[RunDir], list[Callback]] | None = None) -> dict[str, Any]:
    """Train one cell and measure it: steps run, final and validation loss, validation bits per
    byte, tokens/s, wall time per step, peak resident memory, and the logged curve."""
    from lmforge.monitor import build_callbacks

    run = cell_run(base, folder)
    write_config(run, cfg)
    recorder = Recorder()

    def callbacks(r: RunDir, c: Config, model: Any, start: int, show: bool) -> list[Callback]:
        return ((build_callbacks(r, c, model, start, show) if monitoring else [])
                + [recorder] + (extra(r) if extra else []))

    floor = reset_peak_rss()  # before the model is built: weights, optimizer state and activations count
    trainer = build_trainer(run, cfg, resume=False, show_progress=cfg.monitor.console != "none",
                            callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    peak = peak_rss_mib() - floor
    shutil.rmtree(run.checkpoints, ignore_errors=True)  # the numbers are kept; the weights are not needed
    rates = [s["tokens_per_s"] for s in recorder.steps[1:]] or [s["tokens_per_s"] for s in recorder.steps]
    tail = [s["loss"] for s in recorder.steps[-5:]]
    return {"steps": trainer.step, "budget_steps": cfg.train.steps, "tokens": trainer.tokens_seen,
            "final_loss": statistics.fmean(tail) if tail else float("nan"), "val_loss": trainer.last_val,
            "val_bpb": val_bits_per_byte(base, trainer.raw_model, cfg),
            "tokens_per_s": statistics.median(rates) if rates else float("nan"),
            "wall_s": wall, "ms_per_step": 1000 * wall / max(1, trainer.step), "added_peak_mib": peak,
            "final_lr": recorder.steps[-1]["lr"] if recorder.steps else None, "curve": recorder.steps}


def command(name: str, size: str, arm: str, seed: int, out: Path) -> str:
    """The one command that measures this cell again."""
    import shlex

    return f"lmforge compare {name} --size {size} --only {shlex.quote(arm)} --seeds {seed} -o {shlex.quote(str(out))}"


def mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def pm(values: list[float], digits: int = 3) -> str:
    """'mean ± std' over seeds (just the value with one seed)."""
    m, s = mean_std(values)
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f}" if len(values) < 2 else f"{m:.{digits}f} ± {s:.{digits}f}"


def choose(arms: list[str], only: list[str] | None, name: str) -> list[str]:
    unknown = [a for a in only or [] if a not in arms]
    if unknown:
        raise LmforgeError(f"unknown arm(s) {unknown} for `compare {name}`", f"choose from: {', '.join(arms)}")
    return [a for a in arms if a in only] if only else arms


def sweep(name: str, size: str, arms: dict[str, list[str]], out: Path, overrides: list[str],
          only: list[str] | None = None, seeds: list[int] | None = None, monitoring: bool = True,
          extra: Callable[[str, Config], Callable[[RunDir], list[Callback]] | None] | None = None,
          ) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """Every arm (its keys over the size's base config) at every seed, seeds interleaved (arm A
    seed 0, arm B seed 0, ..., then seed 1) so that a change in machine load touches every arm
    alike. Cells come from the cache when their config is unchanged (compare/output.py)."""
    from lmforge.compare.output import cached_cell
    from lmforge.console import console

    names = choose(list(arms), only, name)
    base_cfg = size_config(size, overrides)
    base = prepare(out / "base", base_cfg)
    by_arm: dict[str, list[dict[str, Any]]] = {a: [] for a in names}
    for seed in seeds if seeds is not None else SEEDS[size]:
        for arm in names:
            cfg = with_keys(base_cfg, arms[arm], seed)
            console.print(f"compare {name}: {arm}, seed {seed}")
            hook = extra(arm, cfg) if extra else None
            cell = cached_cell(out, arm, seed, cfg.model_dump(mode="json"), command(name, size, arm, seed, out),
                               lambda c=cfg, a=arm, s=seed, h=hook: train_cell(base, out / "cells" / f"{a}-s{s}",
                                                                                 c, monitoring, h))
            by_arm[arm].append(cell)
    return base, by_arm
