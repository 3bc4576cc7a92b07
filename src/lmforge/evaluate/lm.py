"""Language-model evaluation: loss, perplexity and bits per byte, with bootstrap intervals over documents.

Bits per byte divides the summed loss (in bits) by the UTF-8 bytes of the predicted tokens, so
runs with different tokenizers compare on the same footing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lmforge.tokens.loader import sequential_windows
from lmforge.train.loop import autocast, lm_loss


@torch.no_grad()
def token_losses(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                 max_tokens: int | None, dtype: str = "float32") -> np.ndarray:
    """Loss in nats of every predicted token (token i+1 given the window before it), in order."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for x, y in sequential_windows(data, block_size, batch_size, max_tokens):
        with autocast(device, dtype):
            logits = model(x.to(device))
        out.append(lm_loss(logits, y.to(device), "none").cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def bootstrap_ci(nats: np.ndarray, nbytes: np.ndarray, rounds: int = 1000, seed: int = 0
                 ) -> tuple[float, float] | None:
    """95% percentile interval of bits per byte, resampling documents with replacement
    (None with fewer than two documents: one document gives no spread to resample)."""
    if len(nats) < 2:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nats), size=(rounds, len(nats)))
    values = nats[picks].sum(1) / np.maximum(1, nbytes[picks].sum(1)) / math.log(2)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(losses: np.ndarray, targets: np.ndarray, byte_lengths: np.ndarray,
              doc_starts: np.ndarray) -> dict[str, float]:
    """Loss, perplexity and bits per byte of one split, with a per-document bootstrap interval."""
    if len(losses) == 0:
        return {"tokens": 0}
    nbytes = byte_lengths[targets]
    # the target at stream position p+1 belongs to the document whose start is <= p+1
    doc_of = np.searchsorted(doc_starts, np.arange(1, len(losses) + 1), side="right") - 1
    n_docs = int(doc_of.max()) + 1
    doc_nats = np.bincount(doc_of, weights=losses, minlength=n_docs)
    doc_bytes = np.bincount(doc_of, weights=nbytes, minlength=n_docs)
    mean_loss = float(losses.mean())
    bpb = float(losses.sum() / max(1, nbytes.sum()) / math.log(2))
    ci = bootstrap_ci(doc_nats, doc_bytes)
    return {
        "tokens": len(losses), "bytes": int(nbytes.sum()), "documents": n_docs,
        "loss": mean_loss, "perplexity": math.exp(mean_loss),
        "bits_per_byte": bpb, "bits_per_byte_ci95": list(ci) if ci else None,
    }
