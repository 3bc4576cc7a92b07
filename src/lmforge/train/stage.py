"""The `train` stage: build the model and loader from the run directory and run the loop."""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch

from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model, count_parameters
from lmforge.models.stream import StreamWindows
from lmforge.monitor.console import ProgressBar, console
from lmforge.monitor.sinks import JsonlSink, TensorBoardSink
from lmforge.rundir import RunDir
from lmforge.tokens.loader import RandomWindows, load_tokens
from lmforge.train import checkpoint as ckpt
from lmforge.train.loop import Trainer, pick_device
from lmforge.train.optim import build_optimizer


def setup_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def build_trainer(run: RunDir, cfg: Config, resume: bool, show_progress: bool = True) -> Trainer:
    meta_path = run.require(run.tokens / "meta.json", "tokenize")
    meta = json.loads(meta_path.read_text())
    setup_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = pick_device(cfg.train.device)
    model = build_model(cfg.model, meta["vocab_size"]).to(device)
    optimizer = build_optimizer(model, cfg.train)
    train_tokens = load_tokens(run.tokens, "train")
    try:
        # state-carrying models (truncated BPTT) need row i of each batch to continue row i of the last
        windows = StreamWindows if getattr(model, "carries_state", False) else RandomWindows
        loader = windows(train_tokens, cfg.model.block_size, cfg.train.batch_size, cfg.train.seed)
    except ValueError as exc:
        raise LmforgeError(f"training split too small: {exc}", "lower model.block_size or add data") from None
    val = load_tokens(run.tokens, "val") if meta["splits"]["val"]["tokens"] > cfg.model.block_size else None

    start = 0
    latest = ckpt.latest_valid(run.checkpoints, warn=lambda m: console.print(f"[yellow]{m}"))
    if resume and latest is not None:
        start = int(json.loads((latest / "state.json").read_text())["step"])
    elif not resume:
        for old in ckpt.list_checkpoints(run.checkpoints):
            shutil.rmtree(old)  # a fresh run must never resume from a stale checkpoint
    callbacks = [JsonlSink(run.metrics, resume_step=start), TensorBoardSink(run.tb)]
    if show_progress:
        callbacks.append(ProgressBar(cfg.train.steps, start))
    trainer = Trainer(model, optimizer, loader, cfg.train, val, run.checkpoints, callbacks,
                      extra_state={"params": count_parameters(model)})
    if resume and latest is not None:
        trainer.restore(latest)
        run.event("resume", f"resumed from {latest.name}", step=trainer.step)
    return trainer


def run_train(run: RunDir, cfg: Config, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    trainer = build_trainer(run, cfg, resume, show_progress)
    params = count_parameters(trainer.model)
    run.event("train_start", f"training {params['total']:,} parameters for {cfg.train.steps} steps",
              step=trainer.step, params=params)
    trainer.fit()
    run.event("train_end", f"stopped at step {trainer.step}", step=trainer.step, val_loss=trainer.last_val)
    return {"step": trainer.step, "val_loss": trainer.last_val, "params": params}
