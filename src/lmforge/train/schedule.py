"""Learning-rate schedules as pure functions of the step (easy to plot and to test)."""

from __future__ import annotations

import math

from lmforge.config import TrainConfig


def warmup_cosine(step: int, cfg: TrainConfig) -> float:
    """Linear warmup from 0 to lr over warmup_steps, then cosine decay to min_lr at the last step."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
