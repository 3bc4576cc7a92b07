"""The one training loop. Pretraining, fine-tuning, search trials and doctor scenarios all use it;
they differ by configuration and by callbacks, never by a copy of this loop."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config import TrainConfig
from lmforge.tokens.loader import RandomWindows, sequential_windows
from lmforge.train import checkpoint as ckpt
from lmforge.train.callbacks import Callback
from lmforge.train.schedule import warmup_cosine


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy per token, in float32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction=reduction)


@torch.no_grad()
def estimate_loss(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                  batches: int, device: torch.device, dtype: str) -> float:
    """Mean loss over the first `batches` sequential windows of a split (the same windows each time)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(sequential_windows(data, block_size, batch_size)):
        if i >= batches:
            break
        with autocast(device, dtype):
            logits = model(x.to(device))
        total += lm_loss(logits, y.to(device), "sum").item()
        count += y.numel()
    model.train(was_training)
    return total / max(1, count)


class Trainer:
    """Runs `cfg.steps` optimizer steps of next-token prediction with callbacks on named events."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loader: RandomWindows,
                 cfg: TrainConfig, val_data: np.ndarray | None, checkpoint_dir: Path,
                 callbacks: list[Callback] | None = None,
                 lr_at: Callable[[int, TrainConfig], float] = warmup_cosine,
                 extra_state: dict[str, Any] | None = None) -> None:
        self.model, self.optimizer, self.loader, self.cfg = model, optimizer, loader, cfg
        self.val_data, self.checkpoint_dir = val_data, checkpoint_dir
        self.callbacks = callbacks or []
        self.lr_at = lr_at
        self.extra_state = extra_state or {}
        self.device = next(model.parameters()).device
        self.step = 0
        self.should_stop = False
        self.last_val: float | None = None
        self.best_val: float | None = None

    # events ----------------------------------------------------------
    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # checkpoints -----------------------------------------------------
    def save(self) -> Path:
        rng = {"torch": torch.get_rng_state(), "loader": self.loader.gen.get_state()}
        state = {"loader_batches": self.loader.batches, "best_val": self.best_val,
                 "last_val": self.last_val, **self.extra_state}
        path = ckpt.save_checkpoint(self.checkpoint_dir, self.step, self.model, self.optimizer,
                                    state, rng, self.cfg.keep_checkpoints)
        self._emit("on_checkpoint", path)
        return path

    def restore(self, path: Path) -> None:
        state, rng = ckpt.load_checkpoint(path, self.model, self.optimizer)
        self.step = int(state["step"])
        self.best_val, self.last_val = state.get("best_val"), state.get("last_val")
        torch.set_rng_state(rng["torch"])
        self.loader.load_state_dict({"batches": state["loader_batches"], "generator": rng["loader"]})

    # the loop ----------------------------------------------------------
    def evaluate(self) -> float:
        assert self.val_data is not None
        loss = estimate_loss(self.model, self.val_data, self.loader.block_size, self.loader.batch_size,
                             self.cfg.eval_batches, self.device, self.cfg.dtype)
        self.last_val = loss
        self.best_val = loss if self.best_val is None else min(self.best_val, loss)
        self._emit("on_eval_end", {"step": self.step, "val_loss": loss})
        return loss

    def train_step(self) -> tuple[float, float]:
        x, y = self.loader.next()
        x, y = x.to(self.device), y.to(self.device)
        lr = self.lr_at(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        with autocast(self.device, self.cfg.dtype):
            logits = self.model(x)
        loss = lm_loss(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in self.model.parameters() if p.grad is not None]))
        self.optimizer.step()
        return loss.item(), float(grad_norm)

    def fit(self) -> None:
        self.model.train()
        if hasattr(self.model, "reset_state"):  # recurrent models: truncated BPTT starts from zeros
            self.model.reset_state()
        self._emit("on_train_start")
        start, window_t, window_tokens = time.time(), time.time(), 0
        tokens_per_step = self.loader.batch_size * self.loader.block_size
        while self.step < self.cfg.steps and not self.should_stop:
            loss, grad_norm = self.train_step()
            lr = self.optimizer.param_groups[0]["lr"]
            self.step += 1
            window_tokens += tokens_per_step
            if self.step % self.cfg.log_interval == 0 or self.step == self.cfg.steps:
                now = time.time()
                metrics = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                           "tokens_per_s": window_tokens / max(1e-9, now - window_t),
                           "elapsed_s": now - start}
                window_t, window_tokens = now, 0
                self._emit("on_step_end", metrics)
            if self.val_data is not None and (self.step % self.cfg.eval_interval == 0 or self.step == self.cfg.steps):
                self.evaluate()
            if self.step % self.cfg.checkpoint_interval == 0 and self.step < self.cfg.steps:
                self.save()
            if self.cfg.max_seconds is not None and time.time() - start > self.cfg.max_seconds:
                self.should_stop = True
        self.save()
        self._emit("on_train_end")
