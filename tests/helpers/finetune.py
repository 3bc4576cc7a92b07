"""A tiny base for the fine-tuning tests: a run directory with a char tokenizer, config.yaml and
one checkpoint of a 2-layer GPT; and labelled documents whose classes differ in their letters
(class x writes a-e, class y writes f-j), so a classifier learns them in a few steps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from lmforge.config.load import dump_config, load_config
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir, atomic_write_text
from lmforge.train import checkpoint as ckpt

CHARS = "abcdefghij \n"
BASE_KEYS = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
             "data.corpus=none", "tokenizer.kind=char", "train.threads=1", "train.device=cpu"]


def char_tokenizer(path: Path) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<|endoftext|>"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def make_base(root: Path, *overrides: str, seed: int = 0) -> RunDir:
    """A run as `lmforge train` leaves it: config.yaml, tokenizer, checkpoints/step-10."""
    run = RunDir(root)
    run.create()
    cfg = load_config(None, "smoke", [*BASE_KEYS, *overrides])
    atomic_write_text(run.config, dump_config(cfg))
    char_tokenizer(run.tokenizer)
    torch.manual_seed(seed)
    model = build_model(cfg.model, len(CHARS) + 1)
    ckpt.save_checkpoint(run.checkpoints, 10, model, None, {"loss": 1.0, "good": True},
                         {"torch": torch.get_rng_state()}, keep=2)
    return run


def write_docs(path: Path, per_class: int = 8, chars: int = 600, field: str = "author",
               missing: int = 0, classes: tuple[str, ...] = ("x", "y"), seed: int = 0) -> Path:
    """JSONL documents, `per_class` of each class; the first `missing` lack the label field."""
    rng = random.Random(seed)
    letters = {"x": "abcde", "y": "fghij", "z": "acegi"}
    rows = []
    for c in classes:
        for i in range(per_class):
            words = [("".join(rng.choice(letters[c]) for _ in range(rng.randint(2, 7)))) for _ in range(chars // 4)]
            rows.append({"id": f"{c}{i}", "text": " ".join(words)[:chars], field: c})
    for row in rows[:missing]:
        del row[field]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def finetune_keys(docs: Path, *extra: str) -> list[str]:
    """Overrides for a fine-tune of seconds on `write_docs` documents."""
    return [f"data.paths=[{docs}]", "data.corpus=none", "data.dedup=none", "finetune.passage_chars=60",
            "finetune.max_passages_per_doc=6", "train.steps=12", "train.batch_size=8", "train.warmup_steps=2",
            "train.eval_interval=6", "train.log_interval=2", "eval.bootstrap_rounds=20", "monitor.console=none",
            "monitor.tensorboard=false", "monitor.peak_flops=1e11", "finetune.head_dropout=0", *extra]


def add_tokens(run: RunDir, letters: str = "abcde", n: int = 4000, seed: int = 0) -> None:
    """tokens/{train,val}.bin of text in `letters`, encoded with the run's char tokenizer."""
    import numpy as np

    from lmforge.rundir import atomic_write_json

    rng = random.Random(seed)
    ids = {c: i + 1 for i, c in enumerate(CHARS)}
    run.tokens.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, size in (("train", n), ("val", n // 4)):
        text = " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 6))) for _ in range(size // 4))
        arr = np.array([ids[c] for c in text[:size]], dtype=np.uint16)
        arr.tofile(run.token_file(split))
        np.save(run.tokens / f"{split}.docs.npy", np.array([0], dtype=np.int64))
        splits[split] = {"tokens": len(arr), "documents": 1}
    atomic_write_json(run.tokens / "meta.json", {"dtype": "uint16", "vocab_size": len(CHARS) + 1, "eos_id": 0,
                                                 "kind": "char", "splits": splits})
