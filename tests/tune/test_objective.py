"""tune.metric: the validation loss or a multiple-choice task's accuracy (task:NAME.METRIC), its
direction, and a wrong name refused before any stage or trial runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from pydantic import ValidationError

from lmforge.config.schema import TuneConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.tune.objective import check_metric, direction
from lmforge.tune.storage import open_storage
from lmforge.tune.study import run_tune, study_name
from tests.helpers.runs import add_tokenizer, make_token_run
from tests.helpers.tune import tune_config


def with_metric(metric: str, tasks: list[str] | None = None, **tune: object):
    cfg = tune_config(None, *(["eval.tasks=" + json.dumps(tasks)] if tasks is not None else []))
    cfg.tune = TuneConfig.model_validate({**cfg.tune.model_dump(), "metric": metric, **tune})
    return cfg


def test_a_metric_of_another_form_is_refused_by_the_schema():
    with pytest.raises(ValidationError, match="task:NAME.METRIC"):
        TuneConfig.model_validate({"metric": "accuracy"})
    with pytest.raises(ValidationError, match="task:NAME.METRIC"):
        TuneConfig.model_validate({"metric": "task:next_line"})  # no metric


def test_an_unknown_task_or_metric_is_refused_before_anything_runs(tmp_path: Path):
    with pytest.raises(LmforgeError, match=r"unknown task 'nextline' \(known: next_line\)"):
        check_metric(with_metric("task:nextline.acc"))
    with pytest.raises(LmforgeError, match=r"unknown metric 'f1' of task 'next_line' \(known: acc, acc_norm\)"):
        check_metric(with_metric("task:next_line.f1"))
    with pytest.raises(LmforgeError, match="a loss is minimised"):
        check_metric(with_metric("val_loss", direction="maximize"))
    missing = str(tmp_path / "quiz.jsonl")
    with pytest.raises(LmforgeError, match="task file not found"):  # listed in eval.tasks, but not there
        check_metric(with_metric("task:quiz.acc", [missing]))
    run = RunDir(tmp_path / "run")
    with pytest.raises(LmforgeError, match=r"known: next_line, quiz"):
        run_tune(run, with_metric("task:quizz.acc", ["next_line", missing]))  # the data stage would come next
    assert not run.root.exists()  # nothing was written: no data, no study


def test_direction_follows_the_metric_unless_given():
    assert direction(with_metric("val_loss")) == "minimize"
    assert direction(with_metric("bits_per_byte")) == "minimize"
    assert direction(with_metric("task:next_line.acc_norm")) == "maximize"
    assert direction(with_metric("task:next_line.acc", direction="minimize")) == "minimize"


def pattern_task(path: Path, pattern: np.ndarray, n_items: int = 40, seed: int = 0) -> None:
    """Which two tokens come next in the run's repeating pattern: the true ones or two random ones."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_items):
        at = int(rng.integers(0, len(pattern) - 8))
        true = " ".join(f"t{i}" for i in pattern[at + 6: at + 8])
        wrong = " ".join(f"t{i}" for i in rng.integers(0, 64, 2))
        gold = int(rng.integers(0, 2))
        lines.append(json.dumps({"context": " ".join(f"t{i}" for i in pattern[at: at + 6]),
                                 "choices": [true, wrong] if gold == 0 else [wrong, true], "gold": gold}))
    path.write_text("\n".join(lines) + "\n")


def test_a_study_maximises_a_task_accuracy_measured_at_every_evaluation(tmp_path: Path):
    run = make_token_run(tmp_path / "run")  # a repeating pattern of 97 ids (seed 0), 10% noise
    add_tokenizer(run)
    pattern = np.random.default_rng(0).integers(0, 64, 97)
    task = tmp_path / "pattern.jsonl"
    pattern_task(task, pattern)
    cfg = tune_config({"train.lr": {"choice": [1e-2, 1e-6]}}, "model.block_size=32", "train.steps=60",
                      "train.eval_interval=20", f"eval.tasks={json.dumps([str(task)])}")
    cfg.tune = TuneConfig.model_validate({"space": cfg.tune.space, "sampler": "grid", "pruner": "none", "trials": 2,
                                          "metric": "task:pattern.acc"})
    summary = run_tune(run, cfg, stages=False)
    assert summary["direction"] == "maximize"
    study = optuna.load_study(study_name=study_name(cfg), storage=open_storage(run, cfg))
    by_lr = {t.params["train.lr"]: t for t in study.trials}
    learned, still = by_lr[1e-2], by_lr[1e-6]
    assert learned.value >= 0.9 > still.value  # the model that learned the pattern picks its continuation
    assert summary["best"]["value"] == learned.value and summary["best"]["params"] == {"train.lr": 1e-2}
    for t in (learned, still):  # the accuracy itself, at every evaluation: what a pruner compares
        assert sorted(t.intermediate_values) == [20, 40, 60]
        assert all(v * 40 == round(v * 40) for v in t.intermediate_values.values())  # a share of 40 items
        assert t.intermediate_values[60] == t.value
