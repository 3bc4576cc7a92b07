"""What the train stage's identity covers: a changed setting that changes the trained weights must
re-run training (else config.yaml names a setting the checkpoint never saw); a sink must not."""

from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.pipeline import STAGES, stage_identity
from lmforge.rundir import RunDir


def _train_identity(tmp_path: Path, overrides: list[str]) -> str:
    return stage_identity(RunDir(tmp_path / "run"), load_config(None, "smoke", overrides), STAGES["train"])


@pytest.mark.parametrize("override", ["monitor.early_stop.enabled=true", "monitor.plateau.enabled=true",
                                      "monitor.average.kind=ema"])
def test_monitor_keys_that_change_the_weights_rerun_training(tmp_path: Path, override: str) -> None:
    assert _train_identity(tmp_path, [override]) != _train_identity(tmp_path, [])


@pytest.mark.parametrize("override", ["monitor.wandb=true", "monitor.console=none", "monitor.stats_interval=0"])
def test_sinks_and_statistics_do_not_rerun_training(tmp_path: Path, override: str) -> None:
    assert _train_identity(tmp_path, [override]) == _train_identity(tmp_path, [])
