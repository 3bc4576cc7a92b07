"""Small self-made run directories and tiny configs: token streams a tiny model learns in seconds,
written as the data and tokenize stages would leave them, with no corpus and no tokenizer training.

- `make_tokens` + `tiny_config`: a noisy counting sequence over `VOCAB` ids, and a 2-layer GPT that
  takes a few milliseconds a step (the train tests).
- `make_token_run` (+ `add_tokenizer`), `monitored`, `train`, `read_jsonl`: a noisy repeating
  pattern with its config.yaml, trained through the train stage with the pipeline's monitoring (the
  monitor tests).
- `train_losses`, `newest_weights`: what a run left in metrics.jsonl and its newest checkpoint.
- `make_doc_run` + `doc_run_config`: a char tokenizer, documents with sources and `.docs.npy`
  offsets (cross-validation, the eval stage and the multi-run comparisons).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lmforge.config.load import dump_config, load_config
from lmforge.config.schema import Config
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text, write_jsonl_gz
from lmforge.train.loop import Callback, CallbackFactory

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


def train_losses(run: Path) -> list[float]:
    """The training losses a run logged to metrics.jsonl, in order (one per log_interval steps)."""
    return [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]


def newest_weights(run: Path) -> dict[str, torch.Tensor]:
    """The newest checkpoint's weights, full or sharded format."""
    from lmforge.train import checkpoint as ckpt

    return ckpt.read_weights(ckpt.list_checkpoints(run / "checkpoints")[-1])


CHARS = "abcdefghij \n"


def make_doc_run(root: Path, n_docs: int = 6) -> RunDir:
    """A run directory as the data and tokenize stages leave it: char tokenizer, token files with
    document offsets, split files whose documents alternate between two sources. n_docs - 2
    training documents, one validation and one test document, 301 tokens each."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    run = RunDir(root)
    run.create()
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<|endoftext|>"])
    run.tokenizer.parent.mkdir(parents=True)
    tok.save(str(run.tokenizer))
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", n_docs - 2), ("val", 1), ("test", 1)):
        docs = [rng.integers(1, len(CHARS) + 1, 300).astype(np.uint16) for _ in range(count)]
        docs = [np.append(d, 0).astype(np.uint16) for d in docs]
        run.tokens.mkdir(parents=True, exist_ok=True)
        np.concatenate(docs).tofile(run.token_file(split))
        np.save(run.tokens / f"{split}.docs.npy", np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64))
        write_jsonl_gz(run.split_file(split), [{"id": f"{split}{i}", "text": "x", "source": f"s{i % 2}"}
                                              for i in range(count)])
        splits[split] = {"tokens": int(sum(len(d) for d in docs)), "documents": count}
    atomic_write_json(run.tokens / "meta.json", {"dtype": "uint16", "vocab_size": len(vocab), "eos_id": 0,
                                                 "kind": "char", "splits": splits})
    return run


def doc_run_config(**eval_keys: object) -> Config:
    """A 1-layer, 16-wide GPT trained 3 steps on `make_doc_run`'s tokens; `eval_keys` set eval.*."""
    over = ["model.n_layer=1", "model.n_head=1", "model.n_embd=16", "model.block_size=16",
            "train.batch_size=4", "train.steps=3", "train.warmup_steps=0", "train.eval_interval=3",
            "train.checkpoint_interval=3", "train.log_interval=1", "eval.bootstrap_rounds=100"]
    over += [f"eval.{k}={v}" for k, v in eval_keys.items()]
    return load_config(None, "smoke", over)
