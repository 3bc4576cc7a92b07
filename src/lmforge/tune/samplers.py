"""Optuna's samplers and pruners, named as the `tune` section names them."""

from __future__ import annotations

import math
import warnings

import optuna

from lmforge.config.schema import Config
from lmforge.tune.space import candidate_values, grid


def build_sampler(cfg: Config) -> optuna.samplers.BaseSampler:
    """The sampler of `tune.sampler`, seeded by `tune.seed`. TPE (Bergstra et al. 2011) and the
    Gaussian-process sampler start from `startup_trials` random trials (5 by default, not Optuna's
    10: a study of a few dozen trials otherwise spends a fifth of them at random, and under
    Hyperband TPE models each bracket's trials apart, so every bracket pays the start-up again;
    measured in docs/benchmarks.md); TPE runs multivariate (Falkner et al. 2018 showed the joint
    model beats independent ones) and groups conditional keys, and with several workers it
    assumes the running trials' outcome (constant liar)."""
    t = cfg.tune
    seed = t.seed
    if t.sampler == "grid":
        return optuna.samplers.GridSampler(grid(t.space), seed=seed)
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if t.sampler == "tpe":
        conditional = any(spec.when for spec in t.space.values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # `group`, `constant_liar`
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=t.startup_trials, multivariate=True,
                                              group=conditional, constant_liar=t.workers > 1 or t.storage is not None)
    if t.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=t.startup_trials)
    if t.sampler == "cmaes":
        # CMA-ES models continuous keys only; a categorical key is sampled at random beside it
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=t.startup_trials, consider_pruned_trials=True,
                                            warn_independent_sampling=False)
    return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)


def longest_warmup(cfg: Config) -> int:
    """The most LR warm-up steps any trial can have: the space's top value, else the config's."""
    spec = cfg.tune.space.get("train.warmup_steps")
    if spec is None:
        return cfg.train.warmup_steps
    return int(max(candidate_values(spec)) if spec.kind == "choice" else spec.range[1])  # type: ignore[index]


def min_steps(cfg: Config) -> int:
    """The first step a pruner may stop a trial at: tune.min_steps, or else the first evaluation
    after every trial's LR warm-up has ended (and at least train.eval_interval). A trial still
    warming up trains at a lower LR than one past it, so the loss at that step ranks them unlike
    their final loss (measured in docs/benchmarks.md, 60-step trials with up to 20 warm-up steps:
    Spearman correlation with the final loss 0.39 at step 15, 0.76 at step 30). When no evaluation
    before the last step would be left, train.eval_interval."""
    if cfg.tune.min_steps:
        return cfg.tune.min_steps
    every = cfg.train.eval_interval
    first = max(every, math.ceil(longest_warmup(cfg) / every) * every)
    return first if first < cfg.train.steps else every


def build_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    """The pruner of `tune.pruner`. Resources are training steps: the pruner sees the metric at
    each evaluation (every train.eval_interval steps) up to train.steps. Successive halving
    (Jamieson & Talwalkar 2016) and Hyperband (Li et al. 2018) keep the best 1/tune.reduction_factor
    at each rung (3 by default, their papers' default)."""
    t = cfg.tune
    first = min_steps(cfg)
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=t.startup_trials, n_warmup_steps=first - 1)
    if t.pruner == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=t.reduction_factor)
    return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=cfg.train.steps,
                                           reduction_factor=t.reduction_factor)
