"""The repairs `doctor.policy=auto` can apply to a running trainer, each with its undo.

They use what the trainer already offers: `snapshot()`/`rollback()` for going back, the live
config (as `lmforge ctl set` changes it: monitor.control.validate_changes) for LR, clipping and
weight decay, and the model's own initialisation (models.init) for a re-initialisation.

A remedy that changes a setting the whole run depended on (LR, regularisation, initialisation)
restarts from step 0 when the Doctor asks for it (`ctx.notes["restart"]`, `doctor.restart`): the
steps trained with the wrong setting are what the problem was, so keeping them would leave the
repaired run behind a run that had the right setting from the start. That is what a user who
spots the problem does (fix the config, train again), without reloading data or model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model
from lmforge.monitor.control import decay_ratios, sync_optimizer, validate_changes
from lmforge.train.lr_find import exp_lr, smooth

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer

LR_DOWN = 0.1  # ReduceLROnPlateau's default factor (Keras); OPT (Zhang et al. 2022) also lowered the LR on restarts
LR_UP = 10.0  # without a measured update ratio to aim from
# the update/weight ratio a raised LR aims at: the healthy GPT of the scenario suite (AdamW, LR 3e-3)
# measured a median of 1.6e-2 over its first three statistics records, the ones lr_too_low reads
# (a first value of 1e-2 raised LR 1e-6 only to 9.5e-4, which ended 5.4% above the healthy run)
TARGET_UPDATE = 1.6e-2
MAX_RAISE = 1e4  # the update ratio grows more slowly than the LR, so a raise may need to be large
# the LR range test of a lowering after a divergence: SWEEP_STEPS steps from top x SWEEP_SPAN up to
# top (the LR that diverged), stopped when the smoothed loss passes SWEEP_DIVERGE x its best (as fastai)
SWEEP_STEPS, SWEEP_SPAN, SWEEP_DIVERGE = 50, 1e-5, 4.0
# the suggestion: the LR of the lowest smoothed loss / 10 (fastai v1's lr_find suggestion). Measured
# on the suite's sweeps (50 steps, up to the LR that diverged): LR 5 -> 2.2e-3, LR 10 -> 2.2e-3, the
# six blocks at 0.02 -> 2e-3 (the healthy runs train at 3e-3); fastai's later "valley" rule chose
# 8.4e-4, 1.0e-3 and 1.8e-4 on these short sweeps, and 8.4e-4 left the LR 5 run 6% above healthy
SWEEP_BELOW_MIN = 10.0
REPEATABLE = ("lower_lr", "raise_lr")  # a step in the right direction that was too small is repeated, not undone
CLIP_TIGHT = 0.5  # gradient clipping threshold after a divergence (or 1.0 when clipping was off)
# batches skipped: the ones between the snapshot and the detection, times SKIP_FACTOR, so as many
# again after the detection as led to it (a bad stretch of data need not end where the spike was
# seen). PaLM (Chowdhery et al. 2022) restarted about 100 steps before a spike and skipped 200-500
# batches. The first rule, 5 batches past the detection, left 10 of 20 corrupted batches in the
# suite's spike scenario.
SKIP_FACTOR = 2
# repairs a running trainer cannot make: the doctor names them, the user acts
ADVICE = {"larger_model": "train a larger model (model.n_layer, model.n_embd or model.size)",
          "fix_data": "deduplicate across splits (data.dedup=near) or remove the repeated source",
          "bf16": "use train.dtype=bfloat16 instead of float16 (same range as float32, no loss scaling)"}


@dataclass
class Context:
    """What repairs may use: the model config, the last good and best-validation snapshots."""

    model_cfg: ModelConfig
    seed: int = 0  # train.seed: a re-initialisation draws the weights a new run would
    good: dict[str, Any] | None = None  # trainer.snapshot() a window before the newest healthy check
    start: dict[str, Any] | None = None  # trainer.snapshot() at step 0, where a restart goes back to
    best: dict[str, torch.Tensor] | None = None  # weights at the best validation loss
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Applied:
    """A repair that ran: what changed (for the event) and how to undo it (None: cannot)."""

    name: str
    changes: dict[str, Any]
    undo: dict[str, Any] | None = None


def _set_live(trainer: Trainer, changes: dict[str, Any]) -> dict[str, Any]:
    """Change train.* keys as `lmforge ctl set` does (validated as a whole); returns the old values."""
    new = validate_changes({f"train.{k}": v for k, v in changes.items()}, trainer.cfg)
    old = {k: getattr(trainer.cfg, k) for k in changes}
    ratios = decay_ratios(trainer.optimizer, trainer.cfg.weight_decay)
    trainer.cfg.__dict__.update({k: getattr(new, k) for k in changes})
    sync_optimizer(trainer.optimizer, trainer.cfg, ratios)
    return old


def _dropouts(model: nn.Module) -> list[nn.Dropout]:
    return [m for m in model.modules() if isinstance(m, nn.Dropout)]


def _rollback_good(trainer: Trainer, ctx: Context) -> int | None:
    """Back to the last good snapshot; returns the step it held (None when there is none)."""
    if ctx.good is None:
        return None
    detected = trainer.step
    trainer.rollback(ctx.good)
    for _ in range(SKIP_FACTOR * max(1, detected - trainer.step)):  # skip the batches that led there, and on
        trainer.loader.next()
    return trainer.step


def _restart(trainer: Trainer, ctx: Context) -> bool:
    """Back to step 0 when the Doctor asked for a restart; True when it went back. The best
    validation loss of the abandoned steps no longer counts (their weights are not kept)."""
    if not ctx.notes.get("restart") or ctx.start is None:
        return False
    trainer.rollback(ctx.start)
    trainer.best_val = None
    ctx.best = None
    ctx.good = ctx.start
    return True


def rollback_skip(trainer: Trainer, ctx: Context) -> Applied:
    """Back to the last good snapshot, skipping the batches since (PaLM, Chowdhery et al. 2022)."""
    at, was = trainer.step, trainer.step
    back = _rollback_good(trainer, ctx)
    if back is None:
        raise LmforgeError("no good snapshot to roll back to yet")
    return Applied("rollback_skip", {"from_step": at, "to_step": back,
                                     "skipped_batches": SKIP_FACTOR * max(1, was - back)})


def lower_lr(trainer: Trainer, ctx: Context) -> Applied:
    """LR x0.1 and tighter clipping (as OPT's restarts did), from the last good snapshot. After a
    divergence and a restart, an LR range test from the restart weights picks the new LR at or
    below that tenth (see `sweep_lr`)."""
    at = trainer.step
    restarted = _restart(trainer, ctx)
    back = 0 if restarted else _rollback_good(trainer, ctx)
    clip = CLIP_TIGHT if trainer.cfg.grad_clip == 0 else min(trainer.cfg.grad_clip, CLIP_TIGHT)
    lr, swept = trainer.cfg.lr * LR_DOWN, {}
    if restarted and ctx.notes.get("diverged") and ctx.start is not None:
        found, steps = sweep_lr(trainer, trainer.cfg.lr, clip)
        trainer.rollback(ctx.start)
        swept = {"sweep_steps": steps, "sweep_lr": found}
        lr = min(lr, found) if found else lr
    factor = lr / trainer.cfg.lr
    changes = {"lr": lr, "min_lr": trainer.cfg.min_lr * factor, "grad_clip": clip}
    ctx.notes["lr_ceiling"] = changes["lr"]  # a raise must never go back up to where it broke
    old = _set_live(trainer, changes)
    return Applied("lower_lr", {**changes, **swept, "from_step": at, "to_step": back}, {"config": old})


def sweep_lr(trainer: Trainer, top: float, clip: float) -> tuple[float | None, int]:
    """A short LR range test (Smith 2017) from where the trainer is: the LR rises geometrically
    from top x SWEEP_SPAN to `top`, the LR that diverged, over SWEEP_STEPS steps, with clipping at
    `clip`; the suggestion is the LR of the lowest smoothed loss / SWEEP_BELOW_MIN. Returns it
    (None when the sweep says nothing) and the steps trained. A tenfold lowering at a time needs a
    restart per decade: LR 5 lowered twice was judged at step 175 of 200 and still too high
    (measured in the suite's lr_5 run)."""
    saved, saved_clip, first = trainer.lr_at, trainer.cfg.grad_clip, trainer.step
    trainer.lr_at = lambda step, cfg: exp_lr(step - first, SWEEP_STEPS, top * SWEEP_SPAN, top)
    trainer.cfg.grad_clip = clip
    lrs: list[float] = []
    losses: list[float] = []
    try:
        for step in range(SWEEP_STEPS):
            lr = trainer.lr_at(trainer.step, trainer.cfg)
            loss, _ = trainer.train_step()
            if not math.isfinite(loss):
                break
            lrs.append(lr)
            losses.append(loss)
            smoothed = smooth(losses)
            if step > 5 and smoothed[-1] > SWEEP_DIVERGE * min(smoothed):
                break
    except LmforgeError:  # max_bad_steps non-finite steps in a row: the sweep has gone past usable LRs
        pass
    finally:
        trainer.lr_at, trainer.cfg.grad_clip = saved, saved_clip
    smoothed = smooth(losses)
    if len(lrs) < 3:
        return None, trainer.step - first
    return lrs[int(np.argmin(smoothed))] / SWEEP_BELOW_MIN, trainer.step - first


def raise_lr(trainer: Trainer, ctx: Context) -> Applied:
    """LR x10, or by what brings the measured update/weight ratio to TARGET_UPDATE (at most x1e4)."""
    ratio = ctx.notes.get("median_ratio")
    factor = min(MAX_RAISE, max(2.0, TARGET_UPDATE / ratio)) if ratio else LR_UP
    ceiling = ctx.notes.get("lr_ceiling")
    if ceiling is not None:
        if trainer.cfg.lr >= ceiling:
            raise LmforgeError(f"the LR was lowered to {ceiling:.3g} after a divergence; not raising it again")
        factor = min(factor, ceiling / trainer.cfg.lr)
    changes = {"lr": min(10.0, trainer.cfg.lr * factor), "min_lr": min(10.0, trainer.cfg.min_lr * factor)}
    at, restarted = trainer.step, _restart(trainer, ctx)
    return Applied("raise_lr", {**changes, "factor": factor, **_moved(at, restarted)},
                   {"config": _set_live(trainer, changes)})


def reinit(trainer: Trainer, ctx: Context) -> Applied:
    """Re-initialise with the family's default scheme at std 0.02 and fresh optimizer state: for
    gradients that vanish from the start (the initialisation is the cause). The weights are drawn
    as a new run with the fixed config draws them (from train.seed, train/stage.py), so the
    repaired run is the one `lmforge run` with the fixed config gives: one draw differs from the
    next by more than the suite's 5% repair tolerance at this size (measured: the healthy GPT
    re-initialised from the generator where training had left it ended at 4.78; four other seeds
    4.21-4.50; the run's own seed 4.29)."""
    snap = trainer.snapshot()
    at, restarted = trainer.step, _restart(trainer, ctx)
    data = ctx.model_cfg.model_dump()
    data.update(init="auto", init_std=0.02, init_overrides={})
    cfg = ModelConfig.model_validate(data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        fresh = build_model(cfg, trainer.raw_model.vocab_size)
    trainer.raw_model.load_state_dict(fresh.state_dict())
    for opt in trainer.optimizers():
        opt.state.clear()
    old_start = ctx.start
    if restarted:  # later restarts go back to the new weights, not to the broken ones
        ctx.start = ctx.good = trainer.snapshot()
    return Applied("reinit", {"init": "auto", "init_std": 0.02, **_moved(at, restarted)},
                   {"snapshot": snap, "start": old_start})


def stop_early(trainer: Trainer, ctx: Context) -> Applied:
    """Put back the weights of the best validation loss and end training; refused while the last
    validation loss is the best (measured: repeated data, 4 passes at step 40 of the overfitting
    scenario, stopped a run whose validation loss still fell for 100 steps)."""
    if trainer.last_val is not None and trainer.best_val is not None and trainer.last_val <= trainer.best_val:
        raise LmforgeError(f"the validation loss is still at its best ({trainer.last_val:.4g}): stopping now "
                           "would give up the steps that still improve it")
    if ctx.best is not None:
        trainer.raw_model.load_state_dict(ctx.best)
    trainer.should_stop = True
    return Applied("stop_early", {"restored_best": ctx.best is not None, "best_step": ctx.notes.get("best_step")})


def raise_regularization(trainer: Trainer, ctx: Context) -> Applied:
    """Dropout +0.1 (at most 0.5) and weight decay x3, from where the run is (overfitting shows
    late: the steps before it were good ones)."""
    drops = _dropouts(trainer.raw_model)
    old_p = [d.p for d in drops]
    for d in drops:
        d.p = min(0.5, d.p + 0.1)
    old = _set_live(trainer, {"weight_decay": min(10.0, max(0.1, trainer.cfg.weight_decay) * 3)})
    return Applied("raise_regularization", {"dropout": drops[0].p if drops else None,
                                            "weight_decay": trainer.cfg.weight_decay},
                   {"config": old, "dropout": old_p})


def lower_regularization(trainer: Trainer, ctx: Context) -> Applied:
    """Dropout 0 and weight decay /10 (restarting when asked: the run learnt little with them)."""
    at, restarted = trainer.step, _restart(trainer, ctx)
    drops = _dropouts(trainer.raw_model)
    old_p = [d.p for d in drops]
    for d in drops:
        d.p = 0.0
    old = _set_live(trainer, {"weight_decay": trainer.cfg.weight_decay / 10})
    return Applied("lower_regularization", {"dropout": 0.0 if drops else None,
                                            "weight_decay": trainer.cfg.weight_decay, **_moved(at, restarted)},
                   {"config": old, "dropout": old_p})


def _moved(at: int, restarted: bool) -> dict[str, int]:
    """The event's record of a restart: from which step back to 0."""
    return {"from_step": at, "to_step": 0} if restarted else {}


def advice(name: str) -> Any:
    def apply(trainer: Trainer, ctx: Context) -> Applied:
        raise LmforgeError(f"needs a new run: {ADVICE[name]}")
    return apply


REPAIRS = {"rollback_skip": rollback_skip, "lower_lr": lower_lr, "raise_lr": raise_lr, "reinit": reinit,
           "stop_early": stop_early, "raise_regularization": raise_regularization,
           "lower_regularization": lower_regularization, **{name: advice(name) for name in ADVICE}}


def undo(trainer: Trainer, applied: Applied, ctx: Context | None = None) -> bool:
    """Take a repair back; False when it cannot be (a rollback, a stop)."""
    if applied.undo is None:
        return False
    if ctx is not None and applied.undo.get("start") is not None:
        ctx.start = applied.undo["start"]
    if "snapshot" in applied.undo:
        trainer.rollback(applied.undo["snapshot"])
    if "config" in applied.undo:
        _set_live(trainer, applied.undo["config"])
    for d, p in zip(_dropouts(trainer.raw_model), applied.undo.get("dropout", []), strict=False):
        d.p = p
    return True
