"""`lmforge compare architectures` and `lmforge compare init`: short runs of the one Trainer
(train/loop.py) on the built-in corpus, one arm per family or init scheme, and a table.

Each arm runs in a fresh process so its peak resident memory is its own. Every arm sees the same
data, tokenizer, batch, context and number of steps (an equal token budget); the architecture
arms also have roughly equal non-embedding parameters (the table prints both counts and the
FLOPs per token, so compute differences are visible rather than hidden).
"""

from __future__ import annotations

import math
import platform
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.evaluate.lm import bits_per_byte, token_losses
from lmforge.models.info import flops_per_token
from lmforge.models.registry import build_model, count_parameters
from lmforge.models.signal import signal_check
from lmforge.pipeline import run_stage, write_config
from lmforge.report.diagram import architecture_figure
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text
from lmforge.tokens.store import load_tokens
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.loop import Callback, Trainer
from lmforge.train.stage import new_trainer

# a character-level tokenizer and nanoGPT's CPU shape (context 64, batch 12) keep the
# comparison about the architecture, and each arm within about a minute on 2 cores; one thread,
# because on a shared 2-core machine a second OpenMP thread mostly waits (measured: a tiny model
# ran 35x slower with 2 threads than with 1 while other jobs loaded the CPU)
BASE = ["tokenizer.kind=char", "tokenizer.vocab_size=256", "model.block_size=64", "train.batch_size=12",
        "train.steps=400", "train.warmup_steps=40", "train.lr=3e-3", "train.min_lr=3e-4",
        "train.eval_interval=100000", "train.log_interval=10", "train.checkpoint_interval=100000",
        "train.keep_checkpoints=1", "train.threads=1", "eval.max_tokens=40000"]

# about 0.6-0.8M non-embedding parameters each
# (explicit shapes: a preset's own keys would win over a size preset)
ARCHITECTURES: dict[str, list[str]] = {
    "gpt": ["model.family=gpt", "model.n_layer=4", "model.n_head=4", "model.n_embd=128"],
    "llama": ["model.family=llama", "model.n_layer=4", "model.n_head=4", "model.n_kv_head=2", "model.n_embd=128"],
    "lstm": ["model.family=lstm", "model.n_layer=2", "model.n_embd=192", "train.lr=1e-2", "train.min_lr=1e-3"],
    "gru": ["model.family=gru", "model.n_layer=2", "model.n_embd=224", "train.lr=1e-2", "train.min_lr=1e-3"],
    "cnn": ["model.family=cnn", "model.n_layer=4", "model.n_embd=160", "model.kernel_size=3"],
}
# one GPT of 6 layers; the first 100 steps show how each start behaves
INIT_BASE = ["model.family=gpt", "model.n_layer=6", "model.n_head=4", "model.n_embd=128", "train.steps=100",
             "train.log_interval=1", "train.warmup_steps=10"]
INITS = ["torch", "normal", "gpt2", "small", "xavier_uniform", "kaiming_normal", "zero_residual"]


def base_config(config: Path | None, overrides: list[str]) -> Config:
    return load_config(config, None if config else "default", BASE + overrides)


def prepare(run: RunDir, cfg: Config) -> None:
    """Data and tokenizer through the normal stages (skipped when unchanged)."""
    write_config(run, cfg)
    for stage in ("data", "tokenize"):
        run_stage(run, cfg, stage)


class _Recorder(Callback):
    """Keeps every logged step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.steps.append({k: metrics[k] for k in ("step", "loss", "grad_norm", "tokens_per_s") if k in metrics})


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    exec, so a spawned child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def run_arm(run_root: str, cfg_json: dict[str, Any], name: str) -> dict[str, Any]:
    """One arm, in its own process: train through the train stage's trainer factory (so every
    `train.*` key means what it means in `lmforge train`), then score validation bits per byte."""
    cfg = Config.model_validate(cfg_json)
    run = RunDir(Path(run_root))
    recorder = _Recorder()
    trainer = new_trainer(run, cfg, [recorder], checkpoint_dir=run.root / "arms" / name / "checkpoints",
                          validate=False)
    model = trainer.raw_model
    tok = load_tokenizer(run.tokenizer)
    val = load_tokens(run.tokens, "val")
    T, B = cfg.model.block_size, trainer.plan.rows
    start = np.random.default_rng(0).integers(0, len(val) - T - 1)
    xy = torch.from_numpy(np.asarray(val[start: start + T + 1], dtype=np.int64))[None]
    signal = signal_check(model, xy[:, :-1].repeat(B, 1), xy[:, 1:].repeat(B, 1))
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    losses = token_losses(model, val, T, 32, cfg.eval.max_tokens)
    targets = np.asarray(val[1: len(losses) + 1], dtype=np.int64)
    nbytes = token_byte_lengths(tok)[targets].sum()
    plan = trainer.plan
    rates = [s["tokens_per_s"] for s in recorder.steps[1:]] or [math.nan]
    return {"arm": name, "family": cfg.model.family, "init": cfg.model.init, "params": count_parameters(model),
            "flops_per_token": flops_per_token(model, cfg.model), "steps": trainer.step,
            "val_bpb": bits_per_byte(losses.sum(), nbytes), "val_loss": float(losses.mean()),
            "tokens": trainer.tokens_seen, "batch": {"rows": plan.rows, "micro": plan.micro, "accum": plan.accum},
            "loader": type(trainer.loader).__name__, "doc_mask": cfg.train.doc_mask,
            "tokens_per_s": statistics.median(rates), "train_s": train_s,
            "peak_rss_mib": peak_rss_mib(),
            "signal": {k: signal[k] for k in ("status", "ratio", "reason")},
            "curve": recorder.steps}


def run_arms(run: RunDir, arms: dict[str, Config]) -> list[dict[str, Any]]:
    """Each arm in a fresh spawned process, one after the other (so they never share the CPU)."""
    results = []
    ctx = get_context("spawn")
    for name, cfg in arms.items():
        print(f"  arm {name}: {cfg.model.family}, init {cfg.model.init}, {cfg.train.steps} steps", flush=True)
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            res = pool.submit(run_arm, str(run.root), cfg.model_dump(mode="json"), name).result()
        print(f"    val {res['val_bpb']:.3f} bits/byte, {res['tokens_per_s']:,.0f} tok/s", flush=True)
        results.append(res)
    return results


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(), "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def architectures_table(results: list[dict[str, Any]]) -> str:
    lines = ["| family | params (non-emb) | MFLOP/token | val bits/byte | tokens/s | train s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        p = r["params"]
        lines.append(f"| {r['arm']} | {_fmt_params(p['total'])} ({_fmt_params(p['non_embedding'])}) | "
                     f"{r['flops_per_token'] / 1e6:.2f} | {r['val_bpb']:.3f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['train_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def _loss_at(curve: list[dict[str, Any]], step: int) -> float:
    return next((s["loss"] for s in curve if s["step"] == step), math.nan)


def init_table(results: list[dict[str, Any]]) -> str:
    lines = [("| init | signal at init | loss @1 | @10 | @50 | @100 | grad-norm @1 | median grad-norm | "
              "max grad-norm | val bits/byte |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["curve"]
        g = [s["grad_norm"] for s in c]
        lines.append(f"| {r['arm']} | {r['signal']['status']} ({r['signal']['ratio']:.3g}) | "
                     f"{_loss_at(c, 1):.3f} | {_loss_at(c, 10):.3f} | {_loss_at(c, 50):.3f} | {_loss_at(c, 100):.3f} | "
                     f"{g[0]:.3g} | {statistics.median(g):.3g} | {max(g):.3g} | {r['val_bpb']:.3f} |")
    return "\n".join(lines)


def architecture_diagrams(run: RunDir, arms: dict[str, Config]) -> dict[str, str]:
    """One diagram per family, drawn from the model each arm built (report/diagram.py)."""
    vocab = load_tokenizer(run.tokenizer).get_vocab_size(with_added_tokens=True)
    figures = {}
    for name, cfg in arms.items():
        path = architecture_figure(build_model(cfg.model, vocab), run.root / f"architecture-{name}.png", name)
        figures[name] = path.name
    return figures


def compare(kind: str, config: Path | None, overrides: list[str], out: Path | None,
            only: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison `kind` ("architectures" or "init") and write results.json and table.md."""
    names = list(ARCHITECTURES) if kind == "architectures" else INITS
    unknown = [n for n in only or [] if n not in names]
    if unknown:
        raise LmforgeError(f"unknown arm(s) {unknown} for `compare {kind}`", f"choose from: {', '.join(names)}")
    base = base_config(config, (INIT_BASE if kind == "init" else []) + overrides)
    run = RunDir(out or Path("runs") / f"compare-{kind}")
    prepare(run, base)
    arms: dict[str, Config] = {}
    for name in only or names:
        extra = ARCHITECTURES[name] if kind == "architectures" else [f"model.init={name}"]
        arms[name] = base_config(config, (INIT_BASE if kind == "init" else []) + extra + overrides)
    started = time.time()
    results = run_arms(run, arms)
    table = architectures_table(results) if kind == "architectures" else init_table(results)
    if kind == "architectures":
        figures = architecture_diagrams(run, arms)
        table += "\n\nEach family as built (figure 4): " + ", ".join(f"[{n}]({f})" for n, f in figures.items())
    env = environment()
    record = {"kind": kind, "environment": env, "wall_s": time.time() - started, "results": results}
    atomic_write_json(run.root / "compare.json", record)
    atomic_write_text(run.root / "compare.md", table + "\n")
    return {"table": table, "out": str(run.root), "environment": env, "wall_s": record["wall_s"]}
