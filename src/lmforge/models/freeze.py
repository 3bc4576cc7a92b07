"""Freezing the bottom of a model: embeddings and the first k blocks (Yosinski et al. 2014's
transferability experiment freezes the first n layers of a copied network)."""

from __future__ import annotations

from torch import nn

from lmforge.errors import LmforgeError
from lmforge.models.common import layer_depth


def freeze(model: nn.Module, n_layer: int, embeddings: bool, blocks: int) -> dict[str, int]:
    """Turn off gradients for the embeddings (depth 0) and blocks 0..blocks-1 (depths 1..blocks).
    The optimizer skips parameters without gradients, so their weights stay bit-identical.
    Returns parameter counts, frozen and trainable."""
    if not 0 <= blocks <= n_layer:
        raise LmforgeError(f"cannot freeze the first {blocks} blocks of a model with {n_layer}",
                           f"choose 0..{n_layer}")
    frozen = trainable = 0
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        depth = layer_depth(name, n_layer)
        if (embeddings and depth == 0) or 1 <= depth <= blocks:
            p.requires_grad_(False)
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return {"frozen": frozen, "trainable": trainable}
