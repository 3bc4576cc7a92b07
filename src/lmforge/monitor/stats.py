"""Training statistics at an interval, collected through hooks so the loop stays untouched.

Every `interval` steps (and only then) this records:
  grad_norm/<param>    gradient norm per parameter tensor, as the optimizer saw it (after clipping)
  param_norm/<param>   parameter norm after the step
  update_ratio/<param> ||w_after - w_before|| / ||w_before||: the size of the step relative to
                       the weight (healthy around 1e-3; far outside [1e-5, 1e-1] is a flag)
  act_mean/<block>, act_std/<block>   block output (residual stream) statistics
  act_zero/<block>     fraction of near-zero activations after the block's MLP non-linearity
  attn_entropy/<block> mean entropy of the attention rows, in nats (low = peaked attention)
  grad_norm/global, param_norm/global, update_ratio/global

How: optimizer step pre/post hooks (torch's `register_step_pre_hook`) snapshot the weights just
before the step and measure just after; forward hooks on the blocks are registered just before a
statistics step and removed right after it, so other steps run with no forward hooks at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

ZERO_EPS = 1e-3  # |a| below this counts as a "near-zero" activation (dead-unit detector)
ENTROPY_ROWS = 2  # sequences used for attention entropy (its cost grows with t squared)
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The repeated blocks of a model: the children of its largest ModuleList."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        return []
    return [(f"{best[0]}.{i}", block) for i, block in enumerate(best[1])]


def mlp_down_projection(block: nn.Module) -> nn.Module | None:
    """The Linear after the MLP's non-linearity (its input is the activation), by common names."""
    mlp = getattr(block, "mlp", None) or getattr(block, "ffn", None)
    for name in ("proj", "c_proj", "down_proj", "w2", "fc2"):
        down = getattr(mlp, name, None) if mlp is not None else None
        if isinstance(down, nn.Linear):
            return down
    return None


@torch.no_grad()
def attention_entropy(attn: nn.Module, x: torch.Tensor) -> float | None:
    """Mean entropy of causal attention rows, recomputed from the module's own q/k projection.
    Models that use fused attention never materialise the weights, so this is the only way to see
    them; it works for modules with a `qkv` Linear and `n_head` (our GPT), else returns None."""
    qkv, n_head = getattr(attn, "qkv", None), getattr(attn, "n_head", None)
    if not isinstance(qkv, nn.Linear) or not isinstance(n_head, int) or x.ndim != 3:
        return None
    b, t, c = x.shape
    if qkv.out_features != 3 * c or c % n_head or any(
            getattr(attn, name, None) is not None for name in ("q_norm", "k_norm", "rotary", "rope")):
        return None  # a layout this recomputation would get wrong (GQA, QK-norm, rotary)
    x = x[:ENTROPY_ROWS]  # the scores are rows x heads x t x t: a few rows are plenty
    b = x.shape[0]
    q, k, _ = qkv(x).float().view(b, t, 3, n_head, c // n_head).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(c // n_head)
    mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
    p = scores.masked_fill(mask, float("-inf")).softmax(-1)
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    return float(ent.mean())


class TrainingStats:
    """Collects the statistics above; `attach` once, then `pop()` what has been measured."""

    def __init__(self, interval: int, entropy: bool = True) -> None:
        self.interval = interval
        self.entropy = entropy
        self.active = False
        self.pending: list[tuple[int, dict[str, float]]] = []
        self._before: list[torch.Tensor] | None = None
        self._handles: list[Any] = []
        self._forward: list[Any] = []
        self._model: nn.Module | None = None
        self._acts: dict[str, float] = {}
        self._names: list[str] = []
        self._params: list[torch.Tensor] = []
        self._step_of: Callable[[], int] = lambda: 0

    def due(self, step: int) -> bool:
        return self.interval > 0 and step > 0 and step % self.interval == 0

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, step_of: Callable[[], int]) -> None:
        """Register the hooks. `step_of()` returns the number of steps completed so far."""
        seen: set[int] = set()
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in seen:  # tied weights once
                seen.add(id(p))
                self._names.append(name)
                self._params.append(p)
        self._step_of = step_of
        # a combined optimizer (e.g. Muon + AdamW) steps its parts in turn: snapshot before the
        # first part, measure after the last
        parts = list(getattr(optimizer, "optimizers", [optimizer]))
        self._handles.append(parts[0].register_step_pre_hook(self._pre_step))
        self._handles.append(parts[-1].register_step_post_hook(self._post_step))
        self._model = model
        self._set_active(self.due(step_of() + 1))

    def _set_active(self, on: bool) -> None:
        """Forward hooks exist only for a statistics step: a module with hooks takes PyTorch's
        slower call path, which measurably costs every step (bench/monitor_overhead.py)."""
        self.active = on
        if on and not self._forward:
            self._forward = list(self._register_forward(self._model))
        elif not on:
            for handle in self._forward:
                handle.remove()
            self._forward = []

    def _register_forward(self, model: nn.Module) -> Any:
        for bname, block in find_blocks(model):
            yield block.register_forward_hook(self._block_hook(bname))
            acts = [sub for sub in block.modules() if isinstance(sub, ACTIVATIONS)]
            for sub in acts:
                yield sub.register_forward_hook(self._act_hook(bname))
            down = mlp_down_projection(block)
            if not acts and down is not None:  # functional activation: read it as the down-projection's input
                yield down.register_forward_pre_hook(self._down_hook(bname))
            attn = getattr(block, "attn", None)
            if self.entropy and attn is not None:
                yield attn.register_forward_pre_hook(self._attn_hook(bname))

    def detach(self) -> None:
        self._set_active(False)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # hooks ---------------------------------------------------------------
    def _block_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self.active and module.training and isinstance(out, torch.Tensor):
                with torch.no_grad():
                    o = out.detach().float()
                    self._acts[f"act_mean/{name}"] = float(o.mean())
                    self._acts[f"act_std/{name}"] = float(o.std())
        return hook

    def _act_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self.active and module.training and isinstance(out, torch.Tensor):
                with torch.no_grad():
                    self._acts[f"act_zero/{name}"] = float((out.detach().abs() < ZERO_EPS).float().mean())
        return hook

    def _down_hook(self, name: str) -> Callable:
        act = self._act_hook(name)

        def hook(module: nn.Module, args: Any) -> None:
            if args:
                act(module, args, args[0])
        return hook

    def _attn_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any) -> None:
            if self.active and module.training and args and isinstance(args[0], torch.Tensor):
                with torch.no_grad():
                    ent = attention_entropy(module, args[0].detach())
                if ent is not None:
                    self._acts[f"attn_entropy/{name}"] = ent
        return hook

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.active:
            with torch.no_grad():
                self._before = [p.detach().clone() for p in self._params]

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        step = self._step_of() + 1  # the loop counts the step after the optimizer has taken it
        if self.active and self._before is not None:
            self.pending.append((step, self._measure()))
            self._before = None
        self._set_active(self.due(step + 1))

    # measurement ------------------------------------------------------------
    @torch.no_grad()
    def _measure(self) -> dict[str, float]:
        assert self._before is not None
        out: dict[str, float] = dict(self._acts)
        self._acts = {}
        with_grad = [(n, p) for n, p in zip(self._names, self._params, strict=True) if p.grad is not None]
        if with_grad:
            gnorms = torch._foreach_norm([p.grad for _, p in with_grad])
            for (name, _), g in zip(with_grad, gnorms, strict=True):
                out[f"grad_norm/{name}"] = float(g)
            out["grad_norm/global"] = float(torch.linalg.vector_norm(torch.stack(gnorms)))
        pnorms = torch._foreach_norm(self._params)
        deltas = torch._foreach_sub(self._params, self._before)
        dnorms = torch._foreach_norm(deltas)
        bnorms = torch._foreach_norm(self._before)
        for name, pn, dn, bn in zip(self._names, pnorms, dnorms, bnorms, strict=True):
            out[f"param_norm/{name}"] = float(pn)
            out[f"update_ratio/{name}"] = float(dn / bn) if float(bn) > 0 else 0.0
        pg = torch.linalg.vector_norm(torch.stack(pnorms))
        bg = torch.linalg.vector_norm(torch.stack(bnorms))
        out["param_norm/global"] = float(pg)
        out["update_ratio/global"] = float(torch.linalg.vector_norm(torch.stack(dnorms)) / bg) if bg > 0 else 0.0
        return out

    def pop(self) -> list[tuple[int, dict[str, float]]]:
        """(step, statistics) of every statistics step since the last call, oldest first."""
        out, self.pending = self.pending, []
        return out
