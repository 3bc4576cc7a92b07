"""Optuna's samplers and pruners, named as the `tune` section names them."""

from __future__ import annotations

import warnings

import optuna

from lmforge.config.schema import Config
from lmforge.tune.space import grid


def build_sampler(cfg: Config) -> optuna.samplers.BaseSampler:
    """The sampler of `tune.sampler`, seeded by `tune.seed`. TPE (Bergstra et al. 2011) and the
    Gaussian-process sampler start from `startup_trials` random trials; TPE runs multivariate
    (Falkner et al. 2018 showed the joint model beats independent ones) and groups conditional
    keys, and with several workers it assumes the running trials' outcome (constant liar)."""
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


def min_steps(cfg: Config) -> int:
    return cfg.tune.min_steps or cfg.train.eval_interval


def build_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    """The pruner of `tune.pruner`. Resources are training steps: the pruner sees the metric at
    each evaluation (every train.eval_interval steps) up to train.steps. Successive halving
    (Jamieson & Talwalkar 2016) and Hyperband (Li et al. 2018) keep the best 1/3 at each rung
    (reduction factor 3, their papers' default)."""
    t = cfg.tune
    first = min_steps(cfg)
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=t.startup_trials, n_warmup_steps=first - 1)
    if t.pruner == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=cfg.train.steps, reduction_factor=3)
