"""Training to a time budget: how many steps fit in `train.time_budget` seconds on this machine.

Cutting a run off when time is up (`train.max_seconds`) stops it mid-schedule, with the LR still
high. Budgeted training (Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020) instead fits the
whole schedule to the budget, so the LR decays to its floor when the time runs out; they find a
schedule that decays linearly to the end of the budget does well at every budget.

lmforge measures rather than guesses: before training, a short probe times a few real steps
and one validation pass on the real model and batches, then rolls every state back
(`Trainer.snapshot`/`rollback`). The step count that fits is written to `train.budget_steps`;
at the end of the LR warm-up it is measured once more on the run's own steps, callbacks
included (`replan_steps`), and written again; with a schedule that decays by progress (constant,
linear, cosine, exponential) again every tenth of the run after that, from the steps since the
last count, because a shared machine's speed moves by a fifth from minute to minute. Each count
is recorded in `train.budget_replans`, and the decay goes on from where it was at each change
(train/schedule.py), so `config.yaml` records how many steps ran and why, and `lmforge run
RUN/config.yaml` repeats the run exactly on any machine.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from lmforge.errors import LmforgeError
from lmforge.train.distributed import all_reduce_sum
from lmforge.train.loop import Trainer

PROBE_STEPS = 8  # timed steps; the first of them pays one-time costs and is not counted
MARGIN = 0.97  # of the budget planned for, leaving room for checkpoints and a slower stretch
# the steps after the first a warm-up must have for the count to be measured again at its end
REPLAN_MIN_STEPS = 4
# schedules whose LR depends on the step count from step 0 (one_cycle's rise is a share of the
# run): their count cannot change at the end of the warm-up without changing the steps before it
SHAPED_FROM_START = ("one_cycle",)
# schedules whose decay is a function of progress (train/schedule.py `_progress`), which can carry on
# from any step under a new count; wsd's decay start is a share of the count, so it is planned once
REPLANNED_MIDRUN = ("constant", "linear", "cosine", "exponential")
REPLAN_EVERY = 0.1  # of the count: how often a run re-plans after the warm-up


@dataclass(frozen=True)
class BudgetPlan:
    """What the probe measured and the step count it gives."""

    budget_s: float
    step_s: float
    eval_s: float
    steps: int

    def why(self) -> str:
        return (f"{self.steps} steps fit train.time_budget={self.budget_s:g}s: measured {self.step_s * 1e3:.1f} ms "
                f"per step and {self.eval_s:.2f} s per validation pass on this machine")


def steps_in_budget(budget_s: float, step_s: float, eval_s: float, eval_interval: int) -> int:
    """Steps n with n·step + (n/eval_interval + 1)·eval <= MARGIN·budget: the periodic validation
    passes and the final one are part of training's time; the margin covers checkpoint saves."""
    usable = budget_s * MARGIN - eval_s
    return max(0, int(usable / (step_s + eval_s / eval_interval)))


def probe(trainer: Trainer, steps: int = PROBE_STEPS) -> tuple[float, float]:
    """Median seconds per training step and seconds per validation pass, measured on the real
    model and data, with every state put back afterwards."""
    snap = trainer.snapshot()
    times = []
    try:
        for _ in range(steps):
            start = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - start)
        eval_s = 0.0
        if trainer.can_validate:
            start = time.perf_counter()
            trainer.val_loss()
            eval_s = time.perf_counter() - start
    finally:
        trainer.rollback(snap)
    step_s = statistics.median(times[1:] if len(times) > 1 else times)
    if trainer.dist.world > 1:  # every process must settle on the same count
        both = all_reduce_sum(torch.tensor([step_s, eval_s], device=trainer.device), trainer.dist)
        step_s, eval_s = (float(v) / trainer.dist.world for v in both)
    return step_s, eval_s


def replan_steps(trainer: Trainer, plan: BudgetPlan, left_s: float, window_s: float, window_steps: int) -> int:
    """The step count again, from what the last steps really cost: the probe times bare steps,
    while the run's steps also pay for the callbacks (monitor, doctor), logging and checkpoint
    saves, which on a tiny model more than doubled a step (measured: 2.9 ms probed, about 5 ms
    run), and a shared machine's speed drifts. `window_s` is the wall time of the last
    `window_steps` steps, validation passes included (taken out at the probe's measure of
    them); `left_s` is what remains of the budget."""
    evals = trainer.step // trainer.cfg.eval_interval - (trainer.step - window_steps) // trainer.cfg.eval_interval
    step_s = max(1e-9, (window_s - evals * plan.eval_s) / window_steps)
    if trainer.dist.world > 1:  # every process must settle on the same count
        both = all_reduce_sum(torch.tensor([step_s, left_s], device=trainer.device), trainer.dist)
        step_s, left_s = (float(v) / trainer.dist.world for v in both)
    return trainer.step + steps_in_budget(left_s, step_s, plan.eval_s, trainer.cfg.eval_interval)


def fit_to_budget(trainer: Trainer) -> BudgetPlan:
    """Measure, choose the step count, and set it on the trainer's config (steps, budget_steps).
    A budget that cannot hold the warmup and a few steps more is refused before training."""
    cfg = trainer.cfg
    budget = float(cfg.time_budget or 0)
    started = time.perf_counter()
    step_s, eval_s = probe(trainer)
    spent = time.perf_counter() - started  # the probe's time (and a first compile) comes out of the budget
    steps = steps_in_budget(budget - spent, step_s, eval_s, cfg.eval_interval)
    plan = BudgetPlan(budget, step_s, eval_s, steps)
    least = cfg.warmup_steps + 1
    if steps < least:
        fits = "not one step fits" if steps < 1 else f"only {steps} steps fit"
        raise LmforgeError(
            f"train.time_budget={budget:g}s is too small: {fits} at {step_s * 1e3:.1f} ms per step "
            f"(+ {eval_s:.2f} s per validation pass, {spent:.1f} s to measure them), and the schedule "
            f"needs more than train.warmup_steps={cfg.warmup_steps}",
            f"raise train.time_budget to at least {spent + (least * step_s + 2 * eval_s) / MARGIN:.0f}s, "
            "lower train.warmup_steps, or use a smaller model")
    cfg.steps = cfg.budget_steps = steps
    cfg.budget_replans = [(0, steps)]
    # the compiled-loss choice weighs the run's length: weigh it for the steps that will run
    trainer.loss_fn.replan(steps * trainer.plan.accum)
    return plan
