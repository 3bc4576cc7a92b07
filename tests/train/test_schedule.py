"""Schedules: shapes, floors, and agreement with PyTorch's own schedulers where one exists."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lmforge.config.schema import TrainConfig
from lmforge.train.schedule import SCHEDULES, lr_at, lr_curve


def _torch_curve(make, steps: int, lr: float) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclical_matches_pytorch_cycliclr(mode: str) -> None:
    cfg = TrainConfig(schedule=mode, lr=0.1, min_lr=0.01, step_size=7, steps=60, warmup_steps=0, gamma=0.97)
    ref = _torch_curve(lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=7, mode=mode, gamma=0.97, cycle_momentum=False), 60, 0.1)
    assert lr_curve(cfg) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_one_cycle_matches_pytorch() -> None:
    cfg = TrainConfig(schedule="one_cycle", lr=0.2, steps=50, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    ref = _torch_curve(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.2, total_steps=50, pct_start=0.3, div_factor=25, final_div_factor=1e4,
        cycle_momentum=False), 50, 0.2)
    assert lr_curve(cfg) == pytest.approx(ref, rel=1e-9)


def test_step_decay_matches_steplr() -> None:
    cfg = TrainConfig(schedule="step", lr=0.1, min_lr=0.0, step_size=5, gamma=0.5, steps=30, warmup_steps=0)
    ref = _torch_curve(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5), 30, 0.1)
    assert lr_curve(cfg) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name", ["linear", "cosine", "wsd", "exponential"])
def test_decaying_schedules_warm_up_then_reach_the_floor(name: str) -> None:
    cfg = TrainConfig(schedule=name, lr=1e-3, min_lr=1e-4, warmup_steps=10, steps=100)
    curve = lr_curve(cfg)
    assert curve[0] == pytest.approx(1e-4)  # lr / warmup_steps
    assert curve[9] == pytest.approx(1e-3)  # the peak at the end of warmup
    assert max(curve) == pytest.approx(1e-3)
    assert curve[-1] == pytest.approx(1e-4)
    assert all(a >= b - 1e-15 for a, b in itertools.pairwise(curve[10:]))  # never rises after warmup


def test_wsd_holds_the_peak_until_the_decay_phase() -> None:
    cfg = TrainConfig(schedule="wsd", lr=1e-3, min_lr=0.0, warmup_steps=5, steps=100, decay_fraction=0.2)
    curve = lr_curve(cfg)
    assert all(v == 1e-3 for v in curve[5:80])
    assert curve[80] < 1e-3 and curve[-1] == pytest.approx(0.0)


def test_inverse_sqrt_and_constant() -> None:
    cfg = TrainConfig(schedule="inverse_sqrt", lr=1e-3, warmup_steps=100, steps=1000)
    assert lr_at(99, cfg) == pytest.approx(1e-3)
    assert lr_at(399, cfg) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    const = TrainConfig(schedule="constant", lr=2e-3, warmup_steps=0, steps=50)
    assert set(lr_curve(const)) == {2e-3}


def test_floor_above_peak_is_capped() -> None:
    cfg = TrainConfig(schedule="cosine", lr=1e-4, min_lr=3e-4, warmup_steps=0, steps=20)
    assert max(lr_curve(cfg)) == pytest.approx(1e-4)


def test_every_configured_name_has_a_schedule() -> None:
    names = TrainConfig.model_fields["schedule"].annotation.__args__
    assert set(names) == set(SCHEDULES)
    for name in names:
        curve = lr_curve(TrainConfig(schedule=name, steps=40, warmup_steps=4, step_size=5))
        assert all(math.isfinite(v) and v >= 0 for v in curve)


@pytest.mark.parametrize("name", ["linear", "cosine", "exponential"])
def test_a_budget_that_changes_the_count_mid_run_bends_the_decay_without_a_jump(name: str) -> None:
    # probed 1200 steps, 1000 at the end of warmup, 800 at step 500: the decay carries on from its
    # progress at each change and still reaches the floor on the last step
    cfg = TrainConfig(schedule=name, steps=800, warmup_steps=100, lr=1e-2, min_lr=1e-4,
                      budget_replans=[(0, 1200), (100, 1000), (500, 800)])
    as_planned = TrainConfig(schedule=name, steps=1000, warmup_steps=100, lr=1e-2, min_lr=1e-4)
    curve = [lr_at(s, cfg) for s in range(800)]
    assert curve[:500] == [lr_at(s, as_planned) for s in range(500)]  # the past is what the run followed
    largest_before = max(abs(a - b) for a, b in itertools.pairwise(curve[100:500]))
    assert all(abs(a - b) <= 2 * largest_before for a, b in itertools.pairwise(curve[100:]))
    assert all(a >= b for a, b in itertools.pairwise(curve[100:]))
    assert curve[-1] == pytest.approx(1e-4)
    # a record that does not end at the run's count (train.steps set by hand) is not applied
    edited = TrainConfig(schedule=name, steps=1000, warmup_steps=100, lr=1e-2, min_lr=1e-4,
                         budget_replans=[(0, 1200), (500, 800)])
    assert [lr_at(s, edited) for s in range(1000)] == [lr_at(s, as_planned) for s in range(1000)]


@pytest.mark.parametrize("name", ["linear", "cosine", "exponential"])
def test_a_replan_that_leaves_one_step_still_ends_at_the_floor(name: str) -> None:
    # seen on a loaded machine: the last re-plan, at step 29, left 30 steps, so step 29 was both
    # where the new piece began and the last step; the LR stayed at 44% of its peak there
    cfg = TrainConfig(schedule=name, steps=30, warmup_steps=10, lr=3e-3, min_lr=0.0,
                      budget_replans=[(0, 354), (10, 80), (18, 29), (22, 66), (29, 30)])
    curve = [lr_at(s, cfg) for s in range(30)]
    assert curve[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(curve[9:]))
    # the same holds for a plain run one step longer than its warm-up
    plain = TrainConfig(schedule=name, steps=11, warmup_steps=10, lr=3e-3, min_lr=0.0)
    assert lr_at(10, plain) == pytest.approx(0.0, abs=1e-12)
