"""Small synthetic run directories: a token stream with structure (so loss can fall), no corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.rundir import RunDir

VOCAB = 32


def make_tokens(root: Path, n_train: int = 6000, n_val: int = 1200, seed: int = 0) -> RunDir:
    """tokens/{train,val,test}.bin and meta.json as the tokenize stage writes them."""
    run = RunDir(root)
    run.tokens.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_val)):
        # a noisy counting sequence: predictable enough that a tiny model learns it
        base = np.arange(n) % VOCAB
        noise = rng.integers(0, VOCAB, n)
        ids = np.where(rng.random(n) < 0.2, noise, base).astype(np.uint16)
        ids.tofile(run.token_file(split))
        splits[split] = {"tokens": int(n), "documents": 1}
    meta = {"dtype": "uint16", "vocab_size": VOCAB, "eos_id": 0, "kind": "char", "splits": splits}
    (run.tokens / "meta.json").write_text(json.dumps(meta))
    return run


def tiny_config(*overrides: str) -> Config:
    """A 2-layer, 32-wide GPT on the synthetic tokens: each step takes a few milliseconds."""
    base = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
            "train.steps=20", "train.batch_size=8", "train.warmup_steps=2", "train.lr=3e-3", "train.min_lr=3e-4",
            "train.eval_interval=10", "train.eval_batches=2", "train.log_interval=1",
            "train.checkpoint_interval=5", "train.keep_checkpoints=10", "train.threads=1", "train.device=cpu"]
    return load_config(None, "smoke", [*base, *overrides])


@pytest.fixture
def tiny_run(tmp_path: Path) -> RunDir:
    return make_tokens(tmp_path / "run")


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two threads
    per process oversubscribe it badly; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
