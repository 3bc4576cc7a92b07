"""The `eval` stage: score the latest checkpoint on held-out splits and tasks, write eval.json.

eval.json holds, per split, loss, perplexity, bits per byte and next-token / top-k accuracy,
each with a 95% bootstrap interval over documents (and per source when a split mixes sources);
the multiple-choice tasks; the untrained baseline; samples; the leakage check of the tokens
stage when it exists; and cross-validation when eval.cv_folds >= 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from lmforge.config.schema import Config
from lmforge.evaluate.cv import check_folds, cross_validate
from lmforge.evaluate.generate import sample
from lmforge.evaluate.score import load_trained, score_split
from lmforge.evaluate.tasks import (
    BUILTIN_TASKS,
    load_task,
    next_line_task,
    score_items,
    task_metrics,
    task_names,
)
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz
from lmforge.tokens.store import (
    read_meta,
)
from lmforge.tokens.tokenizer import token_byte_lengths
from lmforge.train import checkpoint as ckpt
from lmforge.train.loop import CallbackFactory


def task_items(run: RunDir, cfg: Config, name: str, split: str | None = None) -> tuple[list, str]:
    """The items of one task and where they came from. A built-in task is made from `split`
    (default: the test split when it is evaluated, else val)."""
    if name in BUILTIN_TASKS:
        if split is None:
            split = "test" if run.split_file("test").is_file() and "test" in cfg.eval.splits else "val"
        texts = [rec["text"] for rec in read_jsonl_gz(run.require(run.split_file(split), "data"))]
        items = next_line_task(texts, cfg.eval.task_items, cfg.eval.task_choices, seed=cfg.eval.seed)
        return items, f"built-in, from the {split} split ({len(texts)} held-out documents)"
    return load_task(name), name


def load_tasks(run: RunDir, cfg: Config) -> dict[str, tuple[list, str]]:
    """Every task of eval.tasks by its eval.json name, read and checked before any slow scoring."""
    return {name: task_items(run, cfg, spec) for name, spec in task_names(cfg.eval.tasks).items()}


def eos_id(tok: Tokenizer, cfg: Config) -> int:
    """The end-of-text id an empty task context is conditioned on (0 when the tokenizer has none)."""
    found = tok.token_to_id(cfg.tokenizer.eos_token)
    return 0 if found is None else found


def run_tasks(model: nn.Module, tok: Tokenizer, run: RunDir, cfg: Config,
              tasks: dict[str, tuple[list, str]] | None = None) -> dict[str, Any]:
    eos = eos_id(tok, cfg)
    out = {}
    for name, (items, origin) in (load_tasks(run, cfg) if tasks is None else tasks).items():
        lls = score_items(model, tok, items, cfg.model.block_size, eos, cfg.eval.batch_size * 2, cfg.train.dtype)
        out[name] = {"source": origin, **task_metrics(items, lls, cfg.eval.bootstrap_rounds, cfg.eval.seed)}
    return out


def training_record(run: RunDir, cfg: Config, checkpoint: Path) -> dict[str, Any]:
    """How many steps made the scored checkpoint, and why that many (a time budget measures them)."""
    out: dict[str, Any] = {"steps": cfg.train.steps, "checkpoint_step": int(checkpoint.name.removeprefix(ckpt.STEP_PREFIX))}
    if cfg.train.time_budget is not None:
        summary = (run.stage_record("train") or {}).get("summary") or {}
        out["budget"] = summary.get("budget") or {"time_budget_s": cfg.train.time_budget,
                                                  "steps": cfg.train.budget_steps}
    return out


def read_leakage(run: RunDir) -> Any:
    """The tokens stage's n-gram overlap check (train vs val/test), copied verbatim when present."""
    path = run.tokens / "leakage.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_eval(run: RunDir, cfg: Config, callbacks: CallbackFactory | None = None) -> dict[str, Any]:
    """The eval stage; `callbacks` attach to the trainings of cross-validation folds."""
    model, tok, latest = load_trained(run, cfg)
    if getattr(model, "objective", None) == "masked":
        return _masked_eval(run, cfg, model, tok, latest)
    if cfg.eval.cv_folds >= 2:
        check_folds(run, cfg)  # before anything slow
    tasks = load_tasks(run, cfg)  # a bad task file stops before the splits are scored
    byte_lengths = token_byte_lengths(tok)
    results: dict[str, Any] = {"checkpoint": latest.name, "splits": {}}
    for split in cfg.eval.splits:
        results["splits"][split] = score_split(model, run, split, cfg, byte_lengths)
    # the same architecture, untrained, on the same tokens: the bar training must clear
    torch.manual_seed(cfg.train.seed)
    fresh = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).to(next(model.parameters()).device)
    split0 = cfg.eval.splits[0]
    results["untrained"] = {split0: score_split(fresh, run, split0, cfg, byte_lengths, per_source=False)}
    results["tasks"] = run_tasks(model, tok, run, cfg, tasks)
    results["samples"] = [
        {"prompt": cfg.eval.prompt, "seed": cfg.eval.seed + i,
         "text": sample(model, tok, cfg.eval.prompt, cfg.eval.sample_tokens, cfg.eval.temperature,
                        cfg.eval.top_k, cfg.eval.top_p, cfg.eval.seed + i, cfg.model.block_size,
                        cfg.tokenizer.eos_token)}
        for i in range(cfg.eval.samples)
    ]
    meta = read_meta(run.tokens)
    results["tokenizer"] = {"kind": meta["kind"], "vocab_size": meta["vocab_size"]}
    results["training"] = training_record(run, cfg, latest)
    results["leakage"] = read_leakage(run)
    results["intervals"] = {"method": "percentile bootstrap, 95%", "rounds": cfg.eval.bootstrap_rounds,
                            "unit": "document (LM metrics), item (tasks)"}
    if cfg.eval.cv_folds >= 2:
        results["cross_validation"] = cross_validate(run, cfg, callbacks=callbacks)
    atomic_write_json(run.eval, results)
    return _summary(results)


def _masked_eval(run: RunDir, cfg: Config, model: nn.Module, tok: Tokenizer, latest: Path) -> dict[str, Any]:
    """An encoder's evaluation: its masked-LM loss on each held-out split, trained and untrained
    (next-token metrics, tasks and samples need a decoder)."""
    from lmforge.tokens.store import load_tokens
    from lmforge.train.mlm import masked_loss

    def loss(m: nn.Module, split: str) -> float:
        data = load_tokens(run.tokens, split)
        windows = -(-min(len(data), cfg.eval.max_tokens or len(data)) // (cfg.model.block_size - 1))
        return masked_loss(m, data, cfg.model.block_size, cfg.eval.batch_size,
                           -(-windows // cfg.eval.batch_size), cfg.train.dtype, cfg.eval.seed)

    torch.manual_seed(cfg.train.seed)
    fresh = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).to(next(model.parameters()).device)
    results: dict[str, Any] = {
        "checkpoint": latest.name, "objective": "masked language modelling (15% of positions, 80/10/10)",
        "splits": {s: {"masked_lm_loss": loss(model, s)} for s in cfg.eval.splits},
        "untrained": {cfg.eval.splits[0]: {"masked_lm_loss": loss(fresh, cfg.eval.splits[0])}},
        "training": training_record(run, cfg, latest)}
    atomic_write_json(run.eval, results)
    return {"checkpoint": latest.name, **{f"{s}_masked_lm_loss": round(v["masked_lm_loss"], 4)
                                          for s, v in results["splits"].items()}}


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the stage record keeps (eval.json has everything)."""
    out: dict[str, Any] = {"checkpoint": results["checkpoint"]}
    for split, s in results["splits"].items():
        if s.get("tokens"):
            out[f"{split}_bits_per_byte"] = round(s["bits_per_byte"], 4)
    for name, t in results.get("tasks", {}).items():
        out[f"{name}_acc_norm"] = round(t["acc_norm"], 4)
    return out
