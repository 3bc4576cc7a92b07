"""Language-model evaluation: loss, perplexity, bits per byte, next-token and top-k accuracy.

Every number comes with a bootstrap 95% interval over documents (tokens of one document are not
independent, so documents are the resampling unit). Bits per byte divides the summed loss (in
bits) by the UTF-8 bytes of the predicted tokens, so runs with different tokenizers compare on
the same footing. Numbers are also given per data source when a split mixes sources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.console import Ticker
from lmforge.evaluate.stats import DEFAULT_ROUNDS, ratio_interval
from lmforge.models.loss import lm_loss
from lmforge.runtime import autocast
from lmforge.tokens.loader import sequential_windows

TOP_K = 5


@dataclass
class TokenScores:
    """Per predicted token, in stream order: loss in nats, argmax hit, top-k hit."""

    losses: np.ndarray
    correct: np.ndarray
    topk: np.ndarray

    def __len__(self) -> int:
        return len(self.losses)


@torch.no_grad()
def score_tokens(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                 max_tokens: int | None, dtype: str = "float32", k: int = TOP_K,
                 progress: str = "eval: scoring") -> TokenScores:
    """Score every predicted token (token i+1 given its window) of a split, in order.
    `progress` labels the progress lines a long scoring prints."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, correct, topk = [], [], []
    total = max(0, len(data) - 1 if max_tokens is None else min(len(data) - 1, max_tokens))
    ticker = Ticker(progress, total, "tokens")
    for x, y in sequential_windows(data, block_size, batch_size, max_tokens):
        y = y.to(device)
        with autocast(device, dtype):
            logits = model(x.to(device))
        losses.append(lm_loss(logits, y, "none").cpu().numpy())
        top = logits.float().topk(min(k, logits.shape[-1]), dim=-1).indices
        correct.append((top[..., 0] == y).flatten().cpu().numpy())
        topk.append((top == y[..., None]).any(-1).flatten().cpu().numpy())
        ticker.advance(y.numel())
    model.train(was_training)
    if not losses:
        return TokenScores(np.zeros(0), np.zeros(0, bool), np.zeros(0, bool))
    return TokenScores(np.concatenate(losses), np.concatenate(correct), np.concatenate(topk))


def token_losses(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                 max_tokens: int | None, dtype: str = "float32") -> np.ndarray:
    """Loss in nats of every predicted token (kept for callers that need only the loss)."""
    return score_tokens(model, data, block_size, batch_size, max_tokens, dtype).losses


def spread_budget(data: np.ndarray, doc_starts: np.ndarray, max_tokens: int | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """At most max_tokens of a split, taken as an equal centred chunk of every document.

    Cutting the stream after max_tokens would score only the first document or two (no interval,
    one document's style); a chunk from the middle of each keeps every document in the estimate
    and skips front matter such as title pages and cast lists.
    """
    if max_tokens is None or len(data) <= max_tokens or len(doc_starts) == 0:  # one document: its middle too
        return data, doc_starts
    ends = np.append(doc_starts[1:], len(data))
    take = max(2, max_tokens // len(doc_starts))
    parts, starts, at = [], [], 0
    for s, e in zip(doc_starts.tolist(), ends.tolist()):
        n = min(take, e - s)
        lo = s + (e - s - n) // 2
        parts.append(np.asarray(data[lo: lo + n]))
        starts.append(at)
        at += n
    return np.concatenate(parts), np.asarray(starts, dtype=np.int64)


def document_of(n_predicted: int, doc_starts: np.ndarray) -> np.ndarray:
    """Document index of each predicted token: the target at stream position p+1 belongs to the
    last document whose start is <= p+1."""
    return np.searchsorted(doc_starts, np.arange(1, n_predicted + 1), side="right") - 1


def per_document(scores: TokenScores, targets: np.ndarray, byte_lengths: np.ndarray,
                 doc_starts: np.ndarray) -> dict[str, np.ndarray]:
    """Sums per document (nats, tokens, bytes, hits): the units every interval resamples."""
    doc = document_of(len(scores), doc_starts)
    n = int(doc.max()) + 1 if len(doc) else 0

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(doc, weights=w.astype(np.float64), minlength=n)

    return {"nats": total(scores.losses), "tokens": total(np.ones(len(doc))),
            "bytes": total(byte_lengths[targets]), "correct": total(scores.correct),
            "topk": total(scores.topk)}


NATS_TO_BITS = 1 / math.log(2)


def bits_per_byte(nats: float, nbytes: float) -> float:
    """Summed loss in nats per byte of the text scored, in bits: unlike the per-token loss it
    compares across tokenizers, since every tokenizer encodes the same bytes."""
    return float(nats / max(1.0, nbytes) * NATS_TO_BITS)


def summarize_documents(docs: dict[str, np.ndarray], rounds: int = DEFAULT_ROUNDS, seed: int = 0,
                        k: int = TOP_K) -> dict[str, Any]:
    """Split-level metrics from per-document sums, each with a document-bootstrap interval."""
    tokens = docs["tokens"].sum()
    if tokens == 0:
        return {"tokens": 0}
    loss = float(docs["nats"].sum() / tokens)
    def ci(num: str, den: str, transform: Any = None) -> list[float] | None:
        return ratio_interval(docs[num], docs[den], rounds, seed, transform)

    return {
        "tokens": int(tokens), "bytes": int(docs["bytes"].sum()), "documents": len(docs["tokens"]),
        "loss": loss, "loss_ci95": ci("nats", "tokens"),
        "perplexity": math.exp(loss), "perplexity_ci95": ci("nats", "tokens", np.exp),
        "bits_per_byte": bits_per_byte(docs["nats"].sum(), docs["bytes"].sum()),
        "bits_per_byte_ci95": ci("nats", "bytes", lambda v: v * NATS_TO_BITS),
        "accuracy": float(docs["correct"].sum() / tokens), "accuracy_ci95": ci("correct", "tokens"),
        f"top{k}_accuracy": float(docs["topk"].sum() / tokens), f"top{k}_accuracy_ci95": ci("topk", "tokens"),
    }


def summarize(scores: TokenScores | np.ndarray, targets: np.ndarray, byte_lengths: np.ndarray,
              doc_starts: np.ndarray, sources: Sequence[str] | None = None,
              rounds: int = DEFAULT_ROUNDS, seed: int = 0, k: int = TOP_K) -> dict[str, Any]:
    """All metrics of one split; with `sources` (one per document), also per source.
    `k` must be the k `scores.topk` was measured with: it names the `top{k}_accuracy` key."""
    if isinstance(scores, np.ndarray):  # losses only: accuracy unknown, reported as 0 hits
        scores = TokenScores(scores, np.zeros(len(scores), bool), np.zeros(len(scores), bool))
    if len(scores) == 0:
        return {"tokens": 0}
    docs = per_document(scores, targets, byte_lengths, doc_starts)
    out = summarize_documents(docs, rounds, seed, k)
    if sources is not None and len(set(sources)) > 1:
        names = np.asarray(list(sources))[: len(docs["tokens"])]
        out["sources"] = {
            src: summarize_documents({key: v[names == src] for key, v in docs.items()}, rounds, seed, k)
            for src in sorted(set(names.tolist()))
        }
    return out
