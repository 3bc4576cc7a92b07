"""Signal propagation at init (or at any step): per-layer activation std going forward and gradient
norms going backward, on a real batch, so vanishing or exploding signals show before training.

Flags follow AUTOTRAINER (Zhang et al., ICSE 2021): vanishing when the first-to-last
layer gradient-norm ratio is below 1e-3, exploding when it is above 70 or anything is not finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.models.loss import lm_loss

VANISH_RATIO, EXPLODE_RATIO = 1e-3, 70.0


def _tensor(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out  # RNN layers return (output, state)


def signal_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Forward and backward once on (x, y); returns rows per layer and a verdict. Leaves the
    model's weights, gradients and train/eval mode as they were."""
    layers: list[tuple[str, nn.Module]] = [("embedding", model.tok_emb)]
    layers += [(f"block {i}", b) for i, b in enumerate(model.blocks)]
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for name, mod in layers:
        def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            t = _tensor(out)
            if t.requires_grad:
                t.retain_grad()
            acts[name] = t
        handles.append(mod.register_forward_hook(hook))
    saved = {id(p): p.grad for p in model.parameters()}
    was_training = model.training
    model.eval()  # no dropout: measure the signal, not the noise
    try:
        for p in model.parameters():
            p.grad = None
        model.reset_state()
        logits = model(x)
        loss = lm_loss(logits, y)
        loss.backward()
        rows = []
        for name, mod in layers:
            t = acts[name]
            grads = [p.grad.float().norm() for p in mod.parameters() if p.grad is not None]
            rows.append({"layer": name, "act_std": float(t.detach().float().std()),
                         "act_grad_norm": float(t.grad.norm()) if t.grad is not None else math.nan,
                         "param_grad_norm": float(torch.linalg.vector_norm(torch.stack(grads))) if grads else math.nan})
    finally:
        for h in handles:
            h.remove()
        for p in model.parameters():
            p.grad = saved[id(p)]
        model.train(was_training)
    return {"loss": loss.item(), "rows": rows, **verdict(rows)}


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AUTOTRAINER's gradient rules on the first and last block."""
    blocks = [r for r in rows if r["layer"] != "embedding"]
    first, last = blocks[0]["param_grad_norm"], blocks[-1]["param_grad_norm"]
    values = [v for r in rows for v in (r["act_std"], r["param_grad_norm"])]
    if not all(math.isfinite(v) for v in values):
        return {"status": "exploding", "reason": "a non-finite activation or gradient", "ratio": math.nan}
    ratio = first / last if last > 0 else math.inf
    if ratio < VANISH_RATIO:
        return {"status": "vanishing", "ratio": ratio,
                "reason": f"first/last block gradient-norm ratio {ratio:.2e} < {VANISH_RATIO:g}"}
    if ratio > EXPLODE_RATIO:
        return {"status": "exploding", "ratio": ratio,
                "reason": f"first/last block gradient-norm ratio {ratio:.3g} > {EXPLODE_RATIO:g}"}
    return {"status": "healthy", "ratio": ratio, "reason": f"first/last block gradient-norm ratio {ratio:.3g}"}


def plot_signal(result: dict[str, Any], path: Path, title: str = "",
                label: Callable[[str], str] = str) -> Path:
    """Two panels: activation std (forward) and gradient norms (backward) per layer, log scale.
    `label` translates the figure's words (the report draws it in Chinese too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = [label(r["layer"]) if r["layer"] == "embedding" else r["layer"].replace("block", label("block"))
             for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(names, [r["act_std"] for r in rows], marker="o")
    a.set_title(label("forward: activation std"))
    b.plot(names, [r["act_grad_norm"] for r in rows], marker="o", label=label("d loss / d output"))
    b.plot(names, [r["param_grad_norm"] for r in rows], marker="s", label=label("parameter gradients"))
    b.set_title(label("backward: gradient norm"))
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.set_yscale("log")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.suptitle(f"{title} — {label(result['status'])}: {result['reason']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
