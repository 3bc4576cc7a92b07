"""The `eval` stage: score the latest checkpoint on held-out splits and write eval.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.evaluate.generate import sample
from lmforge.evaluate.lm import summarize, token_losses
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir, atomic_write_json
from lmforge.tokens.loader import load_tokens
from lmforge.tokens.tokenizer import token_byte_lengths
from lmforge.train import checkpoint as ckpt
from lmforge.train.loop import pick_device
from lmforge.train.stage import setup_threads


def load_trained(run: RunDir, cfg: Config) -> tuple[nn.Module, Tokenizer, Path]:
    """The model of the newest valid checkpoint, and the run's tokenizer."""
    tok = Tokenizer.from_file(str(run.require(run.tokenizer, "tokenize")))
    latest = ckpt.latest_valid(run.checkpoints)
    if latest is None:
        raise LmforgeError(f"no valid checkpoint in {run.checkpoints}",
                           f"run `lmforge train {run.root}` first")
    setup_threads(cfg.train.threads)
    model = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).to(pick_device(cfg.train.device))
    ckpt.load_weights(latest, model)
    model.eval()
    return model, tok, latest


def score_split(model: nn.Module, run: RunDir, split: str, cfg: Config, byte_lengths: np.ndarray) -> dict[str, Any]:
    data = load_tokens(run.tokens, split)
    if len(data) < 2:
        return {"tokens": 0}
    starts = np.load(run.tokens / f"{split}.docs.npy", allow_pickle=False)
    losses = token_losses(model, data, cfg.model.block_size, cfg.eval.batch_size, cfg.eval.max_tokens, cfg.train.dtype)
    targets = np.asarray(data[1: len(losses) + 1], dtype=np.int64)
    return summarize(losses, targets, byte_lengths, starts)


def run_eval(run: RunDir, cfg: Config) -> dict[str, Any]:
    model, tok, latest = load_trained(run, cfg)
    byte_lengths = token_byte_lengths(tok)
    results: dict[str, Any] = {"checkpoint": latest.name, "splits": {}}
    for split in cfg.eval.splits:
        results["splits"][split] = score_split(model, run, split, cfg, byte_lengths)
    # the same architecture, untrained, on the same tokens: the bar training must clear
    torch.manual_seed(cfg.train.seed)
    fresh = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).to(next(model.parameters()).device)
    split0 = cfg.eval.splits[0]
    results["untrained"] = {split0: score_split(fresh, run, split0, cfg, byte_lengths)}
    results["samples"] = [
        {"prompt": cfg.eval.prompt, "seed": cfg.eval.seed + i,
         "text": sample(model, tok, cfg.eval.prompt, cfg.eval.sample_tokens, cfg.eval.temperature,
                        cfg.eval.top_k, None, cfg.eval.seed + i, cfg.model.block_size)}
        for i in range(cfg.eval.samples)
    ]
    meta = json.loads((run.tokens / "meta.json").read_text())
    results["tokenizer"] = {"kind": meta["kind"], "vocab_size": meta["vocab_size"]}
    atomic_write_json(run.eval, results)
    return results
