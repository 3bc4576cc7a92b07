"""Validation loss per data source at every evaluation: ties the data mix to what the model learns.

The tokenize stage records each document's start offset (val.docs.npy) and source
(val.doc_sources.npy, an index into meta["sources"]). Windows are spread evenly over the whole
validation split (the loop's own validation windows cover only its beginning, often one source),
each target token is credited to the document it falls in, and the mean loss per source joins
the eval line as `val_loss/<source>`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmforge.models.loss import lm_loss
from lmforge.runtime import autocast
from lmforge.tokens.store import (
    META,
    has_doc_index,
    load_doc_sources,
    load_doc_starts,
    load_tokens,
    read_meta,
)
from lmforge.train.loop import Callback

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer


def source_names(tokens_dir: Path) -> list[str] | None:
    """The sources of the validation split, or None when it has fewer than two (nothing to compare)."""
    if not (tokens_dir / META).is_file() or not has_doc_index(tokens_dir, "val"):
        return None
    doc_sources = load_doc_sources(tokens_dir, "val")
    if doc_sources is None:
        return None
    sources = read_meta(tokens_dir).get("sources") or []
    return sources if len(np.unique(doc_sources)) > 1 else None


def _key(name: str) -> str:
    """A metric-safe name: TensorBoard, W&B and MLflow all accept [A-Za-z0-9_.-/]."""
    return "val_loss/" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed")


class SourceLoss(Callback):
    """Adds `val_loss/<source>` to each eval record (runs before the Monitor, which logs it)."""

    def __init__(self, tokens_dir: Path, block_size: int, windows: int, batch_size: int) -> None:
        self.data = load_tokens(tokens_dir, "val")
        self.doc_starts = load_doc_starts(tokens_dir, "val")
        self.doc_source = load_doc_sources(tokens_dir, "val")
        self.names = read_meta(tokens_dir)["sources"]
        self.block, self.batch = block_size, batch_size
        last = max(0, len(self.data) - block_size - 1)
        self.starts = np.unique(np.linspace(0, last, num=max(1, windows)).astype(np.int64))

    @torch.no_grad()
    def losses(self, model: torch.nn.Module, device: torch.device, dtype: str) -> dict[str, float]:
        was_training = model.training
        model.eval()
        total = np.zeros(len(self.names))
        count = np.zeros(len(self.names))
        for i in range(0, len(self.starts), self.batch):
            starts = self.starts[i:i + self.batch]
            rows = np.stack([self.data[s:s + self.block + 1] for s in starts]).astype(np.int64)
            chunk = torch.from_numpy(rows).to(device)
            with autocast(device, dtype):
                logits = model(chunk[:, :-1])
            loss = lm_loss(logits, chunk[:, 1:], "none").view(len(starts), self.block).cpu().numpy()
            positions = starts[:, None] + 1 + np.arange(self.block)[None, :]  # where each target token sits
            docs = np.searchsorted(self.doc_starts, positions, side="right") - 1
            src = self.doc_source[np.clip(docs, 0, len(self.doc_source) - 1)]
            np.add.at(total, src.ravel(), loss.ravel())
            np.add.at(count, src.ravel(), 1)
        model.train(was_training)
        return {_key(self.names[k]): float(total[k] / count[k]) for k in range(len(self.names)) if count[k]}

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics.update(self.losses(trainer.raw_model, trainer.device, trainer.cfg.dtype))
