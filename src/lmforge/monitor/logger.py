"""The Monitor: one callback that feeds every sink (and the console) from the training loop.

It adds what the loop does not know: MFU, ETA, the training statistics and their histograms,
text samples at evaluation, and the hparams/final metrics at the end.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lmforge.monitor.sinks import Sink
from lmforge.monitor.stats import TrainingStats
from lmforge.train.loop import Callback

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer

_PEAK_CACHE: dict[tuple[str, str], float] = {}


def flops_per_token(model: nn.Module, n_layer: int, n_head: int, n_embd: int, block_size: int) -> float:
    """Training FLOPs per token, nanoGPT's estimate: 6N + 12·L·H·Q·T (N without position embeddings)."""
    seen, n = set(), 0
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel() if "pos_emb" not in name else 0
    return 6 * n + 12 * n_layer * n_head * (n_embd // n_head) * block_size


def measure_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """This machine's measured matmul rate (median of 5), the MFU denominator when none is given.
    A measured rate, not a spec sheet: the CPU baselines in docs/benchmarks.md use the same."""
    key = (str(device), str(dtype))
    if key not in _PEAK_CACHE:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = []
        for _ in range(6):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        _PEAK_CACHE[key] = 2 * n**3 / statistics.median(times[1:])
    return _PEAK_CACHE[key]


class Monitor(Callback):
    """Fans the loop's events out to the sinks; computes MFU, ETA, statistics and histograms."""

    def __init__(self, sinks: list[Sink], stats: TrainingStats | None = None, histogram_interval: int = 0,
                 flops_token: float | None = None, peak_flops: float | None = None,
                 hparams: Mapping[str, Any] | None = None, panel: Any = None,
                 sampler: Callable[[nn.Module], str] | None = None) -> None:
        self.sinks, self.stats, self.histogram_interval = sinks, stats, histogram_interval
        self.flops_token, self.peak_flops = flops_token, peak_flops
        self.hparams = dict(hparams or {})
        self.panel, self.sampler = panel, sampler
        self.start_step = 0
        self.start_time = 0.0
        self.last: dict[str, Any] = {}
        self._hooks: list[Any] = []

    def _each(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            getattr(sink, method)(*args)

    def on_train_start(self, trainer: Trainer) -> None:
        self.start_step, self.start_time = trainer.step, time.time()
        if self.stats is not None and self.stats.interval > 0:
            self.stats.attach(trainer.raw_model, trainer.optimizer, lambda: trainer.step)
        if self.histogram_interval:
            # gradients exist only between backward and the loop's zero_grad: read them right
            # after the optimizer step
            last = trainer.optimizers()[-1]
            self._hooks.append(last.register_step_post_hook(
                lambda opt, args, kwargs: self._maybe_histograms(trainer)))
        if self.panel is not None:
            self.panel.start(trainer.step, trainer.cfg.steps)

    def _maybe_histograms(self, trainer: Trainer) -> None:
        step = trainer.step + 1  # the loop counts the step after the optimizer has taken it
        if step % self.histogram_interval == 0:
            self._histograms(trainer.raw_model, step)

    def _flush_stats(self) -> None:
        for step, values in self.stats.pop() if self.stats is not None else []:
            self._each("log", "stats", step, values)

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._flush_stats()
        step = metrics["step"]
        extra: dict[str, Any] = {}
        if self.flops_token and self.peak_flops:
            extra["mfu"] = metrics["tokens_per_s"] * self.flops_token / self.peak_flops
        done = step - self.start_step
        if done > 0:
            extra["eta_s"] = (trainer.cfg.steps - step) * (time.time() - self.start_time) / done
        record = {**metrics, **extra}
        self.last.update(record)
        self._each("log", "train", step, record)
        if self.panel is not None:
            self.panel.update(record, trainer.cfg.steps)

    def _histograms(self, model: nn.Module, step: int) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for name, p in model.named_parameters():
            tensors[f"weights/{name}"] = p
            if p.grad is not None:
                tensors[f"grads/{name}"] = p.grad
        self._each("histograms", step, tensors)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        step = metrics["step"]
        self.last.update({"val_loss": metrics.get("val_loss"), "best_val_loss": trainer.best_val})
        self._each("log", "eval", step, metrics)
        if self.sampler is not None:
            self._each("text", step, "samples", self.sampler(trainer.raw_model))
        if self.panel is not None:
            self.panel.update_eval(metrics, trainer.best_val)

    def on_train_end(self, trainer: Trainer) -> None:
        self._flush_stats()
        if self.stats is not None:
            self.stats.detach()
        for hook in self._hooks:
            hook.remove()
        final = {"step": trainer.step, "loss": self.last.get("loss"), "val_loss": trainer.last_val,
                 "best_val_loss": trainer.best_val}
        self._each("close", self.hparams, {k: v for k, v in final.items() if v is not None})
        if self.panel is not None:
            self.panel.stop(trainer.step)


def flat_hparams(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{"train": {"lr": ..}} -> {"train.lr": ..}; only scalars (TensorBoard's hparams plugin rule)."""
    out: dict[str, Any] = {}
    for section, values in sections.items():
        for key, value in values.items():
            if isinstance(value, Mapping):
                continue
            out[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
