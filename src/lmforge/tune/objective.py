"""What a study optimises: the validation loss (in nats or bits per byte), or the accuracy of a
multiple-choice task of eval.tasks (`task:NAME.METRIC`, scored with the eval stage's own code),
its direction, and the check that names a wrong one before any stage or trial runs.

A task metric is measured at every evaluation of a trial (each train.eval_interval steps), like
the loss, so the pruner compares trials on the quantity the study optimises. The built-in
next_line task is made from the validation split: the search never looks at the test split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from torch import nn

from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.evaluate.stage import eos_id, task_items
from lmforge.evaluate.tasks import (
    BUILTIN_TASKS,
    TASK_METRICS,
    MCItem,
    accuracies,
    load_task,
    score_items,
    task_names,
)
from lmforge.rundir import RunDir

LOSSES = ("val_loss", "bits_per_byte")
TASK_PREFIX = "task:"


def parse_task(metric: str) -> tuple[str, str] | None:
    """(task name, metric) of `task:NAME.METRIC`; None for a loss. A file's name may hold dots,
    so the metric is what follows the last one."""
    if not metric.startswith(TASK_PREFIX):
        return None
    name, _, key = metric.removeprefix(TASK_PREFIX).rpartition(".")
    return name, key


def direction(cfg: Config) -> str:
    """minimize or maximize: tune.direction, or for `auto` what the metric means (a loss falls
    as the model improves, an accuracy rises)."""
    if cfg.tune.direction != "auto":
        return cfg.tune.direction
    return "maximize" if parse_task(cfg.tune.metric) else "minimize"


def known_tasks(cfg: Config) -> dict[str, str]:
    """Task name -> its eval.tasks entry: every built-in task, and each file of eval.tasks by its stem."""
    return {**{name: name for name in BUILTIN_TASKS}, **task_names(cfg.eval.tasks)}


def check_metric(cfg: Config) -> None:
    """The metric names a task and a metric that exist, its direction makes sense, and a task file
    reads: checked before data, tokenize or any trial runs."""
    parsed = parse_task(cfg.tune.metric)
    if parsed is None:
        if cfg.tune.direction == "maximize":
            raise LmforgeError(f"tune.direction=maximize with tune.metric={cfg.tune.metric}: a loss is minimised",
                               "leave tune.direction at auto (or minimize)")
        return
    name, key = parsed
    tasks = known_tasks(cfg)
    if name not in tasks:
        raise LmforgeError(f"tune.metric={cfg.tune.metric}: unknown task '{name}' (known: {', '.join(tasks)})",
                           "a task file's name is its file name without .jsonl: list the file under eval.tasks")
    if key not in TASK_METRICS:
        raise LmforgeError(f"tune.metric={cfg.tune.metric}: unknown metric '{key}' of task '{name}' "
                           f"(known: {', '.join(TASK_METRICS)})", f"e.g. tune.metric=task:{name}.acc_norm")
    if tasks[name] not in BUILTIN_TASKS:
        load_task(tasks[name])  # a missing or malformed file stops here, naming its line


@dataclass(frozen=True)
class TaskScorer:
    """One task's items, scored on a model as the eval stage scores them (summed log-likelihood of
    every choice); the accuracy alone, without the eval stage's bootstrap intervals."""

    items: Sequence[MCItem]
    tok: Tokenizer
    eos: int
    key: str
    block_size: int
    batch_size: int
    dtype: str

    def __call__(self, model: nn.Module) -> float:
        lls = score_items(model, self.tok, self.items, self.block_size, self.eos, self.batch_size, self.dtype)
        return accuracies(self.items, lls)[self.key]

    @property
    def chance(self) -> float:
        return float(np.mean([1 / len(it.choices) for it in self.items]))


@dataclass(frozen=True)
class Metric:
    """The study's objective, measured at an evaluation: from the validation loss in nats per
    token (itself, or bits per byte: nats / ln 2 x tokens per byte of the val split), or by
    scoring a task on the model."""

    name: str
    direction: str = "minimize"
    tokens_per_byte: float = 1.0
    task: TaskScorer | None = field(default=None, repr=False)

    def of_loss(self, val_loss: float) -> float:
        if self.name == "bits_per_byte":
            return val_loss / math.log(2) * self.tokens_per_byte
        return val_loss

    def measure(self, model: nn.Module, val_loss: float) -> float:
        """The metric of `model`, whose validation loss was just measured as `val_loss`."""
        return self.task(model) if self.task is not None else self.of_loss(val_loss)

    def guessing(self, uniform_loss: float) -> float:
        """The metric of a model that guesses uniformly: what a diverged trial is recorded with."""
        return self.task.chance if self.task is not None else self.of_loss(uniform_loss)


def build_metric(run: RunDir, cfg: Config) -> Metric:
    """The study's metric for a run whose data and tokenize stages have run."""
    from lmforge.tokens.store import load_tokens
    from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths

    check_metric(cfg)
    way = direction(cfg)
    if cfg.tune.metric == "val_loss":
        return Metric("val_loss", way)
    tok = load_tokenizer(run.require(run.tokenizer, "tokenize"))
    if cfg.tune.metric == "bits_per_byte":
        lengths = token_byte_lengths(tok)
        val = np.asarray(load_tokens(run.tokens, "val"), dtype=np.int64)
        return Metric("bits_per_byte", way, len(val) / max(1, int(lengths[val].sum())))
    name, key = parse_task(cfg.tune.metric)  # type: ignore[misc]
    items, _ = task_items(run, cfg, known_tasks(cfg)[name], split="val")
    scorer = TaskScorer(items, tok, eos_id(tok, cfg), key, cfg.model.block_size, cfg.eval.batch_size * 2,
                        cfg.train.dtype)
    return Metric(cfg.tune.metric, way, task=scorer)


def best_of(values: Sequence[Any], way: str, key: Any = None) -> Any:
    """The best of `values` in the study's direction (min or max)."""
    return (max if way == "maximize" else min)(values, key=key)
