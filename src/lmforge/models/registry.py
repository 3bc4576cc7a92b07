"""Build a model from its config section; the one place that knows the families."""

from __future__ import annotations

from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.cnn import GatedCNN
from lmforge.models.encoder import Encoder
from lmforge.models.gpt import GPT
from lmforge.models.llama import Llama
from lmforge.models.rnn import RNNLM

FAMILIES: dict[str, type[nn.Module]] = {"gpt": GPT, "llama": Llama, "lstm": RNNLM, "gru": RNNLM, "cnn": GatedCNN,
                                      "encoder": Encoder}


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """The model of `cfg.family`, initialised by `cfg.init` (models/init.py). `vocab_size` is the
    tokenizer's; `cfg.vocab_size`, when set (a pretrained folder's), may be larger, never smaller."""
    if cfg.family not in FAMILIES:
        raise LmforgeError(f"unknown model family '{cfg.family}'", f"choose one of: {', '.join(FAMILIES)}")
    rows = cfg.vocab_size or vocab_size
    if vocab_size > rows:
        where = f" (the vocabulary of {cfg.init_from})" if cfg.init_from else ""
        raise LmforgeError(f"the tokenizer has {vocab_size} tokens but the model has {rows} rows{where}",
                           "use the tokenizer that came with the model (tokenizer.kind=pretrained), "
                           "or raise model.vocab_size")
    return FAMILIES[cfg.family](cfg, rows)


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
