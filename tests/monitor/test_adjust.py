"""Early stopping, LR reduction on plateau and weight averaging, on scripted metric sequences and
on short real trainings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from lmforge.config.load import load_config
from lmforge.config.schema import EarlyStopConfig, PlateauConfig
from lmforge.monitor.adjust import EarlyStopping, ReduceLROnPlateau, improved
from lmforge.train.distributed import DistInfo
from lmforge.train.loop import Callback
from tests.helpers.runs import make_token_run, monitored, read_jsonl, train


class Events(list):
    def __call__(self, kind: str, message: str, **fields) -> None:
        self.append({"kind": kind, "message": message, **fields})


def drive(cb, values, every: int = 10) -> SimpleNamespace:
    """Feed val_loss values as evaluations at steps every, 2*every, ...; stop when the callback says so."""
    trainer = SimpleNamespace(step=0, should_stop=False, lr_at=lambda s, c: 1e-2, cfg=None, dist=DistInfo())
    cb.on_train_start(trainer)
    for i, v in enumerate(values, 1):
        trainer.step = i * every
        cb.on_eval_end(trainer, {"step": trainer.step, "val_loss": v})
        if trainer.should_stop:
            break
    return trainer


def test_improved_rule() -> None:
    assert improved(1.0, None, "min", 0.0)
    assert improved(0.9, 1.0, "min", 0.05) and not improved(0.96, 1.0, "min", 0.05)
    assert not improved(1.0, 1.0, "min", 0.0)  # equal is not better (Lightning, Keras)
    assert improved(1.1, 1.0, "max", 0.05) and not improved(1.02, 1.0, "max", 0.05)


def test_early_stopping_stops_after_patience_checks() -> None:
    events = Events()
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=3), events)
    trainer = drive(cb, [3.0, 2.5, 2.6, 2.55, 2.7, 2.0, 1.0])
    assert trainer.should_stop and trainer.step == 50  # best at step 20, then 3 checks without improvement
    assert [e["kind"] for e in events] == ["early_stop"] and events[0]["step"] == 50
    assert "best 2.5000 at step 20" in events[0]["reason"]


def test_early_stopping_min_delta_and_max_mode() -> None:
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=2, min_delta=0.1), Events())
    # 2.95 and 2.91 are improvements smaller than min_delta: they count as no improvement
    assert drive(cb, [3.0, 2.95, 2.91, 2.0]).step == 30
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=2, mode="max"), Events())
    assert drive(cb, [0.1, 0.5, 0.4, 0.6, 0.6, 0.55, 0.9]).step == 60


def test_early_stopping_at_target_and_on_nan() -> None:
    events = Events()
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=10, target=2.0), events)
    assert drive(cb, [3.0, 2.5, 1.99, 1.5]).step == 30
    assert "reached the target 2.0" in events[0]["reason"]
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=10), Events())
    assert drive(cb, [3.0, float("nan"), 1.0]).step == 20


def test_plateau_follows_keras_semantics() -> None:
    events = Events()
    cb = ReduceLROnPlateau(PlateauConfig(enabled=True, factor=0.5, patience=2, cooldown=1, min_lr=3e-3), events)
    trainer = drive(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.7])
    # checks 3 and 5 cut the LR (the cooldown check 4 resets the wait); 0.5 at check 6 improves
    assert [e["step"] for e in events] == [30, 50, 80]
    assert cb.scale == pytest.approx(0.125)
    # the cut scales the schedule but never below min_lr (nor above the schedule itself)
    assert trainer.lr_at(0, None) == pytest.approx(3e-3)
    cb.scale = 0.5
    assert trainer.lr_at(0, None) == pytest.approx(5e-3)


def test_early_stopping_ends_a_real_training_at_the_right_step(tmp_path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=200", "train.log_interval=10", "train.eval_interval=1000",
                                            "monitor.early_stop.enabled=true", "monitor.early_stop.metric=loss",
                                            "monitor.early_stop.target=3.5", "monitor.stats_interval=0"])
    out = train(run)
    losses = [(r["step"], r["loss"]) for r in read_jsonl(run.metrics) if r["kind"] == "train"]
    first_below = next(s for s, v in losses if v <= 3.5)
    assert out["step"] == first_below == losses[-1][0] < 200
    kinds = [(e["kind"], e.get("step")) for e in read_jsonl(run.events)]
    assert ("early_stop", first_below) in kinds
    assert (run.checkpoints / f"step-{first_below}").is_dir()


class WeightRecorder(Callback):
    """Copies the weights right after the optimizer steps listed in `steps`."""

    def __init__(self, steps: set[int]) -> None:
        self.steps, self.seen = steps, {}

    def on_train_start(self, trainer) -> None:
        def grab(opt, args, kwargs) -> None:
            if trainer.step + 1 in self.steps:
                self.seen[trainer.step + 1] = {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}
        trainer.optimizer.register_step_post_hook(grab)


def test_swa_average_is_the_mean_of_the_snapshots(tmp_path) -> None:
    from lmforge.train.stage import build_trainer

    run = make_token_run(tmp_path / "run", ["train.steps=30", "train.log_interval=10", "train.eval_interval=10",
                                            "monitor.average.kind=swa", "monitor.average.start=0.5",
                                            "monitor.average.every=5", "monitor.stats_interval=0"])
    recorder = WeightRecorder({15, 20, 25, 30})
    trainer = build_trainer(run, load_config(run.config), resume=False, show_progress=False, callbacks=monitored(recorder))
    trainer.fit()
    (ev,) = [e for e in read_jsonl(run.events) if e["kind"] == "average"]
    assert ev["reason"] == "4 updates"  # steps 15, 20, 25, 30
    final = load_file(str(run.checkpoints / "step-30" / "model.safetensors"))
    key = "blocks.0.attn.qkv.weight"
    if "replaced" in ev["message"]:
        assert ev["avg_val_loss"] <= ev["raw_val_loss"]
        expected = torch.stack([w[key] for w in recorder.seen.values()]).mean(0)
    else:
        assert ev["avg_val_loss"] > ev["raw_val_loss"]
        expected = recorder.seen[30][key]
    assert torch.allclose(final[key], expected, atol=1e-6)


def test_restore_best_puts_the_best_weights_in_the_final_checkpoint(tmp_path) -> None:
    from lmforge.train.stage import build_trainer

    run = make_token_run(tmp_path / "run", ["train.steps=20", "monitor.stats_interval=0"])
    trainer = build_trainer(run, load_config(run.config), resume=False, show_progress=False,
                            callbacks=monitored())
    events = Events()
    cb = EarlyStopping(EarlyStopConfig(enabled=True, patience=5, restore_best=True), events)
    key = "blocks.0.attn.qkv.weight"
    best = trainer.raw_model.state_dict()[key].clone()
    trainer.step = 10
    cb.check(trainer, 1.0)
    with torch.no_grad():
        trainer.raw_model.state_dict()[key].add_(1.0)  # training goes on and gets worse
    trainer.step = 20
    cb.check(trainer, 2.0)
    cb.on_train_end(trainer)
    assert torch.equal(trainer.raw_model.state_dict()[key], best)
    saved = load_file(str(run.checkpoints / "step-20" / "model.safetensors"))
    assert torch.equal(saved[key], best)
    assert events[-1]["kind"] == "restore_best" and "step 10" in events[-1]["message"]
