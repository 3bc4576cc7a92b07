"""Training to a time budget: the probe leaves no trace, the planned run ends with the LR at its
floor, the recorded step count repeats the run exactly, and bad budgets are refused before
training. Whether a run really ends within its budget is a question of speed, so it is measured
by bench/default_run.py, not asserted here (a loaded test machine made such a check flaky)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train import checkpoint as ckpt
from lmforge.train.budget import probe, steps_in_budget
from lmforge.train.loop import Callback, Trainer
from lmforge.train.schedule import lr_at
from lmforge.train.stage import new_trainer, run_train
from tests.helpers.runs import read_jsonl, tiny_config


def test_steps_in_budget_counts_the_validation_passes() -> None:
    # 10 s at 10 ms a step and 0.5 s per validation every 100 steps: n·0.01 + (n/100 + 1)·0.5 <= 9.7
    n = steps_in_budget(10.0, 0.01, 0.5, 100)
    assert n == int((10.0 * 0.97 - 0.5) / (0.01 + 0.005))
    assert n * 0.01 + (n / 100 + 1) * 0.5 <= 10.0
    assert steps_in_budget(0.1, 0.05, 0.2, 10) == 0


def test_the_probe_leaves_no_trace(tiny_run) -> None:
    cfg = tiny_config("train.steps=6")
    probed = new_trainer(tiny_run, cfg)
    step_s, eval_s = probe(probed, steps=4)
    assert step_s > 0 and eval_s > 0 and probed.step == 0 and probed.tokens_seen == 0
    plain = new_trainer(tiny_run, tiny_config("train.steps=6"))
    for _ in range(6):
        assert probed.train_step() == plain.train_step()  # bit for bit, as if never probed
    for a, b in zip(probed.raw_model.parameters(), plain.raw_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_budgeted_run_plans_its_steps_and_ends_at_the_lr_floor(tiny_run) -> None:
    budget = 6.0
    cfg = tiny_config("train.steps=100000", f"train.time_budget={budget}", "train.eval_interval=50",
                      "train.checkpoint_interval=100000", "train.warmup_steps=5")
    summary = run_train(tiny_run, cfg, show_progress=False)
    steps = cfg.train.budget_steps
    assert steps is not None and steps > 5 and cfg.train.steps == steps == summary["step"]
    assert summary["budget"]["steps"] == steps and "ms per step" in summary["budget"]["why"]
    assert load_config(tiny_run.config).train.budget_steps == steps  # recorded for a resume or a rerun
    assert steps < 100000  # the budget, not train.steps, set the length
    trainer = new_trainer(tiny_run, cfg)  # the schedule the run followed, at its last step
    assert trainer.lr_at(steps - 1, cfg.train) == pytest.approx(cfg.train.min_lr)


class _Slow(Callback):
    """A callback that costs 20 ms a logged step: what the probe, timing bare steps, cannot see."""

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        time.sleep(0.02)


def test_the_count_is_measured_again_on_the_real_steps_at_the_end_of_warmup(tiny_run) -> None:
    cfg = tiny_config("train.steps=100000", "train.time_budget=4", "train.eval_interval=1000",
                      "train.checkpoint_interval=100000", "train.warmup_steps=8", "train.log_interval=1")
    summary = run_train(tiny_run, cfg, show_progress=False, callbacks=lambda *a: [_Slow()])
    budget = [e for e in read_jsonl(tiny_run.events) if e["kind"] == "budget"]
    probed, replanned = budget[0]["steps"], budget[1]
    # at least 20 ms a step as run, against a probe of bare steps: fewer steps fit than it planned
    assert replanned["step"] == 8 and replanned["replanned_from"] == probed
    assert 8 < replanned["steps"] < probed and replanned["steps"] <= 4 / 0.02
    last = budget[-1]  # later re-plans (every tenth of the run) keep measuring the slow steps
    assert last["steps"] <= 4 / 0.02
    assert summary["step"] == cfg.train.steps == cfg.train.budget_steps == last["steps"]
    assert load_config(tiny_run.config).train.budget_steps == last["steps"]  # a rerun repeats it
    assert f"re-planned at step {last['step']}" in summary["budget"]["why"]
    trainer = new_trainer(tiny_run, cfg)
    assert trainer.lr_at(cfg.train.steps - 1, cfg.train) == pytest.approx(cfg.train.min_lr)


class _SlowsDown(Callback):
    """Free for the first 40 steps, then 15 ms a step: a machine that slows after the warm-up.
    Keeps every step's LR."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        self.lrs.append(metrics["lr"])
        if trainer.step > 40:
            time.sleep(0.015)


def test_a_run_that_slows_down_is_planned_again_every_tenth_and_the_lr_bends_without_a_jump(tiny_run) -> None:
    cfg = tiny_config("train.steps=100000", "train.time_budget=5", "train.eval_interval=1000",
                      "train.checkpoint_interval=100000", "train.warmup_steps=8", "train.log_interval=1",
                      "train.schedule=linear", "train.min_lr=0")
    slows = _SlowsDown()
    summary = run_train(tiny_run, cfg, show_progress=False, callbacks=lambda *a: [slows])
    budget = [e for e in read_jsonl(tiny_run.events) if e["kind"] == "budget"]
    counts = [(e["step"], e["steps"]) for e in budget]
    assert len(counts) >= 3 and counts[1][0] == 8
    assert all(b["replanned_from"] == a["steps"] for a, b in itertools.pairwise(budget))
    # after the slow-down the count shrinks: at most 5 s / 15 ms steps fit, against the warm-up's plan
    assert counts[-1][1] < counts[1][1] and counts[-1][1] <= 5 / 0.015
    recorded = load_config(tiny_run.config).train
    assert [tuple(c) for c in recorded.budget_replans] == counts  # every count, for a rerun to repeat
    assert summary["step"] == recorded.steps == recorded.budget_steps == counts[-1][1]
    assert len(slows.lrs) == recorded.steps
    decay = slows.lrs[8:]
    assert all(a >= b for a, b in itertools.pairwise(decay))  # it only ever went down after warm-up
    assert decay[-1] == pytest.approx(lr_at(recorded.steps - 1, recorded))
    assert lr_at(recorded.steps - 1, recorded) == pytest.approx(0.0, abs=1e-12)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_valid(run_dir / "checkpoints")
    return load_file(str(latest / "model.safetensors"))


def test_the_recorded_config_repeats_a_budgeted_run_exactly(tmp_path: Path) -> None:
    from lmforge.pipeline import run_all

    small = ["data.max_docs=4", "train.time_budget=8", "train.threads=1", "train.dtype=float32",
             "train.eval_interval=40", "train.checkpoint_interval=100000", "eval.bootstrap_rounds=0",
             "eval.samples=0", "eval.tasks=[]", "eval.max_tokens=2000", "monitor.console=none"]
    first = tmp_path / "first"
    run_all_cfg = load_config(None, "smoke", small)
    run_all(RunDir(first), run_all_cfg, stages=["data", "tokenize", "train"])
    recorded = load_config(first / "config.yaml")
    assert recorded.train.budget_steps == recorded.train.steps == run_all_cfg.train.budget_steps
    assert len(recorded.train.budget_replans) >= 3  # re-planned after the warm-up and mid-run too
    again = tmp_path / "again"
    run_all(RunDir(again), recorded, stages=["data", "tokenize", "train"])
    a, b = _weights(first), _weights(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_budget_too_small_for_the_warmup_is_refused_before_training(tiny_run) -> None:
    run_train(tiny_run, tiny_config("train.steps=5"), show_progress=False)
    before = [p.name for p in ckpt.list_checkpoints(tiny_run.checkpoints)]
    cfg = tiny_config("train.time_budget=0.05", "train.warmup_steps=50")
    with pytest.raises(LmforgeError, match="too small"):
        run_train(tiny_run, cfg, show_progress=False)
    # refused before the run was touched: the earlier training's checkpoints are all still there
    assert before and [p.name for p in ckpt.list_checkpoints(tiny_run.checkpoints)] == before


def test_a_schedule_that_cannot_follow_a_budget_is_a_config_error() -> None:
    with pytest.raises(LmforgeError, match="cannot follow train.time_budget"):
        tiny_config("train.time_budget=60", "train.schedule=triangular")
