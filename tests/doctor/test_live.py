"""The doctor attached to real tiny trainings: rollback-and-skip repairs an injected loss spike,
the offline doctor agrees with the live one, suggest mode changes nothing, bad input is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.doctor.live import Doctor
from lmforge.doctor.offline import diagnose, write_diagnosis
from lmforge.errors import LmforgeError
from lmforge.monitor import build_callbacks as monitor_callbacks
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback, Trainer
from lmforge.train.stage import run_train
from tests.helpers.runs import make_token_run, read_jsonl, train_losses

SPIKE_AT = 40
RUN = ["train.steps=60", "train.log_interval=1", "train.eval_interval=20", "monitor.stats_interval=5",
       "train.checkpoint_interval=100", "doctor.verify_steps=10"]


class Inject(Callback):
    """Blows the (tied) embedding up by 10x once, right after step SPIKE_AT: the next losses spike."""

    def __init__(self) -> None:
        self.done = False

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        if trainer.step == SPIKE_AT and not self.done:
            self.done = True
            with torch.no_grad():
                trainer.raw_model.tok_emb.weight.mul_(10.0)


def train_with(tmp: Path, policy: str, inject: bool, *extra: str) -> tuple[RunDir, list[Doctor]]:
    run = make_token_run(tmp, [*RUN, f"doctor.policy={policy}", *extra])
    cfg = load_config(run.config)
    doctors: list[Doctor] = []

    def callbacks(r: RunDir, c: Config, model: torch.nn.Module, start: int, show: bool) -> list[Callback]:
        doctors[:] = [Doctor(r, c)] if c.doctor.policy != "off" else []
        return monitor_callbacks(r, c, model, start, show) + doctors + ([Inject()] if inject else [])

    run_train(run, cfg, show_progress=False, callbacks=callbacks)
    return run, doctors


def test_rollback_and_skip_repairs_an_injected_loss_spike(tmp_path: Path) -> None:
    clean = train_losses(train_with(tmp_path / "clean", "off", False)[0].root)
    run, [doctor] = train_with(tmp_path / "auto", "auto", True)
    repairs = [(e["remedy"], e["outcome"]) for e in read_jsonl(run.events) if e["kind"] == "repair"]
    assert repairs[:2] == [("rollback_skip", "applied"), ("rollback_skip", "verified")]
    applied = next(e for e in read_jsonl(run.events) if e["kind"] == "repair" and e["outcome"] == "applied")["changes"]
    assert applied["to_step"] < SPIKE_AT < applied["from_step"] and applied["skipped_batches"] > 0
    assert doctor.findings[0].problem == "loss_spike" and doctor.findings[0].step == SPIKE_AT + 1
    # the spiked weights are gone: the run ends where an untouched run ends, not where the spike left it
    spiked = max(train_losses(run.root))
    final = [r["loss"] for r in read_jsonl(run.metrics) if r["kind"] == "train"][-1]
    assert spiked > 2 * clean[-1] and abs(final - clean[-1]) < 0.1 * clean[-1]


def test_a_setting_repair_restarts_from_step_zero(tmp_path: Path) -> None:
    # LR 1e-6: lr_too_low at the third statistics record (step 15); raising the LR restarts from
    # step 0, so the repaired run gets every step with the new LR
    run, [_doctor] = train_with(tmp_path, "auto", False, "train.lr=1e-6", "train.min_lr=1e-7")
    repairs = [e for e in read_jsonl(run.events) if e["kind"] == "repair"]
    raised = repairs[0]
    assert (raised["problem"], raised["remedy"], raised["outcome"]) == ("lr_too_low", "raise_lr", "applied")
    assert raised["changes"]["from_step"] == 15 and raised["changes"]["to_step"] == 0
    assert raised["changes"]["lr"] > 1e-4
    steps = [r["step"] for r in read_jsonl(run.metrics) if r["kind"] == "train"]
    assert steps[:16] == [*range(1, 16), 1] and steps[-1] == 60  # trained again from step 1
    # judged where the problem was found (step 15), against the abandoned run at that step
    assert repairs[1]["outcome"] == "verified" and repairs[1]["step"] == 15


def test_offline_doctor_agrees_with_the_live_one(tmp_path: Path) -> None:
    run, [doctor] = train_with(tmp_path, "suggest", True)
    live = [(f.problem, f.step) for f in doctor.findings]
    assert ("loss_spike", SPIKE_AT + 1) in live
    assert [(e["problem"], e["step"]) for e in read_jsonl(run.events) if e["kind"] == "diagnosis"] == live
    offline = diagnose(run)
    assert [(f.problem, f.step, f.summary) for f in offline] == [(f.problem, f.step, f.summary) for f in doctor.findings]
    path = write_diagnosis(run, offline)
    assert (run.root / "doctor" / "loss_spike.png").stat().st_size > 1000 and path.is_file()


def test_suggest_leaves_training_unchanged(tmp_path: Path) -> None:
    off = train_losses(train_with(tmp_path / "off", "off", False, "train.steps=25")[0].root)
    on = train_losses(train_with(tmp_path / "on", "suggest", False, "train.steps=25")[0].root)
    assert on == off


def lmforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmforge", *args], check=False, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_doctor_refuses_what_is_not_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="not a run directory"):
        diagnose(RunDir(tmp_path))
    with pytest.raises(LmforgeError, match="does not exist"):
        diagnose(RunDir(tmp_path / "nope"))
    run = make_token_run(tmp_path / "fresh")
    proc = lmforge("doctor", str(run.root))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "has not trained yet" in proc.stdout + proc.stderr


def test_stop_early_is_refused_while_validation_still_improves() -> None:
    from types import SimpleNamespace

    from lmforge.config.schema import ModelConfig
    from lmforge.doctor.repairs import Context, stop_early

    improving = SimpleNamespace(last_val=4.1, best_val=4.1, should_stop=False)
    with pytest.raises(LmforgeError, match="still at its best"):
        stop_early(improving, Context(ModelConfig()))  # type: ignore[arg-type]
    assert not improving.should_stop
    risen = SimpleNamespace(last_val=4.4, best_val=4.1, should_stop=False, raw_model=None)
    assert stop_early(risen, Context(ModelConfig())).name == "stop_early" and risen.should_stop  # type: ignore[arg-type]


def test_a_lowering_after_a_divergence_is_chosen_by_a_range_test(tmp_path: Path) -> None:
    # LR 5 blows up; the lowering sweeps the LR from the restart weights up to 5 and takes a tenth
    # of the LR at the sweep's lowest loss, never above a tenfold lowering
    run, [_doctor] = train_with(tmp_path, "auto", False, "train.lr=5", "train.min_lr=0.5", "train.grad_clip=0")
    lowered = next(e for e in read_jsonl(run.events)
                   if e["kind"] == "repair" and e["remedy"] == "lower_lr" and e["outcome"] == "applied")
    changes = lowered["changes"]
    assert changes["sweep_steps"] > 3 and changes["to_step"] == 0 and changes["grad_clip"] == 0.5
    assert changes["lr"] == min(0.5, changes["sweep_lr"]) and 5e-5 <= changes["lr"] <= 0.5
    assert changes["min_lr"] == pytest.approx(0.5 * changes["lr"] / 5)


def test_reinit_draws_the_weights_a_new_run_would(tmp_path: Path) -> None:
    from lmforge.config.schema import ModelConfig
    from lmforge.doctor.repairs import Context, reinit
    from lmforge.models.registry import build_model

    class Reinit(Callback):
        def on_train_start(self, trainer: Trainer) -> None:
            ctx = Context(broken.model, broken.train.seed, start=trainer.snapshot(), notes={"restart": True})
            with torch.no_grad():
                trainer.raw_model.tok_emb.weight.mul_(50.0)  # as a far too large init would leave it
            self.applied = reinit(trainer, ctx)
            self.weights = {k: v.clone() for k, v in trainer.raw_model.state_dict().items()}
            trainer.should_stop = True

    run = make_token_run(tmp_path, ["train.steps=5", "model.init=normal", "model.init_std=1.0", "train.seed=7"])
    broken, cb = load_config(run.config), Reinit()
    run_train(run, broken, show_progress=False, callbacks=lambda *a: [cb])
    fixed = ModelConfig.model_validate({**broken.model.model_dump(), "init": "auto", "init_std": 0.02})
    torch.manual_seed(7)  # what a new run with the fixed config does (train/stage.py)
    fresh = build_model(fixed, cb.weights["tok_emb.weight"].shape[0]).state_dict()
    assert cb.applied.changes["to_step"] == 0
    assert all(torch.equal(cb.weights[k], fresh[k]) for k in fresh)
