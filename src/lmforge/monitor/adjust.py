"""Automatic adjustments during training: early stopping, LR reduction on plateau, weight averaging.

Each is a callback on the one loop and records what it did in events.jsonl with step and reason.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from lmforge.config.schema import AverageConfig, EarlyStopConfig, PlateauConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer

EventFn = Callable[..., None]


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Strictly better than `best` by more than min_delta (Lightning's and Keras' rule)."""
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class MetricCheck(Callback):
    """Calls `check(trainer, value)` whenever the watched metric is logged."""

    metric = "val_loss"

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.metric == "loss" and "loss" in metrics:
            self.check(trainer, float(metrics["loss"]))

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.metric == "val_loss" and "val_loss" in metrics:
            self.check(trainer, float(metrics["val_loss"]))

    def check(self, trainer: Trainer, value: float) -> None:
        raise NotImplementedError


class EarlyStopping(MetricCheck):
    """Stop after `patience` checks without improvement, or when the metric reaches `target`.
    Defaults follow Lightning's EarlyStopping (patience 3, min_delta 0, mode min); `target` is its
    stopping_threshold. With restore_best, the best weights are put back and saved at the end."""

    def __init__(self, cfg: EarlyStopConfig, event: EventFn) -> None:
        self.cfg, self.event, self.metric = cfg, event, cfg.metric
        self.best: float | None = None
        self.best_step = 0
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stopped_at: int | None = None

    def check(self, trainer: Trainer, value: float) -> None:
        if math.isnan(value):  # NaN never improves and is not waited on
            self._stop(trainer, f"{self.metric} is NaN")
            return
        if improved(value, self.best, self.cfg.mode, self.cfg.min_delta):
            self.best, self.best_step, self.wait = value, trainer.step, 0
            if self.cfg.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}
        else:
            self.wait += 1
        target = self.cfg.target
        if target is not None and (value <= target if self.cfg.mode == "min" else value >= target):
            self._stop(trainer, f"{self.metric} {value:.4f} reached the target {target}")
        elif self.wait >= self.cfg.patience:
            self._stop(trainer, f"{self.metric} did not improve by more than {self.cfg.min_delta} for "
                                f"{self.wait} checks (best {self.best:.4f} at step {self.best_step})")

    def _stop(self, trainer: Trainer, reason: str) -> None:
        if self.stopped_at is None:
            trainer.should_stop = True
            self.stopped_at = trainer.step
            self.event("early_stop", f"early stopping at step {trainer.step}", step=trainer.step, reason=reason)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.best_state is None or self.best_step == trainer.step:
            return
        trainer.raw_model.load_state_dict(self.best_state)
        trainer.save()  # the final checkpoint now holds the best weights
        self.event("restore_best", f"restored the weights of step {self.best_step}", step=trainer.step,
                   reason=f"best {self.metric} {self.best:.4f}")


class ReduceLROnPlateau(MetricCheck):
    """Multiply the LR by `factor` after `patience` checks without improvement, then wait `cooldown`
    checks. Keras' ReduceLROnPlateau semantics and defaults (factor 0.1, patience 10, absolute
    min_delta 1e-4, cooldown 0, min_lr 0). The cut scales whatever schedule runs, and never takes
    the LR below min_lr (nor above the schedule)."""

    def __init__(self, cfg: PlateauConfig, event: EventFn) -> None:
        self.cfg, self.event, self.metric = cfg, event, cfg.metric
        self.scale = 1.0
        self.best: float | None = None
        self.wait = 0
        self.cooldown = 0

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.dist.world > 1:
            raise LmforgeError("monitor.plateau is not available under torchrun yet: only rank 0 would cut its LR",
                               "turn monitor.plateau.enabled off, or train in one process")
        base = trainer.lr_at

        def scaled(step: int, cfg: Any) -> float:
            lr = base(step, cfg)
            return lr if self.scale >= 1.0 else max(lr * self.scale, min(lr, self.cfg.min_lr))

        trainer.lr_at = scaled

    def check(self, trainer: Trainer, value: float) -> None:
        if self.cooldown > 0:
            self.cooldown -= 1
            self.wait = 0
        if improved(value, self.best, self.cfg.mode, self.cfg.threshold):
            self.best, self.wait = value, 0
        elif self.cooldown == 0:
            self.wait += 1
            if self.wait >= self.cfg.patience:
                self.scale *= self.cfg.factor
                self.wait, self.cooldown = 0, self.cfg.cooldown
                self.event("lr_reduce", f"LR scaled by {self.cfg.factor} (now x{self.scale:.3g} of the schedule)",
                           step=trainer.step, scale=self.scale,
                           reason=f"{self.metric} did not improve for {self.cfg.patience} checks "
                                  f"(best {self.best:.4f})")


class WeightAverage(Callback):
    """EMA of the weights, or SWA (equal-weight average), from `start` of training, updated every
    `every` steps through an optimizer post-step hook; at the end the averaged weights replace the
    model's when they are at least as good on validation (both losses go to events.jsonl)."""

    def __init__(self, cfg: AverageConfig, event: EventFn) -> None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.cfg, self.event = cfg, event
        self._make = lambda m: AveragedModel(
            m, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay) if cfg.kind == "ema" else None)
        self.avg: Any = None
        self.updates = 0
        self._handle: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            step = trainer.step + 1  # counted by the loop after the optimizer step
            if step < self.cfg.start * trainer.cfg.steps or step % self.cfg.every:
                return
            if self.avg is None:
                self.avg = self._make(trainer.raw_model)
            self.avg.update_parameters(trainer.raw_model)
            self.updates += 1

        last = trainer.optimizers()[-1]
        self._handle = last.register_step_post_hook(after_step)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._handle is not None:
            self._handle.remove()
        if self.avg is None:
            self.event("average", f"no {self.cfg.kind.upper()} average: training ended before it started",
                       step=trainer.step, reason=f"start at {self.cfg.start:.0%} of steps")
            return
        model = trainer.raw_model
        raw = trainer.val_loss() if trainer.can_validate else None
        averaged = copy.deepcopy(model)
        with torch.no_grad():
            for p, q in zip(averaged.parameters(), self.avg.module.parameters(), strict=True):
                p.copy_(q)
        avg = trainer.val_loss(averaged) if trainer.can_validate else None
        name = self.cfg.kind.upper()
        if raw is not None and avg is not None and avg > raw:
            self.event("average", f"kept the raw weights: {name} val_loss {avg:.4f} > raw {raw:.4f}",
                       step=trainer.step, reason=f"{self.updates} updates", raw_val_loss=raw, avg_val_loss=avg)
            return
        model.load_state_dict(averaged.state_dict())
        trainer.save()
        detail = f": val_loss {avg:.4f} (raw {raw:.4f})" if raw is not None and avg is not None else ""
        self.event("average", f"weights replaced by their {name} average{detail}", step=trainer.step,
                   reason=f"{self.updates} updates", raw_val_loss=raw, avg_val_loss=avg)


def build_adjusters(run: RunDir, early: EarlyStopConfig, plateau: PlateauConfig,
                    average: AverageConfig) -> list[Callback]:
    out: list[Callback] = []
    if plateau.enabled:
        out.append(ReduceLROnPlateau(plateau, run.event))
    if early.enabled:
        out.append(EarlyStopping(early, run.event))
    if average.kind != "none":
        out.append(WeightAverage(average, run.event))
    return out
