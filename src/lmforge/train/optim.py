"""Optimizers with parameter groups: AdamW, Adam, SGD, Lion, Adafactor and Muon.

PyTorch's own implementations are used wherever the installed version has them (AdamW, Adam,
SGD, Adafactor, Muon); Lion is written here (PyTorch has none) from the paper's update rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from lmforge.config.schema import TrainConfig
from lmforge.errors import LmforgeError
from lmforge.models.common import layer_depth

GROUPS = ("matrix", "embedding", "norm_bias")


def param_kind(name: str, p: torch.Tensor) -> str:
    """Which group a parameter belongs to: norms and biases (ndim < 2), embeddings, or matrices."""
    if p.ndim < 2:
        return "norm_bias"
    if "emb" in name:
        return "embedding"
    return "matrix"


def n_blocks(model: nn.Module) -> int:
    """How many blocks a model has, read from its parameter names (wrappers' prefixes allowed)."""
    # with n_layer -1 every parameter outside a block has depth 0, block i has depth i + 1
    return max((layer_depth(n, -1) for n, _ in model.named_parameters()), default=0)


def param_groups(model: nn.Module, weight_decay: float, lr_mult: dict[str, float] | None = None,
                 kinds: Iterable[str] = GROUPS, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """Decay only weight matrices: norms, biases and embeddings are left alone, since pulling them
    toward zero only hurts (GPT-2/nanoGPT, OLMo). Each group carries an `lr_mult` the loop applies.

    `layer_decay` < 1 is layer-wise LR decay (ULMFiT's discriminative fine-tuning, Howard & Ruder
    2018; the form of ELECTRA, Clark et al. 2020): the top (final norm, heads) keeps the full LR,
    each block below it gets `layer_decay` times the LR of the one above, the embeddings the least.
    The groups are then one per (kind, depth)."""
    top = n_blocks(model) + 1 if layer_decay != 1.0 else 0
    by_key: dict[tuple[str, int], list[torch.Tensor]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        depth = layer_depth(name, top - 1) if top else 0
        by_key.setdefault((param_kind(name, p), depth), []).append(p)
    mult = lr_mult or {}
    groups = []
    for k in kinds:
        for depth in sorted(d for kind, d in by_key if kind == k):
            scale = layer_decay ** (top - depth) if top else 1.0
            groups.append({"params": by_key[(k, depth)], "name": k if not top else f"{k}.{depth}",
                           "weight_decay": weight_decay if k == "matrix" else 0.0,
                           "lr_mult": float(mult.get(k, 1.0)) * scale})
    return groups


class Lion(torch.optim.Optimizer):
    """Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms": the update is the sign of
    an interpolation of momentum and gradient, so every coordinate moves by exactly lr. The paper
    advises an lr 3-10x smaller and a weight decay 3-10x larger than AdamW's."""

    def __init__(self, params: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = m.mul(b1).add_(p.grad, alpha=1 - b1).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


class Chained:
    """Several optimizers stepped as one (Muon for matrices, AdamW for the rest). Exposes the
    attributes the loop, GradScaler and torch.distributed.checkpoint use."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    @property
    def state(self) -> dict[Any, Any]:
        return {k: v for o in self.optimizers for k, v in o.state.items()}

    def step(self, closure: Any = None) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {str(i): o.state_dict() for i, o in enumerate(self.optimizers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, o in enumerate(self.optimizers):
            o.load_state_dict(state[str(i)])


def _impl(cfg: TrainConfig, device: torch.device) -> dict[str, bool]:
    """fused/foreach flags. 'auto': fused kernels on CUDA and CPU where PyTorch has them (AdamW/Adam/SGD)."""
    if cfg.fused == "off":
        return {"foreach": False}
    if cfg.fused == "foreach":
        return {"foreach": True}
    if cfg.fused == "fused" or device.type in ("cuda", "cpu"):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | Chained:
    """The optimizer `cfg.optimizer` names, over parameter groups with no decay on norms,
    biases and embeddings and with per-group LR multipliers."""
    device = next(model.parameters()).device
    groups = param_groups(model, cfg.weight_decay, cfg.lr_mult, layer_decay=cfg.layer_decay)
    betas = (cfg.beta1, cfg.beta2)
    name = cfg.optimizer
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, **_impl(cfg, device))
    if name == "adam":
        # Adam's weight decay is L2 in the gradient (Loshchilov & Hutter 2019 explain why AdamW decouples it)
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, **_impl(cfg, device))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               **_impl(cfg, device))
    if name == "lion":
        return Lion(groups, lr=cfg.lr, betas=betas)
    if name == "adafactor":
        # Shazeer & Stern 2018 as PyTorch implements it: factored second moments, no first moment
        return torch.optim.Adafactor(groups, lr=cfg.lr, eps=(None, 1e-3))
    if name == "muon":
        return _muon(model, cfg)
    raise LmforgeError(f"train.optimizer: unknown optimizer '{name}'")


def _muon(model: nn.Module, cfg: TrainConfig) -> Chained:
    """Muon (Jordan et al. 2024) orthogonalises the update of hidden weight matrices only;
    embeddings, the output head, norms and biases go to AdamW, as its authors advise.
    adjust_lr_fn='match_rms_adamw' (Liu et al. 2025, Moonshot) lets both share one LR."""
    if not hasattr(torch.optim, "Muon"):
        raise LmforgeError(f"train.optimizer=muon needs PyTorch >= 2.9 (installed: {torch.__version__})",
                           "upgrade torch or choose train.optimizer=adamw")
    device = next(model.parameters()).device
    groups = param_groups(model, cfg.weight_decay, cfg.lr_mult, layer_decay=cfg.layer_decay)
    head = {id(p) for n, p in model.named_parameters() if "head" in n}
    muon_group, rest = None, []
    for g in groups:
        if g["name"].split(".")[0] == "matrix":
            mats = [p for p in g["params"] if p.ndim == 2 and id(p) not in head]
            others = [p for p in g["params"] if p.ndim != 2 or id(p) in head]
            muon_group = {**g, "params": mats}
            if others:
                rest.append({**g, "params": others, "name": "matrix_adamw"})
        else:
            rest.append(g)
    opts: list[torch.optim.Optimizer] = []
    if muon_group and muon_group["params"]:
        opts.append(torch.optim.Muon([muon_group], lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     momentum=0.95, nesterov=True, adjust_lr_fn="match_rms_adamw"))
    if rest:
        opts.append(torch.optim.AdamW(rest, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                                      **_impl(cfg, device)))
    return Chained(opts)
