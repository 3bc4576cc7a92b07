"""Training statistics: the numbers are right (checked against direct computation), they appear at
the configured interval only, and hooks stay idle in between."""

from __future__ import annotations

import math

import torch

from lmforge.config.load import load_config
from lmforge.config.schema import ModelConfig
from lmforge.models.gpt import GPT
from lmforge.monitor.stats import TrainingStats, attention_entropy, find_blocks
from lmforge.train.loop import Callback
from lmforge.train.stage import build_trainer
from tests.helpers.runs import make_token_run, monitored, read_jsonl


def test_attention_entropy_of_uniform_attention() -> None:
    """Zero q/k weights make every causal row uniform: row i has entropy log(i + 1)."""
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=10)
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.qkv.weight.zero_()
    x = torch.randn(3, 8, 16)
    expected = sum(math.log(i + 1) for i in range(8)) / 8
    assert abs(attention_entropy(attn, x) - expected) < 1e-5


def test_find_blocks_finds_the_repeated_blocks() -> None:
    model = GPT(ModelConfig(n_layer=3, n_head=2, n_embd=16, block_size=8), vocab_size=10)
    assert [name for name, _ in find_blocks(model)] == ["blocks.0", "blocks.1", "blocks.2"]


class Snapshot(Callback):
    """Keeps the weights before and the gradients at step 4, straight from the optimizer."""

    def on_train_start(self, trainer) -> None:
        self.before, self.grads = {}, {}

        def pre(opt, args, kwargs) -> None:
            if trainer.step + 1 == 4:
                self.before = {n: p.detach().clone() for n, p in trainer.raw_model.named_parameters()}
                self.grads = {n: p.grad.detach().clone() for n, p in trainer.raw_model.named_parameters()
                              if p.grad is not None}
        trainer.optimizer.register_step_pre_hook(pre)


def test_statistics_match_direct_computation(tmp_path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=8", "train.log_interval=2", "train.eval_interval=100",
                                            "train.grad_clip=0", "monitor.stats_interval=4",
                                            "monitor.tensorboard=false"])
    snap = Snapshot()
    trainer = build_trainer(run, load_config(run.config), resume=False, show_progress=False, callbacks=monitored(snap))
    trainer.fit()
    stats = read_jsonl(run.root / "stats.jsonl")
    assert [s["step"] for s in stats] == [4, 8]  # logged at steps 4 and 8 though log_interval is 2
    s4 = stats[0]
    model = trainer.raw_model
    name = "blocks.1.mlp.fc.weight"
    assert abs(s4[f"grad_norm/{name}"] - float(snap.grads[name].norm())) < 1e-5 * float(snap.grads[name].norm())
    # without clipping, the global gradient norm is the loop's own grad_norm at that step
    logged = {r["step"]: r for r in read_jsonl(run.metrics) if r["kind"] == "train"}
    assert abs(s4["grad_norm/global"] - logged[4]["grad_norm"]) < 1e-4 * logged[4]["grad_norm"]
    for key in ("param_norm/global", "update_ratio/global", "act_std/blocks.0", "attn_entropy/blocks.1"):
        assert key in s4 and s4[key] > 0
    assert 0.0 <= s4["act_zero/blocks.0"] <= 1.0
    assert 0 < s4["attn_entropy/blocks.0"] <= math.log(32)
    # a plausible update: AdamW moves each weight by about lr, a small fraction of its norm
    assert 1e-5 < s4["update_ratio/global"] < 1e-1
    assert name in dict(model.named_parameters())


def test_hooks_are_idle_between_statistics_steps() -> None:
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8), vocab_size=10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    done = [0]
    stats = TrainingStats(interval=3)
    stats.attach(model, opt, lambda: done[0])
    seen = []
    for _ in range(7):
        loss = model(torch.randint(0, 10, (2, 8))).logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        seen += [step for step, _ in stats.pop()]
        done[0] += 1
    assert seen == [3, 6]
    assert not model.blocks[0]._forward_hooks  # step 8 is not a statistics step: no forward hooks
    stats._set_active(True)
    assert model.blocks[0]._forward_hooks
    stats.detach()
    assert not model.blocks[0]._forward_hooks


def test_every_statistics_step_is_logged_between_log_steps(tmp_path) -> None:
    from tests.helpers.runs import train

    run = make_token_run(tmp_path / "run", ["train.steps=8", "train.log_interval=4", "train.eval_interval=100",
                                            "monitor.stats_interval=1", "monitor.tensorboard=false"])
    train(run)
    assert [s["step"] for s in read_jsonl(run.root / "stats.jsonl")] == list(range(1, 9))
