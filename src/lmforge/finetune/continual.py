"""Continual training: a model trained on domain A goes on to domain B, and how much of A it
forgets, against how much of B it gains, depends on the method (the seed's table 13):

- naive: train on B alone;
- replay: a share of every batch comes from A's training windows (Robins 1995, "rehearsal");
- ewc: a Fisher-weighted pull toward A's weights (Kirkpatrick et al. 2017);
- l2: the same pull with unit weights, L2 toward the starting point (L2-SP, Li et al. 2018).

Every arm starts from the same checkpoint of A, trains the same steps on B through the train
stage's trainer factory with the schedule re-warmed, and is scored on A's and B's validation
windows before and after. B is tokenized with A's tokenizer. Each arm's run folder records its
lineage (A's checkpoint and hashes, B's data).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config.load import config_over, load_config
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base, base_tokenizer, load_backbone
from lmforge.models.loss import lm_loss
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir, atomic_write_json
from lmforge.tokens.loader import MixedWindows, RandomWindows, sequential_windows
from lmforge.tokens.store import load_tokens
from lmforge.train.loop import estimate_loss
from lmforge.train.objective import Objective
from lmforge.train.penalty import AnchorPenalty, fisher_diagonal, trainable_state
from lmforge.train.stage import new_trainer

METHODS = ("naive", "replay", "ewc", "l2")
EVAL_BATCHES = 20  # validation windows: 20 batches of the training batch size, the same every time


def domain_config(base: Base, overrides: list[str]) -> Config:
    """Domain B's config: A's, with A's tokenizer (kind pretrained) and B's data from `overrides`."""
    if base.kind == "hf":
        raise LmforgeError("continual training starts from an lmforge run (domain A's data and validation "
                           "split come with it)", "give the run directory that trained on domain A")
    start = load_config(a_run(base).config)
    keys = ["tokenizer.kind=pretrained", f"tokenizer.path={base.tokenizer.resolve()}", "train.time_budget=null",
            "train.budget_steps=null", "train.budget_replans=[]", "train.eval_interval=100000",
            "train.checkpoint_interval=100000", "train.keep_checkpoints=1", "data.authors=[milton]", "monitor.console=none"]
    cfg = config_over(start, None, keys + overrides)
    cfg.name = f"{start.name}-then-b"
    return cfg


def prepare_b(base: Base, root: Path, overrides: list[str]) -> tuple[Config, RunDir]:
    """Domain B's run folder: its documents through the data stage, tokenized with A's tokenizer."""
    cfg = domain_config(base, overrides)
    b_run = RunDir(root)
    write_config(b_run, cfg)
    for stage in ("data", "tokenize"):
        run_stage(b_run, cfg, stage)
    return cfg, b_run


def a_run(base: Base) -> RunDir:
    return RunDir(base.path if base.kind == "run" else base.path.parent.parent)


def val_losses(model: torch.nn.Module, data: dict[str, np.ndarray], cfg: Config) -> dict[str, float]:
    """Loss on each domain's validation windows (the same windows for every arm)."""
    device = next(model.parameters()).device
    return {k: estimate_loss(model, v, cfg.model.block_size, cfg.train.batch_size, EVAL_BATCHES, device,
                             cfg.train.dtype) for k, v in data.items()}


def fisher_weights(model: torch.nn.Module, a_train: np.ndarray, cfg: Config, windows: int) -> dict[str, torch.Tensor]:
    """The diagonal Fisher on A's training windows, scaled to mean 1 over all weights, so that one
    strength means about the same pull for EWC as for L2-SP (our choice; the paper tunes λ)."""
    batches = []
    for i, (x, y) in enumerate(sequential_windows(a_train, cfg.model.block_size, 8)):
        if i * 8 >= windows:
            break
        batches.append((x, y))
    fisher = fisher_diagonal(model, batches, lambda out, y: lm_loss(out, y))
    mean = torch.cat([f.flatten() for f in fisher.values()]).mean().clamp(min=1e-30)
    return {k: f / mean for k, f in fisher.items()}


def continue_training(method: str, base: Base, b_run: RunDir, cfg: Config, a_train: np.ndarray,
                      val: dict[str, np.ndarray], replay_share: float, strength: float, fisher_windows: int,
                      folder: Path) -> dict[str, Any]:
    """Train one method from A's checkpoint on B (checkpoints and lineage.json in `folder`); score
    both domains before and after."""
    tok = base_tokenizer(base)
    model = load_backbone(base, cfg.model, tok, True, cfg.train.seed)
    before = val_losses(model, val, cfg)
    started = time.time()
    objective = Objective()
    extra_s = 0.0
    if method in ("ewc", "l2"):
        weights = None
        if method == "ewc":
            weights = fisher_weights(model, a_train, cfg, fisher_windows)
            extra_s = time.time() - started
        objective.penalties.append(AnchorPenalty(trainable_state(model), strength, weights))
    rows, block = cfg.train.batch_size, cfg.model.block_size
    loader: Any = RandomWindows(load_tokens(b_run.tokens, "train"), block, rows, cfg.train.seed)
    if method == "replay":
        loader = MixedWindows(loader, RandomWindows(a_train, block, rows, cfg.train.seed + 1), replay_share)
    trainer = new_trainer(b_run, cfg, model=model, loader=loader, objective=objective,
                          checkpoint_dir=folder / "checkpoints", validate=False,
                          extra_state={"continual": {"method": method, "base": base.lineage()}})
    trainer.fit()
    seconds = time.time() - started
    after = val_losses(trainer.raw_model, val, cfg)
    atomic_write_json(folder / "lineage.json", {
        "base": base.lineage(), "method": method, "data": cfg.section("data"), "b_run": str(b_run.root.resolve()),
        "schedule": {"steps": cfg.train.steps, "lr": cfg.train.lr, "warmup_steps": cfg.train.warmup_steps,
                     "rewarmed": True}, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    b_tokens = trainer.tokens_seen if method != "replay" else trainer.step * loader.split()[0] * block
    return {"method": method, "steps": trainer.step, "seconds": round(seconds, 2),
            "fisher_seconds": round(extra_s, 2), "tokens": trainer.tokens_seen, "b_tokens": b_tokens,
            "before": before, "after": after,
            "forgetting": after["A"] - before["A"], "gain": before["B"] - after["B"],
            "strength": strength if method in ("ewc", "l2") else None,
            "replay_share": replay_share if method == "replay" else None}


