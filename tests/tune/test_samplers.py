"""Where a pruner may first stop a trial: after every trial's LR warm-up, at an evaluation."""

from __future__ import annotations

from lmforge.config.schema import TuneConfig
from lmforge.tune.samplers import min_steps
from tests.helpers.tune import tune_config


def first_rung(space: dict, *overrides: str, **tune: object) -> int:
    cfg = tune_config(space, "train.steps=60", "train.eval_interval=15", *overrides)
    cfg.tune = TuneConfig.model_validate({**cfg.tune.model_dump(), **tune})
    return min_steps(cfg)


def test_the_first_rung_waits_for_the_longest_warmup_a_trial_can_have():
    lr = {"train.lr": {"float": [1e-3, 1e-2]}}
    assert first_rung(lr, "train.warmup_steps=0") == 15  # no warm-up: the first evaluation
    assert first_rung(lr, "train.warmup_steps=20") == 30  # the first evaluation after step 20
    assert first_rung(lr, "train.warmup_steps=30") == 30  # warm-up ends at an evaluation
    assert first_rung({**lr, "train.warmup_steps": {"int": [0, 20], "step": 20}}, "train.warmup_steps=0") == 30
    assert first_rung({**lr, "train.warmup_steps": {"choice": [5, 40]}}, "train.warmup_steps=0") == 45
    assert first_rung(lr, "train.warmup_steps=50") == 15  # nothing left to prune at after it: as before
    assert first_rung(lr, "train.warmup_steps=20", min_steps=10) == 10  # given: kept


def test_the_reduction_factor_reaches_both_halving_pruners():
    from lmforge.tune.samplers import build_pruner

    lr = {"train.lr": {"float": [1e-3, 1e-2]}}
    for name in ("sha", "hyperband"):
        cfg = tune_config(lr, "train.steps=60", "train.eval_interval=15")
        cfg.tune = TuneConfig.model_validate({**cfg.tune.model_dump(), "pruner": name, "reduction_factor": 2})
        pruner = build_pruner(cfg)
        assert pruner._reduction_factor == 2  # Optuna keeps it under this name in both pruners
