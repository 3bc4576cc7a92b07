"""The one training loop. Pretraining, fine-tuning, LR range tests and cross-validation folds all
use it; they differ by configuration and by callbacks, never by a copy of this loop.

One optimizer step sees one global batch, drawn whole from the seeded loader by every process;
each process keeps its rows and splits them into micro-batches. The loss is summed over tokens
and divided by the global batch's token count, so any split into micro-batches and processes
gives the same loss and gradients (the bug of transformers #37766 cannot happen here).
"""

from __future__ import annotations

import contextlib
import copy
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lmforge.config.schema import TrainConfig
from lmforge.errors import LmforgeError
from lmforge.models.loss import IGNORE_INDEX, LossFn, lm_loss
from lmforge.runtime import autocast
from lmforge.tokens.loader import RandomWindows, spread_windows
from lmforge.train import checkpoint as ckpt
from lmforge.train import sharded
from lmforge.train.distributed import DistInfo, all_reduce_sum, barrier, unwrap
from lmforge.train.objective import Objective
from lmforge.train.schedule import lr_at as schedule_lr_at

if TYPE_CHECKING:
    from lmforge.config.schema import Config
    from lmforge.rundir import RunDir


@torch.no_grad()
def estimate_loss(model: nn.Module, data: np.ndarray, block_size: int, batch_size: int,
                  batches: int, device: torch.device, dtype: str) -> float:
    """Mean loss over `batches` batches of windows spread evenly over a split (the same windows
    each time)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in spread_windows(data, block_size, batch_size, batches * batch_size):
        with autocast(device, dtype):
            logits = model(x.to(device))
        total += lm_loss(logits, y.to(device), "sum").item()
        count += y.numel()
    model.train(was_training)
    return total / max(1, count)


# ------------------------------------------------------------------ batch arithmetic


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's global batch is cut: rows = micro x accum x world."""

    rows: int
    micro: int
    accum: int
    world: int


def plan_batch(rows: int, cfg: TrainConfig, world: int = 1) -> BatchPlan:
    """Check that the global batch divides into processes and micro-batches, or say how to fix it."""
    if rows % world:
        raise LmforgeError(f"train.batch_size={rows} does not divide among {world} processes",
                           f"use a multiple of {world}")
    share = rows // world
    micro, accum = cfg.micro_batch_size, cfg.grad_accum
    if micro is not None:
        if share % micro:
            raise LmforgeError(
                f"train.micro_batch_size={micro} does not divide the {share} sequences per process "
                f"(batch_size {rows} / {world} processes)",
                f"choose a divisor of {share}: {', '.join(str(d) for d in range(1, share + 1) if share % d == 0)}")
        if accum is not None and micro * accum != share:
            raise LmforgeError(f"train.micro_batch_size={micro} x train.grad_accum={accum} != {share} sequences "
                               f"per process", "set only one of the two")
        return BatchPlan(rows, micro, share // micro, world)
    if accum is not None:
        if share % accum:
            raise LmforgeError(f"train.grad_accum={accum} does not divide the {share} sequences per process",
                               "choose a divisor, or set train.micro_batch_size instead")
        return BatchPlan(rows, share // accum, accum, world)
    return BatchPlan(rows, share, 1, world)


def global_rows(cfg: TrainConfig, block_size: int) -> int:
    """Sequences per optimizer step, from batch_tokens when it is set."""
    if cfg.batch_tokens is None:
        return cfg.batch_size
    if cfg.batch_tokens % block_size:
        raise LmforgeError(f"train.batch_tokens={cfg.batch_tokens} is not a multiple of model.block_size={block_size}",
                           f"use e.g. {max(1, cfg.batch_tokens // block_size) * block_size}")
    return cfg.batch_tokens // block_size


def warmup_rows(step: int, plan: BatchPlan, warmup_steps: int) -> int:
    """Batch-size warmup (GPT-3, Brown et al. 2020): grow the global batch linearly from one
    micro-batch per process to the full batch, in whole micro-batches."""
    if not warmup_steps or step >= warmup_steps:
        return plan.rows
    unit = plan.micro * plan.world
    units = max(1, math.ceil(plan.rows // unit * (step + 1) / warmup_steps))
    return min(plan.rows, units * unit)


# The signals after which training saves a checkpoint at the next step boundary and stops.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What a callback may ask every process to do together (Trainer.request).
REQUESTS = ("eval", "save")


# ------------------------------------------------------------------ callbacks


class Callback:
    """Override the events you need. Set `trainer.should_stop = True` to end training early."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_checkpoint(self, trainer: Trainer, path: Path) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


# What the pipeline hands the train stage: (run, cfg, model, resume step, show progress) -> the
# callbacks of rank 0. Monitoring (monitor.build_callbacks) is one; search, the doctor and
# fine-tuning add theirs the same way, so the loop never imports them.
CallbackFactory = Callable[["RunDir", "Config", "nn.Module", int, bool], list[Callback]]


# ------------------------------------------------------------------ the trainer


class Trainer:
    """Runs `cfg.steps` optimizer steps of next-token prediction with callbacks on named events.

    `model` may be wrapped (DDP, FSDP2, torch.compile: see distributed.wrap_model); checkpoints
    always hold the plain model's full weights. `loader.batch_size` is the global batch.
    """

    def __init__(self, model: nn.Module, optimizer: Any, loader: RandomWindows,
                 cfg: TrainConfig, val_data: np.ndarray | None, checkpoint_dir: Path,
                 callbacks: list[Callback] | None = None,
                 lr_at: Callable[[int, TrainConfig], float] = schedule_lr_at,
                 extra_state: dict[str, Any] | None = None,
                 dist: DistInfo | None = None, objective: Objective | None = None) -> None:
        self.model, self.optimizer, self.loader, self.cfg = model, optimizer, loader, cfg
        self.raw_model = unwrap(model)
        self.val_data, self.checkpoint_dir = val_data, checkpoint_dir
        self.callbacks = callbacks or []
        self.lr_at = lr_at
        # called at step `replan_at` with the wall time and count of the steps since the first;
        # returns the next step to call it at, or None (train/budget.py: a time budget's step
        # count, measured again on the run's real steps)
        self.replan: Callable[[Trainer, float, int], int | None] | None = None
        self.replan_at: int | None = None
        self.extra_state = extra_state or {}
        self.dist = dist or DistInfo()
        self.device = next(self.raw_model.parameters()).device
        self.plan = plan_batch(loader.batch_size, cfg, self.dist.world)
        if cfg.dtype == "float16" and self.device.type != "cuda":
            raise LmforgeError(f"train.dtype=float16 needs a CUDA GPU (this run is on {self.device.type})",
                               "use train.dtype=bfloat16 on CPU: it needs no loss scaling")
        if self.raw_model.carries_state and (
                self.plan.accum > 1 or self.plan.world > 1 or cfg.batch_warmup_steps):
            raise LmforgeError("this model carries state across batches (truncated BPTT): each row must meet "
                               "the same rows every step, so gradient accumulation, several processes and "
                               "batch-size warmup are not available for it",
                               "unset train.micro_batch_size/grad_accum/batch_warmup_steps and run one process")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.dtype == "float16" else None
        self.objective = objective or Objective()
        self.loss_fn = self.objective.loss or LossFn(cfg.compile_loss, cfg.compile, calls=cfg.steps * self.plan.accum)
        self.last_penalty: float | None = None
        self.step = 0
        self.tokens_seen = 0
        self.should_stop = False
        self.interrupted = False
        self.stop_signal: int | None = None  # the signal that interrupted training (STOP_SIGNALS)
        self.bad_steps = 0
        self.skipped_steps = 0
        self.last_loss: float | None = None
        self.first_loss: float | None = None  # the first step fit() ran: what divergence is measured from
        self.last_lr = 0.0
        self.last_val: float | None = None
        self.last_val_step: int | None = None
        self.best_val: float | None = None
        self.carried: dict[str, torch.Tensor] = {}  # a recurrent model's state from the checkpoint resumed
        self._requests: dict[str, list[Callable[[Any], None] | None]] = {}  # see request()

    # events ----------------------------------------------------------
    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # state -------------------------------------------------------------
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return list(getattr(self.optimizer, "optimizers", [self.optimizer]))

    @property
    def _sharded(self) -> bool:
        return self.cfg.checkpoint_format == "sharded"

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Model and optimizer state dicts keyed by parameter name. Full format: gathered tensors,
        the same from one process, DDP or FSDP. Sharded format: each process's own shards (DCP
        records the layout). Either way a run resumes on any number of processes."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=not self._sharded,
                                cpu_offload=self.dist.mode == "fsdp" and not self._sharded)
        model_sd = get_model_state_dict(self.raw_model, options=opts)
        optim_sd = get_optimizer_state_dict(self.raw_model, self.optimizers(), options=opts)
        return model_sd, optim_sd

    def _rng_state(self) -> dict[str, torch.Tensor]:
        rng = {"torch": torch.get_rng_state(), "loader": self.loader.gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def snapshot(self) -> dict[str, Any]:
        """Everything a training step changes, copied in memory: weights, optimizer state, step
        and counters, RNG and loader position. `rollback` puts it back, so steps taken in between
        (a speed probe; later, a repair that retries) leave no trace."""
        return copy.deepcopy({
            "model": self.raw_model.state_dict(), "optim": [o.state_dict() for o in self.optimizers()],
            "rng": torch.get_rng_state(), "loader": self.loader.state_dict(),
            "counters": {k: getattr(self, k) for k in ("step", "tokens_seen", "bad_steps", "skipped_steps",
                                                        "last_loss", "last_lr")},
            "carried": self.raw_model.carried_state()})

    def rollback(self, snap: dict[str, Any]) -> None:
        """Return to a `snapshot` exactly."""
        snap = copy.deepcopy(snap)
        self.raw_model.load_state_dict(snap["model"])
        for opt, state in zip(self.optimizers(), snap["optim"], strict=True):
            opt.load_state_dict(state)
        torch.set_rng_state(snap["rng"])
        self.loader.load_state_dict(snap["loader"])
        for key, value in snap["counters"].items():
            setattr(self, key, value)
        self.raw_model.load_carried_state(snap["carried"])
        self.optimizer.zero_grad(set_to_none=True)

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p.detach()).all()) for p in self.raw_model.parameters())

    def save(self) -> Path:
        """Write checkpoints/step-N (rank 0 writes, every rank taking part in gathering; in the
        sharded format every rank writes its own shard first)."""
        model_sd, optim_sd = self._state()
        good = self.weights_finite() and (self.last_loss is None or math.isfinite(self.last_loss))
        state = {"loader_batches": self.loader.batches, "best_val": self.best_val, "last_val": self.last_val,
                 "val_loss": self.last_val if self.last_val_step == self.step else None,
                 "tokens_seen": self.tokens_seen, "loss": self.last_loss, "good": good,
                 "skipped_steps": self.skipped_steps, "world_size": self.dist.world,
                 "optimizer": self.cfg.optimizer,
                 "scaler": self.scaler.state_dict() if self.scaler else None, **self.extra_state}
        if not good:
            state["why"] = "non-finite loss or weights"
        path = self.checkpoint_dir / f"{ckpt.STEP_PREFIX}{self.step}"
        if self._sharded:
            staging = ckpt.staging_dir(self.checkpoint_dir, self.step)
            if self.dist.is_main:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
            barrier(self.dist)
            sharded.save(staging, model_sd, optim_sd)
            model_sd = optim_sd = None  # already written
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.checkpoint_dir, self.step, model_sd, optim_sd, state,
                                        self._rng_state(), self.cfg.keep_checkpoints,
                                        carried=self.raw_model.carried_state())
        barrier(self.dist)
        self._emit("on_checkpoint", path)
        return path

    def restore(self, path: Path) -> None:
        """Continue exactly from a checkpoint: weights, optimizer, step, RNG and loader position."""
        import json

        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        state = json.loads((path / "state.json").read_text())
        saved = state.get("optimizer")  # absent in checkpoints written before it was recorded
        if saved is not None and saved != self.cfg.optimizer:
            raise LmforgeError(f"checkpoint {path} holds {saved} optimizer state; this run has "
                               f"train.optimizer={self.cfg.optimizer}",
                               f"resume with train.optimizer={saved}, or train afresh without --resume")
        if sharded.is_sharded(path):  # DCP re-splits every tensor for this run's processes
            ckpt.check_fits(path, sharded.model_shapes(path), self.raw_model)
            tensors, optim_sd = self._state()
            sharded.load(path, tensors, optim_sd)
            opts = StateDictOptions(full_state_dict=False, strict=False)
        else:
            tensors = load_file(str(path / "model.safetensors"))
            ckpt.check_fits(path, {k: tuple(v.shape) for k, v in tensors.items()}, self.raw_model)
            optim_sd = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
            opts = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(self.raw_model, tensors, options=opts)
        settings = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            set_optimizer_state_dict(self.raw_model, self.optimizers(), optim_sd, options=opts)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise LmforgeError(f"the optimizer state in {path} does not fit train.optimizer={self.cfg.optimizer} "
                               f"({type(exc).__name__}: {exc})",
                               "resume with the optimizer of the run that wrote it, or train afresh "
                               "without --resume") from None
        # loading also copied the saved param groups (weight decay, betas, eps, lr_mult): put this
        # config's back, since a resume starts again from the config file (docs/monitoring.md)
        for group, own in zip(self.optimizer.param_groups, settings, strict=True):
            group.update(own)
        rng = load_file(str(path / "rng.safetensors"))
        self.step = int(state["step"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.best_val, self.last_val = state.get("best_val"), state.get("last_val")
        # evaluated at this very step: a save at this step (a finished run resumed) keeps val_loss
        self.last_val_step = self.step if state.get("val_loss") is not None else None
        self.last_loss = state.get("loss")
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.loader.load_state_dict({"batches": state["loader_batches"], "generator": rng["loader"]})
        carried = path / ckpt.CARRIED_FILE
        self.carried = load_file(str(carried)) if carried.is_file() else {}

    # requests from callbacks -------------------------------------------
    def request(self, action: str, then: Callable[[Any], None] | None = None) -> None:
        """Evaluate ("eval") or save a checkpoint ("save") on behalf of a callback, then call
        `then` with the validation loss or the checkpoint's path. Callbacks run on rank 0 alone,
        but under FSDP a forward pass or a save needs every process (one rank alone would wait
        for the others forever): so with several processes the request waits for the step
        boundary, where every rank learns of it and acts with rank 0. One process acts at once."""
        if action not in REQUESTS:
            raise ValueError(f"unknown request '{action}' (one of {', '.join(REQUESTS)})")
        if self.dist.world == 1:
            result = self._perform(action)
            if then is not None:
                then(result)
            return
        self._requests.setdefault(action, []).append(then)

    def _perform(self, action: str) -> Any:
        return self.evaluate() if action == "eval" else self.save()

    def _serve_requests(self) -> None:
        """At a step boundary, every process performs what any process's callbacks requested."""
        if self.dist.world == 1:
            return
        wanted = torch.tensor([float(a in self._requests) for a in REQUESTS], device=self.device)
        wanted = all_reduce_sum(wanted, self.dist)
        pending, self._requests = self._requests, {}
        for action, flag in zip(REQUESTS, wanted.tolist(), strict=True):
            if flag > 0:
                result = self._perform(action)
                for then in pending.get(action, []):
                    if then is not None:
                        then(result)

    # the loop ----------------------------------------------------------
    @property
    def can_validate(self) -> bool:
        return self.val_data is not None or self.objective.val_loss is not None

    def val_loss(self, model: nn.Module | None = None) -> float:
        """Validation loss of `model` (default: the one being trained) on the same windows every
        time, whatever the micro-batch split. Changes nothing and tells no callback, so plateau,
        early stopping and weight averaging can ask it as often as they need."""
        if self.objective.val_loss is not None:
            return self.objective.val_loss(model or self.raw_model)
        if self.val_data is None:
            raise LmforgeError("a validation loss needs validation data", "pass val_data to Trainer")
        return estimate_loss(model or self.raw_model, self.val_data, self.loader.block_size, self.plan.micro,
                             self.cfg.eval_batches * self.plan.rows // self.plan.micro, self.device, self.cfg.dtype)

    def evaluate(self) -> float:
        """The validation loss at this step, recorded (last, best) and sent to the callbacks."""
        loss = self.val_loss()
        self.last_val, self.last_val_step = loss, self.step
        self.best_val = loss if self.best_val is None else min(self.best_val, loss)
        self._emit("on_eval_end", {"step": self.step, "val_loss": loss})
        return loss

    def _set_lr(self) -> float:
        lr = self.lr_at(self.step, self.cfg)
        self.last_lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    def _sync_context(self, last: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last micro-batch (DDP no_sync / FSDP2)."""
        if self.dist.world == 1:
            return contextlib.nullcontext()
        if self.dist.mode == "fsdp":
            self.raw_model.set_requires_gradient_sync(last)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if last else unwrap_ddp(self.model).no_sync()

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Accumulate gradients of the global batch (x, y) for this process's rows. Returns the
        global-batch mean loss over this process's tokens (sum over processes = the batch loss)."""
        share = x.shape[0] // self.dist.world
        n_tokens = max(1, int((y != IGNORE_INDEX).sum()))
        lo = self.dist.rank * share
        xs, ys = x[lo: lo + share], y[lo: lo + share]
        # DDP and FSDP average gradients over processes; scaling by world turns that into a sum
        scale = self.dist.world / n_tokens
        total = torch.zeros((), device=self.device)
        chunks = max(1, share // self.plan.micro)
        for k in range(chunks):
            xm = xs[k * self.plan.micro: (k + 1) * self.plan.micro].to(self.device, non_blocking=True)
            ym = ys[k * self.plan.micro: (k + 1) * self.plan.micro].to(self.device, non_blocking=True)
            with self._sync_context(k == chunks - 1):
                with autocast(self.device, self.cfg.dtype):
                    if mask is None:
                        logits = self.model(xm)
                    else:  # document mask: rows of this process, then of this micro-batch
                        mm = mask[lo: lo + share][k * self.plan.micro: (k + 1) * self.plan.micro]
                        logits = self.model(xm, attn_mask=mm.to(self.device, non_blocking=True))
                loss_sum = self.loss_fn(logits, ym, "sum")
                scaled = loss_sum * scale
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss_sum.detach()
        return total / n_tokens

    def _grad_norm(self) -> torch.Tensor:
        """Total gradient norm; clip by norm or by value as configured (Pascanu et al. 2013)."""
        params = [p for p in self.raw_model.parameters() if p.grad is not None]
        if self.scaler:
            for opt in self.optimizers():
                self.scaler.unscale_(opt)
        grads = [p.grad for p in params]
        norm = torch.nn.utils.get_total_norm(grads)
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor partial norm -> the global one
            norm = norm.full_tensor()
        if self.cfg.grad_clip > 0:
            if self.cfg.clip_mode == "norm":
                torch.nn.utils.clip_grads_with_norm_(params, self.cfg.grad_clip, norm)
            else:
                torch.nn.utils.clip_grad_value_(params, self.cfg.grad_clip)
        return norm

    def train_step(self, batch: tuple[torch.Tensor, ...] | None = None) -> tuple[float, float]:
        """One optimizer step on `batch` (default: the loader's next global batch), at the LR of
        the current step; then the step counter moves on. Returns (loss, gradient norm).
        A step whose gradients are not finite is skipped, never applied (OLMo-core skips bad steps),
        though it still counts as a step."""
        if batch is None:
            self.loader.batch_size = warmup_rows(self.step, self.plan, self.cfg.batch_warmup_steps)
            batch = self.loader.next_with_mask() if self.cfg.doc_mask else self.loader.next()
        x, y, *rest = batch  # (x, y) or (x, y, document mask)
        lr = self._set_lr()
        loss_t = self.forward_backward(x, y, rest[0] if rest else None)
        if self.objective.penalties:  # once per optimizer step, on the plain model's weights
            penalty = torch.stack([f(self.raw_model).reshape(()) for f in self.objective.penalties]).sum()
            (self.scaler.scale(penalty) if self.scaler else penalty).backward()
            self.last_penalty = float(penalty.detach())
        norm = self._grad_norm()
        finite = bool(torch.isfinite(norm))
        if self.scaler:  # fp16: the scaler skips steps with inf gradients and lowers its scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
            finite = bool(torch.isfinite(loss_t))
        elif finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.tokens_seen += int(x.numel())
        if self.dist.world > 1:
            loss_t = all_reduce_sum(loss_t.detach().clone(), self.dist)
        loss = float(loss_t)
        if finite:
            self.bad_steps = 0
        else:
            self.bad_steps += 1
            self.skipped_steps += 1
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise LmforgeError(
                    f"loss or gradients were NaN/Inf for {self.bad_steps} steps in a row (up to step {self.step + 1}, "
                    f"lr {lr:.3g}); those steps were skipped and no checkpoint holds them",
                    "lower train.lr (`lmforge lr-find` suggests one), keep train.grad_clip > 0, "
                    "prefer bfloat16 to float16")
        self.step += 1
        return loss, float(norm)

    def _stop_requested(self, started: float) -> bool:
        """Stop flags agreed by every process (callbacks, Ctrl-C, SIGTERM, max_seconds): a signal
        that reached one rank stops them all at the same step boundary, so their saves match."""
        timed_out = self.cfg.max_seconds is not None and time.time() - started > self.cfg.max_seconds
        flag = self.should_stop or self.interrupted or timed_out
        if self.dist.world > 1:
            got = [float(self.stop_signal == s) for s in STOP_SIGNALS]
            t = all_reduce_sum(torch.tensor([float(flag), *got], device=self.device), self.dist)
            flag = bool(t[0] > 0)
            # the first signal in STOP_SIGNALS that any rank received (SIGTERM before SIGINT)
            self.stop_signal = next((s for s, n in zip(STOP_SIGNALS, t[1:].tolist(), strict=True) if n > 0),
                                    self.stop_signal)
            self.interrupted = self.stop_signal is not None
        return flag

    @contextlib.contextmanager
    def _catch_signals(self) -> Any:
        """SIGINT (Ctrl-C) or SIGTERM (what Slurm, Kubernetes, `docker stop` and torchrun send
        before they kill): finish the step, save a checkpoint and stop. A second Ctrl-C stops at
        once; a second SIGTERM changes nothing (a scheduler may signal every process of a job,
        and torchrun forwards its own), the save goes on."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.interrupted = True
            if self.stop_signal != signal.SIGTERM:  # SIGTERM wins: the scheduler is about to kill
                self.stop_signal = signum

        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, prev in previous.items():
                signal.signal(s, prev)

    def fit(self) -> None:
        self.model.train()
        self.raw_model.reset_state()  # truncated BPTT starts from zeros (a no-op for other models)
        if self.carried:  # resumed: truncated BPTT continues the streams' saved state
            self.raw_model.load_carried_state(self.carried)
            self.carried = {}
        self._emit("on_train_start")
        start, window_t, window_tokens = time.time(), time.time(), 0
        first_step, first_done = self.step, None
        with self._catch_signals():
            while self.step < self.cfg.steps:
                tokens_before = self.tokens_seen
                loss, grad_norm = self.train_step()
                lr = self.last_lr
                self.last_loss = loss
                if self.first_loss is None and math.isfinite(loss):
                    self.first_loss = loss
                window_tokens += self.tokens_seen - tokens_before
                if self.step % self.cfg.log_interval == 0 or self.step == self.cfg.steps:
                    now = time.time()
                    metrics = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                               "tokens_per_s": window_tokens / max(1e-9, now - window_t),
                               "elapsed_s": now - start, "tokens": self.tokens_seen,
                               "batch_size": self.loader.batch_size, "skipped_steps": self.skipped_steps}
                    if self.last_penalty is not None:
                        metrics["penalty"] = self.last_penalty
                    window_t, window_tokens = now, 0
                    self._emit("on_step_end", metrics)
                if self.can_validate and (self.step % self.cfg.eval_interval == 0
                                                  or self.step == self.cfg.steps):
                    self.evaluate()
                self._serve_requests()
                if first_done is None:
                    first_done = time.time()  # after the first step, which pays one-time costs
                elif self.replan is not None and self.step == self.replan_at:
                    self.replan_at = self.replan(self, time.time() - first_done, self.step - first_step - 1)
                if self._stop_requested(start):
                    break
                if self.step % self.cfg.checkpoint_interval == 0 and self.step < self.cfg.steps:
                    self.save()
            # still under the handlers: a second SIGTERM (torchrun forwarding the scheduler's)
            # must not kill the final save
            if self.can_validate and self.last_val_step != self.step and not self.interrupted:
                self.evaluate()  # stopped early (max_seconds, ctl stop): the last checkpoint gets its val_loss too
            self.save()
            self._emit("on_train_end")


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The DDP module under torch.compile (it owns no_sync)."""
    return getattr(model, "_orig_mod", model)
