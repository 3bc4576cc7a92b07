"""Resuming with a changed config: changed optimizer settings take effect, another optimizer is a
clear error, and re-saving the resumed checkpoint keeps what it recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train import checkpoint as ckpt
from lmforge.train.stage import build_trainer
from tests.helpers.runs import tiny_config

SHORT = ("train.steps=10", "train.eval_interval=10")


@pytest.fixture
def trained(tiny_run: RunDir) -> RunDir:
    """A finished 10-step run whose last checkpoint holds a validation loss."""
    build_trainer(tiny_run, tiny_config(*SHORT), resume=False, show_progress=False).fit()
    return tiny_run


def test_resume_applies_the_configs_optimizer_settings(trained: RunDir) -> None:
    cfg = tiny_config("train.steps=12", "train.weight_decay=0.5", "train.beta1=0.5", "train.eps=1e-6",
                      "train.lr_mult={embedding: 0.5}")
    trainer = build_trainer(trained, cfg, resume=True, show_progress=False)
    assert trainer.step == 10
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["matrix"]["weight_decay"] == 0.5 and groups["embedding"]["weight_decay"] == 0.0
    assert groups["embedding"]["lr_mult"] == 0.5 and groups["matrix"]["lr_mult"] == 1.0
    assert all(tuple(g["betas"]) == (0.5, 0.99) and g["eps"] == 1e-6 for g in groups.values())
    assert trainer.optimizer.state  # the moments themselves still come from the checkpoint


@pytest.mark.parametrize("recorded", [True, False])
def test_resume_with_another_optimizer_is_a_clear_error(trained: RunDir, recorded: bool) -> None:
    newest = ckpt.list_checkpoints(trained.checkpoints)[-1]
    if not recorded:  # a checkpoint written before the optimizer's name was recorded
        state = json.loads((newest / "state.json").read_text())
        del state["optimizer"]
        (newest / "state.json").write_text(json.dumps(state))
    with pytest.raises(LmforgeError, match="train.optimizer=sgd") as err:
        build_trainer(trained, tiny_config(*SHORT, "train.optimizer=sgd"), resume=True, show_progress=False)
    assert "without --resume" in (err.value.hint or "")


def test_resuming_a_finished_run_keeps_the_checkpoints_val_loss(trained: RunDir) -> None:
    newest: Path = ckpt.list_checkpoints(trained.checkpoints)[-1]
    before = ckpt.checkpoint_val_loss(newest)
    assert before is not None
    build_trainer(trained, tiny_config(*SHORT), resume=True, show_progress=False).fit()  # nothing left to do
    assert ckpt.checkpoint_val_loss(newest) == before


def test_unusable_checkpoints_passed_over_are_set_aside(tiny_run: RunDir) -> None:
    """Left in place, a corrupt newest checkpoint counted among the newest kept, and a valid one
    was pruned instead."""
    build_trainer(tiny_run, tiny_config("train.steps=12"), resume=False, show_progress=False).fit()
    (tiny_run.checkpoints / "step-12" / "model.safetensors").write_bytes(b"truncated")  # step-5, 10, 12
    trainer = build_trainer(tiny_run, tiny_config("train.steps=15", "train.keep_checkpoints=2"),
                            resume=True, show_progress=False)
    assert trainer.step == 10
    assert (tiny_run.checkpoints / ckpt.UNUSABLE_DIR / "step-12" / "model.safetensors").read_bytes() == b"truncated"
    trainer.fit()
    kept = ckpt.list_checkpoints(tiny_run.checkpoints)
    assert [p.name for p in kept][-2:] == ["step-10", "step-15"]
    assert all(ckpt.verify(p) is None for p in kept)
