"""What the loop minimises, when it is not plain next-token prediction.

The loop (loop.py) runs one objective: by default the LM loss on (x, y) windows. A caller that
trains something else through the same loop hands in an `Objective`: another loss over the
model's output and the batch's targets (a classification loss, a masked-LM loss is the LM loss
on masked targets and needs none), penalty terms on the weights added once per optimizer step
(L1, EWC, L2 toward the starting weights: train/penalty.py), and its own validation loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

# (output, targets, reduction) -> loss; with reduction "sum" the loop divides by the batch's
# count of targets that are not IGNORE_INDEX
LossCall = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
# the model -> a scalar added to the loss of every optimizer step
Penalty = Callable[[nn.Module], torch.Tensor]


@dataclass
class Objective:
    """The loss, the penalties and the validation loss of a training run (None: the LM's own)."""

    loss: LossCall | None = None
    penalties: list[Penalty] = field(default_factory=list)
    val_loss: Callable[[nn.Module], float] | None = None
