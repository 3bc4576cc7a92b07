"""Small self-made runs for the monitor tests: a token stream a tiny GPT can learn in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from lmforge.config.load import dump_config, load_config
from lmforge.config.schema import Config
from lmforge.rundir import RunDir, atomic_write_text
from lmforge.train.loop import Callback, CallbackFactory

TINY = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
        "train.batch_size=8", "train.warmup_steps=5", "train.eval_batches=2", "train.threads=1",
        "monitor.console=none", "monitor.peak_flops=1e11"]


def make_token_run(root: Path, overrides: list[str] | None = None, vocab: int = 64, n: int = 40_000) -> RunDir:
    """A run directory with tokens/ and config.yaml only, as the tokenize stage would leave it:
    a noisy repeating pattern, so the loss falls quickly and the statistics are not trivial."""
    run = RunDir(root)
    run.create()
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, vocab, 97)
    stream = np.tile(pattern, n // 97 + 1)[:n]
    noise = rng.random(n) < 0.1
    stream[noise] = rng.integers(0, vocab, int(noise.sum()))
    split = int(n * 0.9)
    run.tokens.mkdir(parents=True, exist_ok=True)
    stream[:split].astype(np.uint16).tofile(run.token_file("train"))
    stream[split:].astype(np.uint16).tofile(run.token_file("val"))
    meta = {"dtype": "uint16", "vocab_size": vocab,
            "splits": {"train": {"tokens": split}, "val": {"tokens": n - split}}}
    (run.tokens / "meta.json").write_text(json.dumps(meta))
    cfg = load_config(None, "smoke", TINY + (overrides or []))
    atomic_write_text(run.config, dump_config(cfg))
    return run


def add_tokenizer(run: RunDir, vocab: int = 64) -> None:
    """A word-level tokenizer over the run's ids ("t0".."t63"), enough to decode text samples."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    run.tokenizer.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(run.tokenizer))


def monitored(*extra: Callback) -> CallbackFactory:
    """What the pipeline hands the train stage (monitor.build_callbacks), then `extra`."""
    from lmforge.monitor import build_callbacks

    def factory(run: RunDir, cfg: Config, model: nn.Module, start: int, show: bool) -> list[Callback]:
        return build_callbacks(run, cfg, model, start, show) + list(extra)

    return factory


def train(run: RunDir) -> dict:
    """The train stage in this process, with the run's own config.yaml and the pipeline's monitoring."""
    from lmforge.train.stage import run_train

    return run_train(run, load_config(run.config), show_progress=False, callbacks=monitored())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
