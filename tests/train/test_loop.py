"""The loop: accumulation equality, bad input, skipped non-finite steps, best checkpoint, warmup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.models.loss import lm_loss
from lmforge.models.registry import build_model
from lmforge.tokens.loader import RandomWindows
from lmforge.train import checkpoint as ckpt
from lmforge.train.loop import BatchPlan, Trainer, global_rows, plan_batch, warmup_rows
from lmforge.train.optim import build_optimizer
from tests.helpers.runs import VOCAB, tiny_config


def _trainer(tmp_path: Path, *overrides: str, data: np.ndarray | None = None) -> Trainer:
    cfg = tiny_config(*overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, VOCAB)
    data = data if data is not None else (np.arange(4000) % VOCAB).astype(np.uint16)
    loader = RandomWindows(data, cfg.model.block_size, cfg.train.batch_size, cfg.train.seed)
    return Trainer(model, build_optimizer(model, cfg.train), loader, cfg.train, data[:600], tmp_path / "ck")


def _batch_with_padding() -> tuple[torch.Tensor, torch.Tensor]:
    """8 rows whose numbers of real targets differ (as padded fine-tuning batches do)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (8, 16), generator=g)
    y = torch.randint(0, VOCAB, (8, 16), generator=g)
    for row in range(8):
        y[row, 16 - 2 * row:] = -100
    return x, y


def test_one_by_eight_equals_eight_by_one(tmp_path: Path) -> None:
    whole = _trainer(tmp_path / "a", "train.micro_batch_size=8")
    accum = _trainer(tmp_path / "b", "train.micro_batch_size=1")
    assert (whole.plan.accum, accum.plan.accum) == (1, 8)
    x, y = _batch_with_padding()
    la, lb = whole.forward_backward(x, y), accum.forward_backward(x, y)
    assert float(la) == pytest.approx(float(lb), rel=1e-5)
    for (name, pa), pb in zip(whole.raw_model.named_parameters(), accum.raw_model.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-7, msg=name)
    # the per-micro-batch mean (the bug of transformers #37766) would not match
    with torch.no_grad():
        naive = np.mean([float(lm_loss(whole.raw_model(x[i:i + 1]), y[i:i + 1])) for i in range(8)])
    assert abs(naive - float(la)) > 1e-3


def test_accumulated_training_matches_whole_batches(tmp_path: Path) -> None:
    whole = _trainer(tmp_path / "a", "train.batch_size=8")
    accum = _trainer(tmp_path / "b", "train.batch_size=8", "train.grad_accum=4")
    losses = [(whole.train_step()[0], accum.train_step()[0]) for _ in range(5)]
    for a, b in losses:
        assert a == pytest.approx(b, rel=1e-4)
    for pa, pb in zip(whole.raw_model.parameters(), accum.raw_model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_batch_plan_errors_say_what_to_do() -> None:
    cfg = tiny_config("train.batch_size=12", "train.micro_batch_size=5").train
    with pytest.raises(LmforgeError, match="does not divide") as err:
        plan_batch(12, cfg)
    assert "1, 2, 3, 4, 6, 12" in (err.value.hint or "")
    with pytest.raises(LmforgeError, match="among 5 processes"):
        plan_batch(12, tiny_config().train, world=5)
    assert plan_batch(12, tiny_config("train.grad_accum=3").train, world=2) == BatchPlan(12, 2, 3, 2)
    with pytest.raises(LmforgeError, match="multiple of model.block_size"):
        global_rows(tiny_config("train.batch_tokens=100").train, 16)
    assert global_rows(tiny_config("train.batch_tokens=128").train, 16) == 8


def test_fp16_on_cpu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="float16 needs a CUDA GPU"):
        _trainer(tmp_path, "train.dtype=float16")


def test_batch_size_warmup_grows_in_whole_micro_batches() -> None:
    plan = BatchPlan(rows=16, micro=2, accum=8, world=1)
    rows = [warmup_rows(s, plan, 8) for s in range(10)]
    assert rows[0] == 2 and rows[-1] == 16 and rows == sorted(rows)
    assert all(r % 2 == 0 for r in rows)


def test_non_finite_steps_are_skipped_then_stop(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, "train.max_bad_steps=2")
    before = {n: p.detach().clone() for n, p in tr.raw_model.named_parameters()}
    x, y = tr.loader.next()
    with torch.no_grad():
        tr.raw_model.tok_emb.weight[0, 0] = float("nan")  # poison one embedding row the batch uses
    x[:, 0] = 0
    _, norm = tr.train_step((x, y))
    assert not np.isfinite(norm) and tr.skipped_steps == 1
    # the update was not applied: every other parameter is exactly as before
    for name, p in tr.raw_model.named_parameters():
        if "tok_emb" not in name:
            assert p.equal(before[name]), name
    with pytest.raises(LmforgeError, match="NaN/Inf for 2 steps"):
        tr.train_step((x, y))
    path = tr.save()
    assert json.loads((path / "state.json").read_text())["good"] is False
    assert "not good" in ckpt.verify(path)


def test_best_checkpoint_is_kept_beyond_the_newest(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, "train.keep_checkpoints=1")
    for step, val in [(1, 2.0), (2, 1.0), (3, 1.5), (4, 1.7)]:
        tr.step, tr.last_val, tr.last_val_step = step, val, step
        tr.save()
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "ck")]
    assert names == ["step-2", "step-4"]
    assert ckpt.best_checkpoint(tmp_path / "ck").name == "step-2"


def test_loss_falls_with_each_optimizer(tmp_path: Path) -> None:
    for name, lr in [("adamw", 3e-3), ("adam", 3e-3), ("sgd", 0.3), ("lion", 3e-4), ("adafactor", 3e-2),
                     ("muon", 3e-3)]:
        tr = _trainer(tmp_path / name, f"train.optimizer={name}", f"train.lr={lr}", "train.min_lr=0",
                      "train.schedule=constant", "train.warmup_steps=0")
        first = tr.train_step()[0]
        for _ in range(12):
            last = tr.train_step()[0]
        assert last < first - 0.2, f"{name}: {first:.3f} -> {last:.3f}"


def test_activation_checkpointing_gives_the_same_gradients(tmp_path: Path) -> None:
    from lmforge.train.distributed import apply_activation_checkpointing

    plain, ckpted = _trainer(tmp_path / "a"), _trainer(tmp_path / "b")
    assert apply_activation_checkpointing(ckpted.raw_model) == 2
    x, y = plain.loader.next()
    assert float(plain.forward_backward(x, y)) == pytest.approx(float(ckpted.forward_backward(x, y)), rel=1e-6)
    for pa, pb in zip(plain.raw_model.parameters(), ckpted.raw_model.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)
    assert plain.raw_model.state_dict().keys() == ckpted.raw_model.state_dict().keys()


def test_bf16_autocast_tracks_fp32_on_cpu(tmp_path: Path) -> None:
    f32, b16 = _trainer(tmp_path / "a"), _trainer(tmp_path / "b", "train.dtype=bfloat16")
    la = [f32.train_step()[0] for _ in range(15)]
    lb = [b16.train_step()[0] for _ in range(15)]
    assert lb[-1] < lb[0] - 0.2  # it learns
    assert abs(np.mean(la[-5:]) - np.mean(lb[-5:])) < 0.05  # and stays within bf16 noise of fp32
    assert all(p.dtype == torch.float32 for p in b16.raw_model.parameters())  # master weights stay fp32


def test_fsdp_without_a_process_group_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge.train.distributed import init_distributed

    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LmforgeError, match="needs a process group") as err:
        init_distributed(tiny_config("train.distributed=fsdp").train)
    assert "torchrun" in (err.value.hint or "")
    assert init_distributed(tiny_config().train).world == 1


def test_compiled_model_and_loss_train_like_eager(tmp_path: Path) -> None:
    """train.compile compiles the model (distributed.wrap_model) and the loss (the trainer)."""
    from lmforge.train.distributed import DistInfo, wrap_model

    eager = _trainer(tmp_path / "a")
    compiled = _trainer(tmp_path / "b", "train.compile=true")
    compiled.model = wrap_model(compiled.raw_model, compiled.cfg, DistInfo())
    for _ in range(3):
        assert compiled.train_step()[0] == pytest.approx(eager.train_step()[0], rel=1e-5)
    assert compiled.loss_fn.compiled and not eager.loss_fn.compiled  # auto: a short run stays eager
    for pa, pb in zip(eager.raw_model.parameters(), compiled.raw_model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_auto_compiles_the_loss_of_a_long_run_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge.models import loss as loop

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 64, generator=g).bfloat16().requires_grad_()  # as bf16 autocast gives them
    y = torch.randint(0, 64, (2, 8), generator=g)
    long_run = int(loop.COMPILE_LOSS_MIN_ELEMENTS // logits.numel()) + 1
    auto = loop.LossFn("auto", compile_model=False, calls=long_run)
    torch.testing.assert_close(auto(logits, y, "sum"), lm_loss(logits, y, "sum"))
    assert auto.compiled == loop.can_compile(logits.device)
    off, short = loop.LossFn("off", compile_model=True), loop.LossFn("auto", compile_model=False, calls=1000)
    full = loop.LossFn("auto", compile_model=False, calls=long_run)  # float32 logits: nothing to save
    off(logits, y), short(logits, y), full(logits.detach().float(), y)
    assert not off.compiled and not short.compiled and not full.compiled

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(loop, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", lambda fn: broken)
    failing = loop.LossFn("auto", compile_model=False, calls=long_run)
    torch.testing.assert_close(failing(logits, y), lm_loss(logits, y))  # trains on, eager
    assert not failing.compiled


def test_a_run_stopped_early_is_evaluated_before_its_last_checkpoint(tmp_path: Path) -> None:
    from lmforge.train.loop import Callback

    class StopAtThree(Callback):
        def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
            trainer.should_stop = trainer.step >= 3

    tr = _trainer(tmp_path)
    tr.callbacks = [StopAtThree()]
    tr.fit()
    assert tr.step == 3 and tr.last_val_step == 3  # eval_interval is 10: only the stop evaluated
    state = json.loads((tmp_path / "ck" / "step-3" / "state.json").read_text())
    assert state["val_loss"] == pytest.approx(tr.last_val)


def test_replan_keeps_a_choice_that_still_holds_and_redoes_one_that_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """A time budget fixes the run's length after the probe chose the loss: the choice is kept when
    the real length gives the same one (no second compile), and made again when it does not."""
    import functools

    from lmforge.models import loss as loss_mod

    monkeypatch.setattr(loss_mod, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", lambda fn: functools.partial(fn))  # stands in for a compiled fn
    logits, y = torch.randn(2, 8, 64).bfloat16(), torch.randint(0, 64, (2, 8))
    long_run = int(loss_mod.COMPILE_LOSS_MIN_ELEMENTS // logits.numel()) + 1
    fn = loss_mod.LossFn("auto", compile_model=False, calls=2 * long_run)
    fn(logits, y)
    chosen = fn.fn
    assert fn.compiled
    fn.replan(long_run)  # shorter, still long enough: the same compiled function
    fn(logits, y)
    assert fn.fn is chosen
    fn.replan(long_run // 4)  # too short to pay for a compile: eager from now on
    fn(logits, y)
    assert not fn.compiled
