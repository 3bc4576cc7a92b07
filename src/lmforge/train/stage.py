"""The `train` stage: build the model and loader from the run directory and run the loop.

Under torchrun every process runs this; rank 0 alone logs, shows progress and writes checkpoints.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from shlex import quote
from typing import Any

import torch

from lmforge.config.load import dump_config
from lmforge.config.schema import Config, TrainConfig
from lmforge.console import console, say, show
from lmforge.errors import Interrupted, LmforgeError
from lmforge.models.registry import build_model, count_parameters
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text, clear_temp, file_sha256, run_of
from lmforge.runtime import keep_freed_memory, setup_threads
from lmforge.tokens.loader import build_loader
from lmforge.tokens.store import META, load_doc_starts, load_tokens, read_meta
from lmforge.tokens.stream import StreamWindows
from lmforge.train import checkpoint as ckpt
from lmforge.train.budget import (
    REPLAN_EVERY,
    REPLAN_MIN_STEPS,
    REPLANNED_MIDRUN,
    SHAPED_FROM_START,
    fit_to_budget,
    replan_steps,
)
from lmforge.train.distributed import DistInfo, device_for, init_distributed, wrap_model
from lmforge.train.loop import Callback, CallbackFactory, Trainer, global_rows
from lmforge.train.mlm import MaskedWindows, masked_loss
from lmforge.train.objective import Objective
from lmforge.train.optim import build_optimizer
from lmforge.train.penalty import L1Penalty
from lmforge.train.schedule import lr_at as schedule_lr_at

MASKABLE = ("gpt", "llama")  # families whose forward takes a document attention mask


def short_run(cfg: Config, steps: int | None) -> Config:
    """`cfg` for a short experiment run (a cross-validation fold, a comparison arm, an LR check):
    `steps` steps with the warmup cut to at most a tenth of them, and no cross-validation, tasks
    or samples in its evaluation. `steps=None` keeps the run's own steps and warmup."""
    data = cfg.model_dump()
    if steps is not None:
        data["train"].update(steps=steps, warmup_steps=min(cfg.train.warmup_steps, steps // 10))
    data["eval"].update(cv_folds=0, tasks=[], samples=0)
    return Config.model_validate(data)


def new_trainer(run: RunDir, cfg: Config, callbacks: list[Callback] | None = None,
                extra_state: dict[str, Any] | None = None, pretrained: bool = True,
                checkpoint_dir: Path | None = None, validate: bool = True,
                lr_at: Callable[[int, TrainConfig], float] | None = None,
                model: torch.nn.Module | None = None, loader: Any = None,
                objective: Objective | None = None) -> Trainer:
    """A fresh trainer on the run's tokens: process group, device, seeded model, wrapping,
    optimizer and loader. Every experiment builds its trainer here, so every `train.*` key means
    the same in all of them. Touches no checkpoint (build_trainer adds resume and callbacks).
    With `model.init_from` the weights come from that folder, unless `pretrained` is off (a resume,
    whose checkpoint replaces them anyway). `checkpoint_dir` defaults to the run's; `validate`
    off skips the periodic validation loss; `lr_at` replaces the schedule (the LR range test).

    Fine-tuning and other objectives hand in their own `model` (already holding its weights;
    frozen parameters stay out of the optimizer), `loader` (the interface of tokens/loader.py) and
    `objective` (train/objective.py); without them the run's tokens are read as always.
    `train.l1` adds its penalty to whichever objective runs."""
    setup_threads(cfg.train.threads)
    info = init_distributed(cfg.train)
    device = device_for(cfg.train, info)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls for float32 runs on Ampere and later
    else:
        keep_freed_memory()
    if cfg.train.doc_mask and cfg.model.family not in MASKABLE:
        raise LmforgeError(f"train.doc_mask needs an attention model ({', '.join(MASKABLE)}); "
                           f"model.family is '{cfg.model.family}'", "set train.doc_mask=false")
    meta: dict[str, Any] | None = None
    if model is None or loader is None:
        run.require(run.tokens / META, "tokenize")
        meta = read_meta(run.tokens)
    if model is None:
        assert meta is not None
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, meta["vocab_size"]).to(device)
        if cfg.model.init_from and pretrained:  # before wrapping: DDP/FSDP copy what is there
            source = lmforge_checkpoint(Path(cfg.model.init_from))
            if source is not None:  # continued pretraining from an lmforge run or checkpoint
                ckpt.load_weights(source, model)
            else:
                from lmforge.models.hf import load_folder_weights

                load_folder_weights(model, Path(cfg.model.init_from))
    else:
        model = model.to(device)
    params = count_parameters(model)
    wrapped = wrap_model(model, cfg.train, info)
    optimizer = build_optimizer(model, cfg.train)
    val = None
    objective = objective or Objective()
    if loader is None:
        assert meta is not None
        loader = _token_loader(run, cfg, model)
        val = (load_tokens(run.tokens, "val") if validate and meta["splits"]["val"]["tokens"] > cfg.model.block_size
               else None)
        if val is not None and getattr(model, "objective", None) == "masked" and objective.val_loss is None:
            objective.val_loss = partial(masked_loss, data=val, block_size=cfg.model.block_size,
                                         batch_size=rows_of(cfg), batches=cfg.train.eval_batches,
                                         dtype=cfg.train.dtype)
            val = None
    if cfg.train.l1 > 0:
        objective.penalties.append(L1Penalty(cfg.train.l1))
    vocab = meta["vocab_size"] if meta is not None else getattr(model, "vocab_size", None)
    state = {"params": params, "model": cfg.section("model"), "vocab_size": vocab, **(extra_state or {})}
    return Trainer(wrapped, optimizer, loader, cfg.train, val, checkpoint_dir or run.checkpoints, callbacks or [],
                   lr_at=lr_at or schedule_lr_at, extra_state=state, dist=info, objective=objective)


def rows_of(cfg: Config) -> int:
    return global_rows(cfg.train, cfg.model.block_size)


def _token_loader(run: RunDir, cfg: Config, model: torch.nn.Module) -> Any:
    """The training loader over the run's train tokens, as train.loader and the family ask."""
    train_tokens = load_tokens(run.tokens, "train")
    rows = global_rows(cfg.train, cfg.model.block_size)
    try:
        # state-carrying models (truncated BPTT) need row i of each batch to continue row i of the last
        if model.carries_state:
            return StreamWindows(train_tokens, cfg.model.block_size, rows, cfg.train.seed)
        # one stream for every process: each keeps its rows of the global batch (see loop.py)
        if getattr(model, "objective", None) == "masked":  # an encoder: [CLS] + masked window (train/mlm.py)
            inner = build_loader(cfg.train.loader, train_tokens, cfg.model.block_size - 1, rows, cfg.train.seed)
            return MaskedWindows(inner, model.mask_id, model.cls_id, model.text_vocab)
        starts = load_doc_starts(run.tokens, "train") if cfg.train.doc_mask else None
        return build_loader(cfg.train.loader, train_tokens, cfg.model.block_size, rows, cfg.train.seed,
                            doc_starts=starts)
    except ValueError as exc:
        raise LmforgeError(f"training split too small: {exc}", "lower model.block_size or add data") from None


def lmforge_checkpoint(path: Path) -> Path | None:
    """The checkpoint `model.init_from` names when it is an lmforge run (its newest valid one) or
    one checkpoint folder; None for a Hugging Face folder."""
    run = run_of(path)
    if run is None:
        return None
    if (path / "state.json").is_file():
        return path
    latest = ckpt.latest_valid(run.checkpoints, warn=lambda m: show((m, "yellow")))
    if latest is None:
        raise LmforgeError(f"model.init_from={path}: the run has no valid checkpoint to start from",
                           f"train it first (lmforge train {path}) or name one of its checkpoints/step-N")
    return latest


def write_lineage(run: RunDir, cfg: Config) -> None:
    """lineage.json: what this run started from (the checkpoint, its step and hashes) and what it
    then trained on (the data section) with which schedule (re-warmed: it starts at step 0)."""
    folder = Path(cfg.model.init_from or "")
    source = lmforge_checkpoint(folder) if cfg.model.init_from else None
    files = sorted((source or folder).glob("model*.safetensors"))
    base: dict[str, Any] = {"init_from": str(folder.resolve()), "kind": "lmforge" if source else "huggingface",
                            "weights_sha256": {f.name: file_sha256(f) for f in files}}
    if source is not None:
        base.update(checkpoint=str(source.resolve()),
                    step=json.loads((source / "state.json").read_text()).get("step"))
    atomic_write_json(run.root / "lineage.json", {
        "base": base, "data": cfg.section("data"),
        "schedule": {"steps": cfg.train.steps, "lr": cfg.train.lr, "warmup_steps": cfg.train.warmup_steps,
                     "rewarmed": True},
        "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def plan_budget(run: RunDir, cfg: Config, trainer: Trainer) -> None:
    """Fit the steps to train.time_budget (train/budget.py) and record the count in config.yaml
    before the first step, so a resume or a rerun follows the same schedule; every checkpoint's
    state.json keeps the measurement. The trainer re-plans at the end of the warm-up, and for a
    schedule that decays by progress every tenth of the run after it (`again`), from the run's own
    steps, and records each count the same way."""
    started = time.perf_counter()  # the budget's clock: the probe's time is part of it
    plan = fit_to_budget(trainer)  # sets cfg.train.steps, budget_steps and budget_replans
    trainer.extra_state["budget"] = {**asdict(plan), "why": plan.why()}
    if trainer.dist.is_main:
        atomic_write_text(run.config, dump_config(cfg))
        console.print(f"train: {plan.why()}")
        run.event("budget", plan.why(), step=trainer.step, **asdict(plan))
    if cfg.train.warmup_steps - 1 < REPLAN_MIN_STEPS or cfg.train.schedule in SHAPED_FROM_START:
        return  # too few warm-up steps to measure on, or a schedule shaped by the count: the probe's stands
    seen = [0.0, 0]  # wall time and steps since the first step, at the last re-plan

    def again(t: Trainer, since_first_s: float, since_first_steps: int) -> int | None:
        """The count from what the steps since the last count really cost; the next step to
        re-plan at, or None (also when the count was changed from outside, by `lmforge ctl`)."""
        before = cfg.train.steps
        if before != cfg.train.budget_steps:
            return None
        left = plan.budget_s - (time.perf_counter() - started)
        window_s, window_steps = since_first_s - seen[0], since_first_steps - seen[1]
        seen[:] = [since_first_s, since_first_steps]
        steps = max(t.step + 1, replan_steps(t, plan, left, window_s, window_steps))
        why = (f"{steps} steps fit train.time_budget={plan.budget_s:g}s: re-planned at step {t.step} from "
               f"{window_s / max(1, window_steps) * 1e3:.1f} ms per step as run (callbacks and logging "
               f"included; the probe measured {plan.step_s * 1e3:.1f} ms), {before} planned before")
        if t.step == cfg.train.warmup_steps:  # weigh the compiled loss once, before its cost is sunk
            t.loss_fn.replan(steps * t.plan.accum)
        cfg.train.steps = cfg.train.budget_steps = steps
        cfg.train.budget_replans = [*cfg.train.budget_replans, (t.step, steps)]
        t.extra_state["budget"].update(steps=steps, why=why)
        if t.dist.is_main:
            atomic_write_text(run.config, dump_config(cfg))
            run.event("budget", why, step=t.step, steps=steps, replanned_from=before)
            if abs(steps - before) >= 0.05 * before:  # the progress line's total moves: say why
                console.print(f"train: {why}")
        later = t.step + max(REPLAN_MIN_STEPS, round(REPLAN_EVERY * steps))
        return later if cfg.train.schedule in REPLANNED_MIDRUN and later < steps else None

    trainer.replan, trainer.replan_at = again, cfg.train.warmup_steps


def build_trainer(run: RunDir, cfg: Config, resume: bool, show_progress: bool = True,
                  callbacks: CallbackFactory | None = None) -> Trainer:
    """The train stage's trainer, with rank 0's callbacks from `callbacks` (the pipeline hands in
    monitoring this way, so train/ never imports it); restores the newest valid checkpoint when
    `resume` is set (a corrupt newest one is reported and the previous one used), and clears old
    checkpoints when it is not."""
    start, latest = 0, None
    if resume:
        latest = ckpt.latest_valid(run.checkpoints, warn=lambda m: show((m, "yellow")))
        if latest is None:
            show((f"no valid checkpoint in {run.checkpoints}: starting from step 0", "yellow"))
        else:
            start = int(json.loads((latest / "state.json").read_text())["step"])
    if cfg.train.time_budget is not None and cfg.train.budget_steps is not None:
        cfg.train.steps = cfg.train.budget_steps  # measured once, by the run that wrote it
    trainer = new_trainer(run, cfg, pretrained=latest is None)
    if cfg.train.time_budget is not None and cfg.train.budget_steps is None:
        plan_budget(run, cfg, trainer)  # before anything of the run is touched: a refusal loses nothing
    info = trainer.dist
    if info.is_main:
        clear_temp(run.checkpoints)  # staging folders of saves that a kill interrupted
    if not resume and info.is_main:
        for old in ckpt.list_checkpoints(run.checkpoints):
            shutil.rmtree(old)  # a fresh run must never resume from a stale checkpoint
    if info.is_main and callbacks is not None:
        trainer.callbacks = callbacks(run, cfg, trainer.raw_model, start, show_progress)
    if latest is not None:
        trainer.restore(latest)
        if info.is_main:
            run.event("resume", f"resumed from {latest.name}", step=trainer.step)
    if resume and info.is_main:
        for moved in ckpt.set_aside_after(run.checkpoints, start if latest is not None else -1):
            show((f"moved the unusable {moved.name} to {moved.parent}", "yellow"))
            run.event("checkpoint_set_aside", f"moved the unusable {moved.name} to {moved.parent}",
                      step=trainer.step)
    return trainer


def run_train(run: RunDir, cfg: Config, resume: bool = False, show_progress: bool = True,
              callbacks: CallbackFactory | None = None) -> dict[str, Any]:
    """The train stage: build (or resume) the trainer, fit, record start and end in events.jsonl."""
    trainer = build_trainer(run, cfg, resume, show_progress, callbacks)
    info: DistInfo = trainer.dist
    params = count_parameters(trainer.raw_model)
    plan = trainer.plan
    if info.is_main and cfg.model.init_from and trainer.step == 0:
        write_lineage(run, cfg)
    if info.is_main:
        run.event("train_start", f"training {params['total']:,} parameters for {cfg.train.steps} steps "
                  f"(global batch {plan.rows} = {plan.micro} x {plan.accum} accumulation x {plan.world} processes)"
                  + (f", starting from {cfg.model.init_from}" if cfg.model.init_from and trainer.step == 0 else ""),
                  step=trainer.step, params=params, world_size=plan.world, micro_batch=plan.micro,
                  grad_accum=plan.accum, init_from=cfg.model.init_from)
    trainer.fit()
    signame = signal.Signals(trainer.stop_signal or signal.SIGINT).name if trainer.interrupted else None
    if info.is_main:
        run.event("train_end", f"stopped at step {trainer.step}", step=trainer.step, val_loss=trainer.last_val,
                  skipped_steps=trainer.skipped_steps, interrupted=trainer.interrupted, signal=signame)
    if trainer.interrupted:
        message = (f"{signame} at step {trainer.step}: checkpoint step-{trainer.step} saved; continue with "
                   f"`lmforge train {quote(str(run.root))} --resume`")
        if info.is_main:
            run.event("interrupted", message, step=trainer.step, signal=signame)
            say((message, "yellow"))
        raise Interrupted(trainer.stop_signal or signal.SIGINT, message)
    summary = {"step": trainer.step, "val_loss": trainer.last_val, "params": params}
    if cfg.train.time_budget is not None:
        measured = trainer.extra_state.get("budget") or {}
        summary["budget"] = {"time_budget_s": cfg.train.time_budget, "steps": cfg.train.budget_steps,
                             "why": measured.get("why", "train.budget_steps, from the run that measured it")}
    return summary
