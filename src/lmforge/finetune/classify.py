"""`lmforge finetune BASE`: a classification head on a pretrained base, trained by the one loop.

The flow: the base (finetune/base.py) gives the shape, weights and tokenizer; the data stage
reads the documents into the fine-tune's own run directory (its cleaning and missing-value
rules apply); finetune/passages.py splits by document and cuts passages; the classifier
(models/classifier.py) is frozen in part or wrapped with LoRA; the train stage's trainer factory
trains it with the classification objective; evaluate/classification.py scores validation and
test passages. The run directory records the lineage (base, checkpoint, hashes, data).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model
from tokenizers import Tokenizer
from torch import nn

from lmforge.config.load import config_over, load_config
from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.evaluate.classification import classification_report
from lmforge.finetune.base import Base, base_tokenizer, check_model_keys, load_backbone
from lmforge.finetune.batches import LabelledBatches
from lmforge.finetune.lora import add_lora, is_peft, merge
from lmforge.finetune.passages import Split, Task, build_task
from lmforge.models.classifier import SequenceClassifier
from lmforge.models.freeze import freeze
from lmforge.models.loss import class_loss
from lmforge.models.registry import count_parameters
from lmforge.monitor import build_callbacks
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz
from lmforge.runtime import autocast
from lmforge.train import checkpoint as ckpt
from lmforge.train.objective import Objective
from lmforge.train.stage import new_trainer

# what a fine-tune changes from the base's pretraining config: both authors of the built-in
# corpus, every document in the data stage's one split (passages.py splits them by label), near
# duplicates kept and clustered so they share a split, and a short schedule at a lower LR
DEFAULTS = ["data.authors=[shakespeare,milton]", "data.val_fraction=0", "data.test_fraction=0", "data.max_docs=null",
            "data.near.action=cluster", "train.steps=300", "train.lr=1e-3", "train.min_lr=1e-4",
            "train.warmup_steps=30", "train.weight_decay=0.01", "train.batch_size=16", "train.eval_interval=50",
            "train.checkpoint_interval=100000", "train.keep_checkpoints=1", "train.batch_tokens=null",
            "train.time_budget=null", "train.budget_steps=null", "train.budget_replans=[]",
            "train.doc_mask=false",
            "monitor.stats_interval=0", "monitor.sample_tokens=0", "monitor.source_loss=false"]
# the built-in corpus's tasks, from its metadata (corpora/shakespeare.py): who wrote a passage;
# which spelling it is in (both editions of a play held out together, so the test is the
# spelling and not the play); which work it comes from (42 classes: every work is in every
# split, so the end of each document is held out instead of whole documents)
TASKS = {"authorship": ["finetune.label_field=author", "data.authors=[shakespeare,milton]", "data.editions=[modern]"],
         "edition": ["finetune.label_field=edition", "data.authors=[shakespeare]", "data.editions=[modern,folio]",
                     "finetune.group_field=work"],
         "work": ["finetune.label_field=work", "data.authors=[shakespeare]", "data.editions=[modern]",
                  "finetune.split=position"]}
RESULT = "finetune.json"
LINEAGE = "lineage.json"


def finetune_config(base: Base, config: Path | None, overrides: list[str], task: str | None = None) -> Config:
    """The base's own config (a run's config.yaml) or the default preset with the Hugging Face
    folder as model.init_from, then the fine-tune defaults, a built-in task's keys, a config
    file's keys and overrides."""
    if task is not None and task not in TASKS:
        raise LmforgeError(f"unknown task '{task}'", f"choose from: {', '.join(TASKS)} (or set "
                           "finetune.label_field for a field of your own records)")
    if base.kind == "hf":
        start = load_config(None, "default", [f"model.init_from={base.path}", "tokenizer.kind=pretrained"])
    else:
        run_root = base.path if base.kind == "run" else base.path.parent.parent
        start = load_config(RunDir(run_root).config)
    start.name = f"{start.name}-finetune"
    return config_over(config_over(start, None, [*DEFAULTS, *TASKS.get(task or "", [])]), config, overrides)


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch: int = 64, dtype: str = "float32") -> np.ndarray:
    """Class probabilities (n, classes) of every passage of a split."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(split.x), batch):
        x = torch.from_numpy(split.x[i: i + batch]).to(device)
        with autocast(device, dtype):
            logits = model(x)
        out.append(torch.softmax(logits.float(), -1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out)


def split_loss(model: nn.Module, split: Split, dtype: str) -> float:
    """Mean cross-entropy of a split's passages (the validation loss early stopping reads)."""
    proba = predict(model, split, dtype=dtype)
    return float(-np.log(np.clip(proba[np.arange(len(split.y)), split.y], 1e-12, None)).mean())


def score(model: nn.Module, task: Task, split: str, cfg: Config) -> dict[str, Any]:
    """Every classification metric of a split, with bootstrap intervals."""
    s = task.splits[split]
    proba = predict(model, s, dtype=cfg.train.dtype)
    names = task.labels
    report = classification_report([names[i] for i in s.y], [names[i] for i in proba.argmax(1)], proba,
                                    labels=names, rounds=cfg.eval.bootstrap_rounds, seed=cfg.eval.seed)
    report["loss"] = float(-np.log(np.clip(proba[np.arange(len(s.y)), s.y], 1e-12, None)).mean())
    return report


def class_weights(task: Task, rule: str) -> torch.Tensor | None:
    """Per-class loss weights: `balanced` is n / (classes x count), scikit-learn's
    compute_class_weight rule, so a small class counts as much as a large one."""
    if rule == "none":
        return None
    counts = np.bincount(task.splits["train"].y, minlength=len(task.labels)).astype(np.float64)
    return torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)


def build_classifier(base: Base, cfg: Config, n_classes: int, backbone: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier on the backbone, frozen or wrapped as the finetune section says."""
    ft = cfg.finetune
    model: nn.Module = SequenceClassifier(backbone, n_classes, ft.pooling, ft.head_dropout)  # type: ignore[arg-type]
    if ft.lora:
        if ft.freeze_blocks or ft.freeze_embeddings:
            raise LmforgeError("finetune.lora freezes the whole base already",
                               "drop finetune.freeze_blocks / freeze_embeddings, or finetune.lora")
        model = add_lora(model, cfg.model.family, ft)
        method = f"lora r={ft.lora_r}"
    else:
        freeze(model, cfg.model.n_layer, ft.freeze_embeddings, ft.freeze_blocks)
        method = ("full" if not (ft.freeze_blocks or ft.freeze_embeddings) else
                  f"frozen: {'embeddings + ' if ft.freeze_embeddings else ''}{ft.freeze_blocks} blocks")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = count_parameters(model)["total"]
    return model, {"method": method, "init": ft.init, "trainable_params": trainable, "total_params": total}


def read_documents(run: RunDir, cfg: Config) -> list[dict[str, Any]]:
    """The fine-tune's documents: the data stage run in `run` (skipped when unchanged)."""
    write_config(run, cfg)
    run_stage(run, cfg, "data")
    return list(read_jsonl_gz(run.split_file("train")))


def run_finetune(base: Base, run: RunDir, cfg: Config, show_progress: bool = True,
                 records: list[dict[str, Any]] | None = None,
                 adjust: Callable[[Task, Tokenizer, list[int]], Task] | None = None,
                 assignment: list[str] | None = None) -> dict[str, Any]:
    """Fine-tune a classifier on `base` in `run`; write finetune.json and lineage.json.
    `records`: documents already read by the data stage (a comparison reads them once).
    `adjust`: a comparison's change to the task before training (augmented or relabelled
    training passages); validation and test stay as build_task made them.
    `assignment`: each record's split, given (a cross-validation fold, finetune/cv.py)."""
    check_model_keys(base, cfg.model)
    tok = base_tokenizer(base)
    if records is None:
        records = read_documents(run, cfg)
    else:
        write_config(run, cfg)
    backbone = load_backbone(base, cfg.model, tok, cfg.finetune.init == "pretrained", cfg.train.seed)
    prefix = [backbone.cls_id] if getattr(backbone, "bidirectional", False) else []  # an encoder's [CLS]
    task = build_task(records, cfg.finetune, tok, cfg.finetune.max_tokens, prefix, assignment)
    if adjust is not None:
        task = adjust(task, tok, prefix)
    model, method = build_classifier(base, cfg, len(task.labels), backbone)
    console.print(f"finetune: {method['method']}, {method['trainable_params']:,} of {method['total_params']:,} "
                  f"parameters train; {len(task.splits['train'].y)} training passages, classes {task.labels}")
    val = task.splits["val"]
    objective = Objective(loss=partial(class_loss, label_smoothing=cfg.finetune.label_smoothing,
                                       weight=class_weights(task, cfg.finetune.class_weights)),
                          val_loss=partial(split_loss, split=val, dtype=cfg.train.dtype))
    for old in ckpt.list_checkpoints(run.checkpoints):
        shutil.rmtree(old)  # a fresh fine-tune never mixes with an older one's checkpoints
    loader = LabelledBatches(task.splits["train"].x, task.splits["train"].y, cfg.train.batch_size, cfg.train.seed)
    trainer = new_trainer(run, cfg, model=model, loader=loader, objective=objective,
                          extra_state={"finetune": {"labels": task.labels, **method}})
    trainer.callbacks = build_callbacks(run, cfg, trainer.raw_model, 0, show_progress)
    run.event("finetune_start", f"fine-tuning {method['method']} from {base.path}", **method)
    started = time.time()
    trainer.fit()
    seconds = time.time() - started
    trained = trainer.raw_model
    result: dict[str, Any] = {
        **method, "labels": task.labels, "steps": trainer.step, "train_seconds": round(seconds, 2),
        "tokens_seen": trainer.tokens_seen, "data": task.summary,
        "val": score(trained, task, "val", cfg), "test": score(trained, task, "test", cfg)}
    if is_peft(trained):
        result["merged"] = export_merged(trained, run)
    atomic_write_json(run.root / RESULT, result)
    atomic_write_json(run.root / LINEAGE, lineage(base, cfg, task, method))
    run.event("finetune_end", f"test macro-F1 {result['test']['f1_macro']['value']:.3f}", step=trainer.step)
    return result


def export_merged(model: nn.Module, run: RunDir) -> str:
    """Fold LoRA into the weights and write them (plain names, loadable without peft)."""
    plain = merge(model)
    folder = run.root / "merged"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.safetensors.tmp"
    save_model(plain, str(tmp))
    tmp.replace(folder / "model.safetensors")
    return str(folder / "model.safetensors")


def lineage(base: Base, cfg: Config, task: Task, method: dict[str, Any]) -> dict[str, Any]:
    """Where this model came from: the base (path, checkpoint step, hashes) and the data (which
    documents in which split)."""
    return {"base": base.lineage(), "method": method, "label_field": cfg.finetune.label_field,
            "documents": task.documents, "passages": task.summary["passages"],
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
