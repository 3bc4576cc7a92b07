"""Build a model from its config section; the one place that knows the families."""

from __future__ import annotations

from torch import nn

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.cnn import GatedCNN
from lmforge.models.gpt import GPT
from lmforge.models.llama import Llama
from lmforge.models.rnn import RNNLM

FAMILIES: dict[str, type[nn.Module]] = {"gpt": GPT, "llama": Llama, "lstm": RNNLM, "gru": RNNLM, "cnn": GatedCNN}


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """The model of `cfg.family`, initialised by `cfg.init` (models/init.py)."""
    if cfg.family not in FAMILIES:
        raise LmforgeError(f"unknown model family '{cfg.family}'", f"choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[cfg.family](cfg, vocab_size)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and non-embedding parameters (tied weights counted once; an untied output head
    counts as non-embedding, since it is a real matrix multiply per token)."""
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
