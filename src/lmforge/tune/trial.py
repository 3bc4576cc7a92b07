"""One trial: the config with the trial's values, trained through the train stage's one trainer
factory, its validation metric reported at every evaluation so the pruner can stop it.

A trial ends in one of four outcomes, kept in its user attribute `outcome`:
- complete: trained to the end; its value is the metric at the last step;
- pruned: stopped by the pruner because it was doing worse than other trials at the same step;
- diverged: its loss became NaN/Inf or rose above the loss it started at (times DIVERGE_FACTOR),
  where the start is the first logged loss or the loss of guessing uniformly, whichever is higher
  (the first logged step may come after the loss has already fallen);
- failed: the trial's config was refused (a combination the schema forbids) or training raised.
Optuna stores a diverged trial as PRUNED with the metric of uniform guessing as its last value
(the loss of a uniform guess, or a task's chance rate), so TPE ranks it below every finished
trial and learns to avoid its region; the outcome attribute keeps it apart from the trials
pruned for being worse.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
from typing import Any

import optuna
from pydantic import ValidationError

from lmforge.config.schema import Config
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback, Trainer
from lmforge.train.stage import new_trainer
from lmforge.tune.objective import Metric
from lmforge.tune.space import suggest, with_values

# a training loss this far above the first step's has diverged: at initialisation a model guesses
# about uniformly, so a loss above that start means training made it worse than knowing nothing
DIVERGE_FACTOR = 1.1
OUTCOMES = ("complete", "pruned", "diverged", "failed")


class Diverged(Exception):
    """Raised by the pruning callback when the loss is no longer finite or has risen above its start."""


class PruneOnEval(Callback):
    """Reports the metric to the trial at each evaluation (`on_eval_end`) and stops the trial when
    the pruner says so; watches every logged training loss for divergence."""

    def __init__(self, trial: optuna.Trial, metric: Metric, uniform_loss: float) -> None:
        self.trial, self.metric, self.uniform_loss = trial, metric, uniform_loss
        self.start_loss: float | None = None
        self.reported: dict[int, float] = {}

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        loss = float(metrics["loss"])
        if self.start_loss is None:
            # the first finite step's loss, not the first logged one: by the first log step a high
            # LR may already have diverged, and that loss would become the bar
            first = trainer.first_loss
            self.start_loss = self.uniform_loss if first is None else max(first, self.uniform_loss)
        if not math.isfinite(loss):
            raise Diverged(f"training loss {loss} at step {trainer.step}")
        if loss > DIVERGE_FACTOR * self.start_loss:
            raise Diverged(f"training loss {loss:.4g} at step {trainer.step} is above {DIVERGE_FACTOR:g} x its "
                           f"start {self.start_loss:.4g}")

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        val_loss = float(metrics["val_loss"])
        if not math.isfinite(val_loss):
            raise Diverged(f"validation loss {metrics['val_loss']} at step {trainer.step}")
        value = self.metric.measure(trainer.raw_model, val_loss)
        self.trial.report(value, trainer.step)
        self.reported[trainer.step] = value
        if trainer.step < trainer.cfg.steps and self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric.name} {value:.4f} at step {trainer.step}")


def trial_config(base: Config, values: dict[str, Any], threads: int | None) -> Config:
    """The config a trial trains with: the base with the trial's values, on `threads` threads."""
    cfg = with_values(base, values)
    if threads is not None:
        cfg.train.threads = threads
    return cfg


def _finish(trial: optuna.Trial, outcome: str, trainer: Trainer | None, started: float, why: str = "") -> None:
    trial.set_user_attr("outcome", outcome)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("steps", trainer.step if trainer is not None else 0)
    trial.set_user_attr("tokens", trainer.tokens_seen if trainer is not None else 0)
    trial.set_user_attr("seconds", round(time.time() - started, 3))
    if why:
        trial.set_user_attr("reason", why[:500])


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def run_trial(trial: optuna.Trial, run: RunDir, base: Config, metric: Metric, uniform_loss: float,
              threads: int | None = None) -> float:
    """Train one trial and return its metric; raise optuna.TrialPruned for a pruned or diverged
    trial. Its checkpoints go to RUN/tune/trials/N/ and are removed when it ends (best.yaml
    retrains the winner)."""
    started = time.time()
    values = suggest(trial, base.tune.space)
    label = f"trial {trial.number}"
    try:
        cfg = trial_config(base, values, threads)
    except (ValidationError, LmforgeError) as exc:
        why = (exc.errors()[0]["msg"].removeprefix("Value error, ") if isinstance(exc, ValidationError)
               else exc.message)
        _finish(trial, "failed", None, started, f"config refused: {why}")
        console.print(f"{label}: failed ({_describe(values)}): config refused: {why}")
        return math.nan  # optuna records a NaN value as FAIL
    folder = run.root / "tune" / "trials" / str(trial.number)
    trainer: Trainer | None = None
    watcher = PruneOnEval(trial, metric, uniform_loss)
    try:
        trainer = new_trainer(run, cfg, [watcher], checkpoint_dir=folder / "checkpoints")
        trainer.fit()
        if trainer.interrupted:  # the first Ctrl-C ends the step; the study resumes this trial later
            raise KeyboardInterrupt
        value = watcher.reported.get(trainer.step)  # the trainer evaluates at its last step
        if value is None:
            value = metric.measure(trainer.raw_model, float(trainer.val_loss()))
        _finish(trial, "complete", trainer, started)
        console.print(f"{label}: {metric.name} {value:.4f} after {trainer.step} steps ({_describe(values)})")
        return value
    except optuna.TrialPruned as exc:
        _finish(trial, "pruned", trainer, started, str(exc))
        show((f"{label}: pruned at step {trainer.step if trainer else 0} ({exc}; {_describe(values)})", "dim"))
        raise
    except (Diverged, LmforgeError) as exc:
        if trainer is None or (isinstance(exc, LmforgeError) and "NaN/Inf" not in exc.message):
            _finish(trial, "failed", trainer, started, str(exc))
            show((f"{label}: failed ({_describe(values)}): {exc}", "yellow"))
            return math.nan
        why = exc.message if isinstance(exc, LmforgeError) else str(exc)
        _finish(trial, "diverged", trainer, started, why)
        if trainer.step not in watcher.reported:  # its last value: the metric of guessing uniformly
            trial.report(metric.guessing(uniform_loss), trainer.step)
        show((f"{label}: diverged at step {trainer.step} ({why}; {_describe(values)})", "yellow"))
        raise optuna.TrialPruned(f"diverged: {why}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)

