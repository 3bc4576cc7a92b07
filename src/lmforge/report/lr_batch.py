"""The report's LR-and-batch section: the LR schedule the trainer planned (train.schedule.lr_at,
the function the loop calls each step), the LR the run logged, the batch arithmetic of the loop
(train.loop.plan_batch, global_rows, warmup_rows) and the time-budget plan when there was one."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lmforge.config.schema import Config
from lmforge.train.loop import global_rows, plan_batch, warmup_rows
from lmforge.train.schedule import lr_at

# schedules that decay towards train.min_lr (the floor); the others hold or cycle
DECAYING = ("linear", "cosine", "wsd", "step", "exponential", "inverse_sqrt")
DRIFT = 1e-3  # relative gap between logged and planned LR that counts as a change made during training


def planned_steps(cfg: Config) -> int:
    """The steps the trainer ran for: a time-budgeted run's measured count (train.stage.build_trainer)."""
    if cfg.train.time_budget is not None and cfg.train.budget_steps is not None:
        return cfg.train.budget_steps
    return cfg.train.steps


def _last(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [e for e in events if e.get("kind") == kind]
    return found[-1] if found else None


def _drift(planned: list[float], logged: list[tuple[int, float]]) -> dict[str, Any] | None:
    """The first logged step whose LR is not the planned one, and the largest relative gap. The
    record of step k holds the LR of the update that ended there, lr_at(k - 1)."""
    first, worst = None, 0.0
    for step, lr in logged:
        if not 1 <= step <= len(planned) or not math.isfinite(lr):
            continue
        gap = abs(lr - planned[step - 1]) / max(abs(planned[step - 1]), 1e-12)
        worst = max(worst, gap)
        if gap > DRIFT and first is None:
            first = step
    return {"first_step": first, "max_rel_gap": worst}


def lr_batch_section(cfg: Config | None, train: list[dict[str, Any]], events: list[dict[str, Any]],
                     train_record: dict[str, Any] | None, train_tokens: int | None, out: Path,
                     label: Callable[[str], str] = str) -> dict[str, Any] | None:
    """The section's numbers and its figure (planned vs logged LR) in `out`; None without a config
    or before the run has trained (no logged step, no finished train stage)."""
    if cfg is None or (not train and train_record is None):
        return None
    t = cfg.train
    steps = planned_steps(cfg)
    sched = t.model_copy(update={"steps": steps})
    planned = [lr_at(s, sched) for s in range(steps)]
    logged = [(r["step"], r["lr"]) for r in train if isinstance(r.get("lr"), (int, float))]
    start = _last(events, "train_start") or {}
    world = start.get("world_size") or 1
    rows = global_rows(t, cfg.model.block_size)
    plan = plan_batch(rows, t, world)
    context = cfg.model.block_size
    total_rows = sum(warmup_rows(s, plan, t.batch_warmup_steps) for s in range(steps))
    summary = (train_record or {}).get("summary") or {}
    trained = summary.get("step")
    section: dict[str, Any] = {
        "schedule": t.schedule, "peak_lr": max(planned) if planned else t.lr, "lr": t.lr,
        "warmup_steps": t.warmup_steps, "floor": t.min_lr if t.schedule in DECAYING else None,
        "final_lr": planned[-1] if planned else None, "steps": steps, "trained_steps": trained,
        "batch_size": rows, "micro_batch": plan.micro, "grad_accum": plan.accum, "world": plan.world,
        "context": context, "tokens_per_step": rows * context, "total_tokens": total_rows * context,
        "batch_warmup_steps": t.batch_warmup_steps,
        "epochs": total_rows * context / train_tokens if train_tokens else None,
        "logged_points": len(logged), "logged_tokens": next((r["tokens"] for r in reversed(train)
                                                             if isinstance(r.get("tokens"), int)), None), "drift": _drift(planned, logged) if logged else None,
        "budget": summary.get("budget"), "budget_probe": _last(events, "budget"),
        "train_seconds": (train_record or {}).get("seconds"), "figure": None}
    section["figure"] = _figure(planned, logged, section, out / "lr_schedule.png", label).name
    return section


def _figure(planned: list[float], logged: list[tuple[int, float]], section: dict[str, Any], out: Path,
            label: Callable[[str], str]) -> Path:
    """The planned LR as a line over every step, the logged LR as points on it."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    ax.plot(range(1, len(planned) + 1), planned, lw=1.2, label=label("planned (train.schedule)"))
    if logged:
        ax.plot([s for s, _ in logged], [v for _, v in logged], "o", ms=3, color="tab:orange", zorder=3,
                label=label("logged (metrics.jsonl)"))
    if section["warmup_steps"]:
        ax.axvline(section["warmup_steps"], color="grey", ls=":", lw=1, label=label("end of warmup"))
    if section["floor"] is not None:
        ax.axhline(section["floor"], color="grey", ls="--", lw=0.8, label=label("floor (train.min_lr)"))
    ax.set_xlabel(label("step"))
    ax.set_ylabel(label("learning rate"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
