"""Penalty terms on the weights, for train/objective.py: L1, and a weighted pull toward anchor
weights that is EWC with Fisher weights and L2-SP with unit weights.

- L1 (Tibshirani 1996's lasso penalty, on weight matrices): strength * sum |w|.
- Anchor: strength / 2 * sum_i F_i (w_i - w*_i)^2. With F the diagonal of the Fisher information
  at the end of task A this is elastic weight consolidation (Kirkpatrick et al. 2017); with F = 1
  it is L2-SP, weight decay toward the starting point instead of zero (Li, Grandvalet & Davoine
  2018). Either is exactly zero at the anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


class L1Penalty:
    """strength * sum of |w| over the trainable weight matrices (norms, biases and embeddings
    are left alone, as weight decay leaves them: train/optim.py)."""

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def __call__(self, model: nn.Module) -> torch.Tensor:
        terms = [p.abs().sum() for n, p in model.named_parameters()
                 if p.requires_grad and p.ndim >= 2 and "emb" not in n]
        return self.strength * torch.stack(terms).sum() if terms else torch.zeros(())


class AnchorPenalty:
    """strength / 2 * sum_i weight_i * (w_i - anchor_i)^2 over the trainable parameters that
    have an anchor. `weights` None: every weight 1 (L2-SP); a Fisher diagonal: EWC."""

    def __init__(self, anchor: dict[str, torch.Tensor], strength: float,
                 weights: dict[str, torch.Tensor] | None = None) -> None:
        self.anchor = {k: v.detach().clone() for k, v in anchor.items()}
        self.weights = None if weights is None else {k: v.detach().clone() for k, v in weights.items()}
        self.strength = strength

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = torch.zeros((), device=next(model.parameters()).device)
        for name, p in model.named_parameters():
            if not p.requires_grad or name not in self.anchor:
                continue
            diff = (p.float() - self.anchor[name].to(p.device).float()) ** 2
            if self.weights is not None:
                diff = diff * self.weights[name].to(p.device)
            total = total + diff.sum()
        return 0.5 * self.strength * total


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters by name (an anchor)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def fisher_diagonal(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """The empirical Fisher's diagonal: the mean over examples of the squared gradient of each
    example's loss (one row at a time, as EWC defines it per sample, not per batch; Kirkpatrick
    et al. 2017). `loss(output, targets)` is the mean loss of one row."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training = model.training
    model.eval()
    count = 0
    for x, y in batches:
        for i in range(x.shape[0]):
            model.zero_grad(set_to_none=True)
            loss(model(x[i: i + 1]), y[i: i + 1]).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach().float() ** 2
            count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(1, count) for n, f in fisher.items()}
