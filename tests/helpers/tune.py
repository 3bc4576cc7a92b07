"""Tiny studies: a run with `make_tokens`' counting sequence and a config whose trials train a
2-layer, 32-wide GPT for a few dozen steps (a fraction of a second each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.config.load import dump_config
from lmforge.config.schema import Config, TuneConfig
from lmforge.rundir import RunDir, atomic_write_text
from tests.helpers.runs import make_tokens, tiny_config

LR_SPACE = {"train.lr": {"float": [1e-4, 3e-2], "log": True}}


def tune_config(space: dict[str, Any] | None = None, *overrides: str, **tune: Any) -> Config:
    """tiny_config with 30-step trials evaluated every 10 steps, and a `tune` section."""
    cfg = tiny_config("train.steps=30", "train.eval_interval=10", "train.checkpoint_interval=1000",
                      "train.log_interval=5", *overrides)
    cfg.tune = TuneConfig.model_validate({"space": space or LR_SPACE, "trials": 4, "startup_trials": 2, **tune})
    return cfg


def tune_run(root: Path, cfg: Config) -> RunDir:
    """Tokens and config.yaml, as the data and tokenize stages leave a run."""
    run = make_tokens(root)
    atomic_write_text(run.config, dump_config(cfg))
    return run
