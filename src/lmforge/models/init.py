"""Initialisation schemes, a default per family, and per-parameter overrides from the config.

Every model calls `initialize(model, cfg)` at the end of its constructor. Which parameters are
"residual outputs" (the last projection of each residual branch) is the family's answer to
`model.residual_outputs()`; the GPT-2 scaling and the zero-residual scheme act on those.
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError

# the family defaults; docs/models.md explains each choice
FAMILY_DEFAULT = {"gpt": "gpt2", "llama": "gpt2", "lstm": "xavier_uniform", "gru": "xavier_uniform",
                  "cnn": "kaiming_normal", "encoder": "gpt2"}


RNN_EMBED_STD = 0.1


def scheme_for(cfg: ModelConfig) -> str:
    return FAMILY_DEFAULT[cfg.family] if cfg.init == "auto" else cfg.init


def small_std(width: int) -> float:
    """Nguyen & Salazar 2019 ("Transformers without Tears"): std = sqrt(2 / (5·d))."""
    return math.sqrt(2.0 / (5.0 * width))


def apply_scheme(p: torch.Tensor, scheme: str, cfg: ModelConfig) -> None:
    """Fill one parameter in place with `scheme`. 1-D tensors (norms, biases) take no fan-based scheme:
    they are reset to their neutral value by `initialize` unless an override names them."""
    with torch.no_grad():
        if scheme == "torch":
            return  # keep PyTorch's layer defaults (Linear: kaiming_uniform with a=sqrt(5))
        if scheme == "zero":
            nn.init.zeros_(p)
        elif scheme == "ones":
            nn.init.ones_(p)
        elif scheme == "normal":
            nn.init.normal_(p, 0.0, cfg.init_std)
        elif scheme == "scaled":
            # GPT-2 (Radford et al. 2019, sec. 2.3): residual outputs scaled by 1/sqrt(N), N = 2 per block
            nn.init.normal_(p, 0.0, cfg.init_std / math.sqrt(2 * cfg.n_layer))
        elif scheme == "rnn_embedding":
            # an RNN's tanh-bounded hidden state starts small, so with a tied head the logits only move
            # if the embedding is large: measured here, a GRU with N(0, 0.02) embeddings stayed at the
            # unigram loss for 150 steps and learned at N(0, 0.1); AWD-LSTM (Merity et al. 2018) uses U(±0.1)
            nn.init.normal_(p, 0.0, RNN_EMBED_STD)
        elif scheme == "small":
            nn.init.normal_(p, 0.0, small_std(cfg.n_embd))
        elif p.ndim < 2:
            raise ValueError(f"init scheme '{scheme}' needs a matrix; it cannot fill a {p.ndim}-D parameter")
        elif scheme == "xavier_uniform":  # Glorot & Bengio 2010
            nn.init.xavier_uniform_(p)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(p)
        elif scheme == "kaiming_uniform":  # He et al. 2015, gain sqrt(2) for ReLU-like units
            nn.init.kaiming_uniform_(p, mode=cfg.init_fan_mode, nonlinearity="relu")
        elif scheme == "kaiming_normal":
            nn.init.kaiming_normal_(p, mode=cfg.init_fan_mode, nonlinearity="relu")
        elif scheme == "orthogonal":  # Saxe et al. 2014: keeps singular values at 1 through repeated products
            nn.init.orthogonal_(p)
        else:
            raise ValueError(f"unknown init scheme '{scheme}'")


def _global_rule(name: str, p: torch.Tensor, scheme: str, residual: bool, recurrent: bool, family: str) -> str:
    """The scheme a parameter gets from the model-wide `init` setting."""
    if p.ndim < 2:
        return "bias_or_norm"
    if "emb" in name:
        if scheme in ("small", "torch"):
            return scheme
        return "rnn_embedding" if family in ("lstm", "gru") else "normal"
    if scheme == "gpt2":
        return "scaled" if residual else "normal"
    if scheme == "zero_residual":
        return "zero" if residual else "normal"
    if recurrent and scheme in ("xavier_uniform", "xavier_normal"):
        return "orthogonal"  # hidden-to-hidden weights: orthogonal (Saxe et al. 2014), common RNN practice
    return scheme


def _neutral(name: str, p: torch.Tensor, family: str) -> None:
    """Biases to zero, norm gains to one; LSTM forget-gate bias to 1 (Jozefowicz et al. 2015)."""
    with torch.no_grad():
        if "norm" in name or name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            return
        nn.init.zeros_(p)
        if family == "lstm" and ".bias_hh" in name:
            h = p.shape[0] // 4
            p[h:2 * h] = 1.0  # PyTorch's gate order is input, forget, cell, output


def initialize(model: nn.Module, cfg: ModelConfig) -> dict[str, str]:
    """Initialise every parameter; returns name -> scheme applied (for `model info` and tests)."""
    scheme = scheme_for(cfg)
    residual = set(getattr(model, "residual_outputs", list)())
    applied: dict[str, str] = {}
    for name, p in model.named_parameters():  # tied weights appear once
        rule = _global_rule(name, p, scheme, name in residual, "weight_hh" in name, cfg.family)
        for pattern, override in cfg.init_overrides.items():
            if fnmatch.fnmatchcase(name, pattern):
                rule = override  # the last matching pattern wins
        if rule == "bias_or_norm":
            if scheme != "torch":
                _neutral(name, p, cfg.family)
            applied[name] = "torch" if scheme == "torch" else "neutral"
            continue
        try:
            apply_scheme(p, rule, cfg)
        except ValueError as exc:
            raise LmforgeError(f"model.init_overrides: parameter '{name}': {exc}",
                               "use zero, ones, normal, scaled or small for biases and norm gains") from None
        applied[name] = rule
    unused = [pat for pat in cfg.init_overrides if not any(fnmatch.fnmatchcase(n, pat) for n in applied)]
    if unused:
        raise LmforgeError(f"model.init_overrides: pattern(s) {unused} match no parameter of this "
                           f"{cfg.family} model", f"parameters look like: {', '.join(list(applied)[:6])}, ... "
                           "(without the pattern, `lmforge model info CONFIG --params` lists them all)")
    return applied
