"""Load a run's trained model and score a held-out split: what `eval`, cross-validation and the
comparisons share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from torch import nn

from lmforge.config.schema import Config
from lmforge.console import show
from lmforge.errors import LmforgeError
from lmforge.evaluate.lm import score_tokens, spread_budget, summarize
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir, read_jsonl_gz
from lmforge.runtime import pick_device, setup_threads
from lmforge.tokens.store import load_doc_starts, load_tokens
from lmforge.tokens.tokenizer import load_tokenizer
from lmforge.train import checkpoint as ckpt


def load_trained(run: RunDir, cfg: Config, checkpoint: Path | None = None) -> tuple[nn.Module, Tokenizer, Path]:
    """The model of `checkpoint` (one of the run's checkpoints/step-N folders) or, when None, of the
    newest valid checkpoint; and the run's tokenizer."""
    if not run.root.is_dir():
        raise LmforgeError(f"run directory not found: {run.root}", "give the folder `lmforge run -o` wrote")
    tok = load_tokenizer(run.require(run.tokenizer, "tokenize"))
    if checkpoint is not None:
        problem = ckpt.verify(checkpoint)
        if problem is not None:
            raise LmforgeError(f"checkpoint {checkpoint} is unusable: {problem}",
                               f"name another of {run.checkpoints}, or the run itself for its newest valid one")
    latest = checkpoint or ckpt.latest_valid(run.checkpoints, warn=lambda m: show((m, "yellow")))
    if latest is None:
        raise LmforgeError(f"no valid checkpoint in {run.checkpoints}",
                           f"run `lmforge train {run.root}` first")
    setup_threads(cfg.train.threads)
    model = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).to(pick_device(cfg.train.device))
    ckpt.load_weights(latest, model)
    model.eval()
    return model, tok, latest


def split_sources(run: RunDir, split: str, n_docs: int) -> list[str] | None:
    """The source of each document of a split, in token-file order (None if it cannot be matched)."""
    path = run.split_file(split)
    if not path.is_file():
        return None
    sources = [str(rec.get("source", "")) for rec in read_jsonl_gz(path)]
    return sources if len(sources) == n_docs else None


def score_split(model: nn.Module, run: RunDir, split: str, cfg: Config, byte_lengths: np.ndarray,
                per_source: bool = True) -> dict[str, Any]:
    data = load_tokens(run.tokens, split)
    if len(data) < 2:
        return {"tokens": 0}
    starts = load_doc_starts(run.tokens, split)
    data, starts = spread_budget(data, starts, cfg.eval.max_tokens)
    scores = score_tokens(model, data, cfg.model.block_size, cfg.eval.batch_size, cfg.eval.max_tokens,
                          cfg.train.dtype, cfg.eval.accuracy_top_k, progress=f"eval: scoring {split}")
    targets = np.asarray(data[1: len(scores) + 1], dtype=np.int64)
    sources = split_sources(run, split, len(starts)) if per_source else None
    return summarize(scores, targets, byte_lengths, starts, sources, cfg.eval.bootstrap_rounds, cfg.eval.seed,
                     cfg.eval.accuracy_top_k)
