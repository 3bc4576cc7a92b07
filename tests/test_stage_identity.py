"""What the train stage's identity covers: a changed setting that changes the trained weights must
re-run training (else config.yaml names a setting the checkpoint never saw); a sink must not."""

from pathlib import Path

import pytest

from lmforge.config.load import load_config
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


def test_a_stage_reruns_when_the_stage_it_reads_ran_again_with_the_same_identity(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """`ctl stop`, then `train --resume` (or `train --force`): training keeps its identity but the
    checkpoints change, so eval must not be skipped on an eval.json of the old checkpoints."""
    from dataclasses import replace

    from lmforge.pipeline import run_stage

    def fake_eval(run: RunDir, cfg: object, opts: object) -> dict:
        run.eval.write_text("{}")
        return {}

    monkeypatch.setitem(STAGES, "eval", replace(STAGES["eval"], fn=fake_eval))
    run, cfg = RunDir(tmp_path / "run"), load_config(None, "smoke", [])
    run.create()
    run.mark_done("train", "T", 1.0)
    assert run_stage(run, cfg, "eval")
    assert not run_stage(run, cfg, "eval")  # nothing changed: skipped
    run.mark_done("train", "T", 1.0)  # train ran again, same identity
    assert run_stage(run, cfg, "eval")
    assert not run_stage(run, cfg, "eval")
