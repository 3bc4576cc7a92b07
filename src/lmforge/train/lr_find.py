"""LR range test (Smith 2017, section 3.3; popularised by fastai): raise the LR exponentially
for a few hundred steps from a fresh model, watch a smoothed loss, stop when it diverges, and
suggest an LR by two rules. HF declined to ship an LR finder because the suggestion is
unreliable for transformers, so the suggestion is then checked: short runs at half, at and at
double the suggested LR, from the same initial weights, compared on validation loss.

The sweep and the checks run the one training loop's `train_step`; nothing is copied.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lmforge.config.schema import Config
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json
from lmforge.train.stage import new_trainer, short_run


@dataclass
class SweepResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped: str
    steepest: float | None = None
    valley: float | None = None


@dataclass
class LrFindResult:
    sweep: SweepResult
    suggestion: float | None
    checks: list[dict[str, Any]] = field(default_factory=list)
    recommended: float | None = None


def exp_lr(step: int, steps: int, start: float, end: float) -> float:
    """Geometric interpolation from start (step 0) to end (last step)."""
    return start * (end / start) ** (step / max(1, steps - 1))


def smooth(losses: list[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average with bias correction (fastai's LR finder smoothing)."""
    avg, out = 0.0, []
    for i, v in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def steepest(lrs: list[float], losses: list[float], skip_start: int = 10, skip_end: int = 5) -> float | None:
    """The LR where the smoothed loss falls fastest against log(lr) (torch-lr-finder, Lightning)."""
    lo, hi = min(skip_start, len(lrs) // 4), len(lrs) - min(skip_end, len(lrs) // 4)
    if hi - lo < 3:
        return None
    grad = np.gradient(np.asarray(losses[lo:hi]), np.log10(np.asarray(lrs[lo:hi])))
    return float(lrs[lo + int(np.argmin(grad))])


def valley(lrs: list[float], losses: list[float]) -> float | None:
    """fastai's "valley" rule: find the longest run of (not necessarily adjacent) points whose
    loss keeps falling, and take a point about halfway down it — past the flat start, before the
    cliff."""
    n = len(losses)
    if n < 4:
        return None
    run = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[i] > run[best_end]:
            best_end = i
    best_start = best_end - run[best_end] + 1
    third = (best_end - best_start) / 3
    return float(lrs[min(n - 1, best_start + int(third) + int(third / 2))])


def sweep(run: RunDir, cfg: Config, steps: int = 100, start_lr: float = 1e-6, end_lr: float = 1.0,
          diverge: float = 4.0) -> SweepResult:
    """Train a fresh model while the LR grows from start_lr to end_lr; stop when the smoothed loss
    exceeds `diverge` x its best (4x as fastai; torch-lr-finder stops at 5x) or is not finite."""
    sweep_cfg = cfg.model_copy(deep=True)
    sweep_cfg.train.steps = steps
    trainer = new_trainer(run, sweep_cfg, lr_at=lambda step, c: exp_lr(step, steps, start_lr, end_lr))
    lrs: list[float] = []
    losses: list[float] = []
    stopped = "end of sweep"
    best = math.inf
    for step in range(steps):
        lr = trainer.lr_at(step, sweep_cfg.train)
        try:
            loss, _ = trainer.train_step()
        except LmforgeError:
            stopped = f"loss not finite at lr {lr:.3g}"
            break
        if not math.isfinite(loss):
            stopped = f"loss not finite at lr {lr:.3g}"
            break
        lrs.append(lr)
        losses.append(loss)
        smoothed = smooth(losses)[-1]
        best = min(best, smoothed)
        if step > 5 and smoothed > diverge * best:
            stopped = f"diverged at lr {lr:.3g} (smoothed loss {smoothed:.3f} > {diverge:g} x best {best:.3f})"
            break
    sm = smooth(losses)
    return SweepResult(lrs, losses, sm, stopped, steepest(lrs, sm), valley(lrs, sm))


def check(run: RunDir, cfg: Config, lrs: list[float], steps: int) -> list[dict[str, Any]]:
    """Short runs with the configured schedule at each LR, from the same initial weights."""
    out = []
    ratio = cfg.train.min_lr / cfg.train.lr
    for lr in lrs:
        c = short_run(cfg, steps)
        c.train.lr, c.train.min_lr = lr, lr * ratio
        trainer = new_trainer(run, c)
        losses = []
        for _ in range(steps):
            try:
                losses.append(trainer.train_step()[0])
            except LmforgeError:
                losses.append(float("nan"))
                break
        val = trainer.evaluate() if trainer.can_validate and all(map(math.isfinite, losses)) else None
        tail = losses[-max(1, steps // 10):]
        out.append({"lr": lr, "train_loss": float(np.mean(tail)), "val_loss": val, "losses": losses})
    return out


def check_range(start_lr: float, end_lr: float) -> None:
    """The sweep must rise: falling, its loss-vs-LR curve reads backwards and both rules mislead."""
    if not start_lr < end_lr:
        raise LmforgeError(f"--start-lr {start_lr:g} must be below --end-lr {end_lr:g}",
                           "the sweep raises the LR; e.g. --start-lr 1e-6 --end-lr 1")


def lr_find(run: RunDir, cfg: Config, steps: int = 100, check_steps: int = 100, start_lr: float = 1e-6,
            end_lr: float = 1.0) -> LrFindResult:
    """Sweep, suggest (valley rule, else steepest), check half/at/double; write lr_find.json/png."""
    check_range(start_lr, end_lr)
    show(("lr-find", "bold cyan"), f": sweeping {start_lr:g} -> {end_lr:g} over {steps} steps")
    result = sweep(run, cfg, steps, start_lr, end_lr)
    suggestion = result.valley or result.steepest
    found = LrFindResult(result, suggestion)
    if suggestion is not None and check_steps > 0:
        candidates = [suggestion / 2, suggestion, suggestion * 2]
        console.print(f"lr-find: checking {', '.join(f'{c:.3g}' for c in candidates)} with {check_steps}-step runs")
        found.checks = check(run, cfg, candidates, check_steps)
        scored = [c for c in found.checks if c["val_loss"] is not None or math.isfinite(c["train_loss"])]
        if scored:
            key = "val_loss" if all(c["val_loss"] is not None for c in scored) else "train_loss"
            found.recommended = min(scored, key=lambda c: c[key])["lr"]
    atomic_write_json(run.root / "lr_find.json", _jsonable(found))
    plot(found, str(run.root / "lr_find.png"))
    run.event("lr_find", f"suggested lr {suggestion}, recommended {found.recommended} ({result.stopped})",
              steepest=result.steepest, valley=result.valley, recommended=found.recommended)
    return found


def _jsonable(found: LrFindResult) -> dict[str, Any]:
    data = asdict(found)
    for c in data["checks"]:
        c["losses"] = [v if math.isfinite(v) else None for v in c["losses"]]
        if not math.isfinite(c["train_loss"]):
            c["train_loss"] = None
    return data


def plot(found: LrFindResult, path: str) -> None:
    """Loss against LR (log scale) with both suggestions; beside it, the check runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = found.sweep
    fig, axes = plt.subplots(1, 2 if found.checks else 1, figsize=(11 if found.checks else 6, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.plot(s.lrs, s.losses, color="0.75", lw=1, label="loss")
    ax.plot(s.lrs, s.smoothed, lw=1.8, label="smoothed")
    for name, lr, color in (("steepest", s.steepest, "tab:orange"), ("valley", s.valley, "tab:green")):
        if lr:
            ax.axvline(lr, color=color, ls="--", label=f"{name} {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    if s.smoothed:
        ax.set_ylim(min(s.smoothed) * 0.95, max(s.smoothed[0] * 1.3, min(s.smoothed) * 1.5))
    ax.legend(fontsize=8)
    if found.checks:
        ax2 = axes[0][1]
        for c in found.checks:
            val = f", val {c['val_loss']:.3f}" if c["val_loss"] is not None else ""
            ax2.plot(smooth(c["losses"], 0.9), label=f"lr {c['lr']:.2g}{val}")
        ax2.set_xlabel("step")
        ax2.set_ylabel("training loss (smoothed)")
        ax2.set_title("check runs: half, suggested, double")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
