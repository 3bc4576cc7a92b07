"""Continued pretraining: model.init_from names an lmforge run; its shape, weights and tokenizer
come with it, the schedule starts again from step 0, and lineage.json records where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.pipeline import run_all
from lmforge.rundir import RunDir
from lmforge.train import checkpoint as ckpt
from tests.helpers.finetune import make_base, write_docs


def test_a_run_continues_from_another_runs_checkpoint(tmp_path: Path) -> None:
    base = make_base(tmp_path / "A")
    docs = write_docs(tmp_path / "b.jsonl", per_class=6, classes=("y",))
    keys = [f"model.init_from={base.root}", "tokenizer.kind=pretrained", "data.corpus=none", f"data.paths=[{docs}]",
            "data.dedup=none", "train.steps=2", "train.lr=1e-12", "train.min_lr=1e-13", "train.warmup_steps=0",
            "train.batch_size=2", "train.eval_interval=2", "train.checkpoint_interval=2", "train.threads=1",
            "train.device=cpu", "monitor.console=none", "eval.tasks=[]", "eval.samples=0", "eval.max_tokens=200",
            "eval.bootstrap_rounds=0"]
    cfg = load_config(None, "smoke", keys)
    assert (cfg.model.n_layer, cfg.model.n_embd) == (2, 32)  # the base's shape, not the preset's
    out = RunDir(tmp_path / "B")
    run_all(out, cfg, stages=["data", "tokenize", "train"])
    from tokenizers import Tokenizer

    assert (Tokenizer.from_file(str(out.tokenizer)).get_vocab()
            == Tokenizer.from_file(str(base.tokenizer)).get_vocab())  # the base's tokenizer, not a new one
    before = ckpt.read_weights(ckpt.latest_valid(base.checkpoints))
    after = ckpt.read_weights(ckpt.latest_valid(out.checkpoints))
    for name, tensor in before.items():  # an LR of 1e-12 leaves the loaded weights where they were
        torch.testing.assert_close(after[name], tensor, atol=1e-6, rtol=0)
    lineage = json.loads((out.root / "lineage.json").read_text())
    assert lineage["base"]["kind"] == "lmforge" and lineage["base"]["step"] == 10
    assert lineage["base"]["weights_sha256"]["model.safetensors"]
    assert lineage["schedule"]["rewarmed"] and lineage["data"]["paths"] == [str(docs)]
    with pytest.raises(LmforgeError, match="conflicts with model.init_from"):
        load_config(None, "smoke", [*keys, "model.n_embd=64"])
