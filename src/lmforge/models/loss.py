"""The language-model loss: next-token cross-entropy in float32, compiled when it pays.

Every consumer (the training loop, evaluation, the live monitors) uses this one definition, so a
loss printed anywhere means the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmforge.console import show
from lmforge.runtime import can_compile

IGNORE_INDEX = -100


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy per token, in float32 whatever the autocast dtype; targets of -100 are ignored."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction=reduction,
                           ignore_index=IGNORE_INDEX)


# The eager loss copies the logits to float32 and keeps a float32 log-softmax for backward, all
# memory-bound, plus a dozen small ops; compiled, it runs fused. Measured on this CPU
# (bench/loss_compile.py, bench/train_throughput.py): the step saves ~5 ns per logit element (a
# sixth of the step at 84 rows, over half at 50304) and the first compile costs ~10 s. So
# `auto` compiles when a run's logits (steps x micro-batches x rows x tokens x vocabulary) reach
# 2e9 elements, where the saving is about the compile time: the default preset's 2000 steps do,
# a short test run does not. The saving is the float32 copy and its memory traffic, so `auto`
# compiles only logits in a lower precision (bf16/fp16 autocast); float32 logits stay eager. That
# also keeps clear of a crash seen with torch 2.13.0 on an AVX-512 CPU without AMX: inductor's
# float32 backward of this loss at logits (16, 64, 2048), inside a training step, aborted the
# process with heap corruption ("double free or corruption"); bf16 at the same shape, and float32
# under ATEN_CPU_CAPABILITY=avx2, ran.
COMPILE_LOSS_MIN_ELEMENTS = 2e9


def _pays(calls: int, logits_numel: int, low_precision: bool) -> bool:
    return low_precision and calls * logits_numel >= COMPILE_LOSS_MIN_ELEMENTS


class LossFn:
    """lm_loss, compiled or not per train.compile_loss. In `auto` the choice waits for the first
    logits (their size, dtype and device), given `calls` (micro-batches in the run), and a compile that
    fails falls back to eager with a message instead of stopping the run."""

    def __init__(self, mode: str, compile_model: bool, calls: int = 1) -> None:
        self.mode = "on" if mode == "auto" and compile_model else mode
        self.calls = calls
        self.numel = 0  # logits per call, seen at the first call
        self.low_precision = False  # whether those logits are below float32, seen then too
        self.fn: Callable[..., torch.Tensor] | None = None if self.mode == "auto" else (
            torch.compile(lm_loss) if self.mode == "on" else lm_loss)

    def replan(self, calls: int) -> None:
        """The run turned out `calls` micro-batches long (a time budget fixed its steps): an `auto`
        choice made for another length is made again as a run of this length makes it, and kept
        when it comes out the same (a second compile would cost as much as the first)."""
        self.calls = calls
        if self.mode == "auto" and self.fn is not None and _pays(calls, self.numel, self.low_precision) != self.compiled:
            self.fn = None

    @property
    def compiled(self) -> bool:
        return self.fn is not None and self.fn is not lm_loss

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.fn is None:
            self.numel, self.low_precision = logits.numel(), logits.dtype in (torch.bfloat16, torch.float16)
            pays = _pays(self.calls, self.numel, self.low_precision)
            self.fn = torch.compile(lm_loss) if pays and can_compile(logits.device) else lm_loss
        if self.mode != "auto" or not self.compiled:
            return self.fn(logits, targets, reduction)
        try:
            return self.fn(logits, targets, reduction)
        except Exception as exc:  # noqa: BLE001 -- inductor reports a broken toolchain in many ways
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            why = (f"compiling the loss failed ({type(exc).__name__}: {first}); training on with the "
                   "eager loss. train.compile_loss=off skips the attempt.")
            show((why, "yellow"))
            self.fn = lm_loss
            return lm_loss(logits, targets, reduction)


def class_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
               label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of class logits (batch, classes) against labels (batch,), in float32; label
    smoothing as Szegedy et al. 2016 define it (PyTorch's own); `weight` per class."""
    if weight is not None:
        weight = weight.to(logits.device)
    return F.cross_entropy(logits.float(), targets, weight=weight, reduction=reduction, ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)
