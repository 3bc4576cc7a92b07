"""Build a model from its config section; the one place that knows the families."""

from __future__ import annotations

from torch import nn

from lmforge.config import ModelConfig
from lmforge.models.gpt import GPT

FAMILIES: dict[str, type[nn.Module]] = {"gpt": GPT}


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    return FAMILIES[cfg.family](cfg, vocab_size)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and non-embedding parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = embedding = 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if "emb" in name:
            embedding += p.numel()
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}
