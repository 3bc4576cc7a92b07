"""A fine-tuned classifier proposes labels for another run's documents: pseudo-labels where it is
sure (`lmforge labels pseudo`) and the order a person should label in, least sure first
(`lmforge labels active`). Each document's probabilities are the mean over its passages, cut as
the fine-tune cut them. Pseudo-labels join the run's label log with source "model", the
fine-tuned run as their author and their confidence; the label stage puts a person's answer
above a model's, and a model's above the rules'.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base, base_tokenizer, load_backbone, resolve_base
from lmforge.finetune.classify import LINEAGE, RESULT, build_classifier, predict
from lmforge.finetune.passages import Split, cut_passages, encode
from lmforge.label.select import model_label_rows, query
from lmforge.label.store import FOLDER, append
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz
from lmforge.train import checkpoint as ckpt


def load_classifier(base: Base, run: RunDir, cfg: Config, n_classes: int) -> nn.Module:
    """The classifier fine-tuned in `run`, with its newest valid checkpoint's weights."""
    newest = ckpt.latest_valid(run.checkpoints)
    if newest is None:
        raise LmforgeError(f"no valid checkpoint in {run.checkpoints}", f"run `lmforge finetune` into {run.root} first")
    backbone = load_backbone(base, cfg.model, base_tokenizer(base), False, cfg.train.seed)
    model, _ = build_classifier(base, cfg, n_classes, backbone)
    ckpt.load_weights(newest, model)  # ties the weights the checkpoint stored once
    return model


def finetuned(path: Path) -> tuple[Base, RunDir, Config, list[str]]:
    """A fine-tuned run's base, config and labels (from its lineage.json and finetune.json)."""
    run = RunDir(path)
    for name in (LINEAGE, RESULT):
        if not (run.root / name).is_file():
            raise LmforgeError(f"{run.root} is not a fine-tuned run: {name} is missing",
                               "give the folder `lmforge finetune BASE -o FOLDER` wrote")
    lineage = json.loads((run.root / LINEAGE).read_text())
    labels = json.loads((run.root / RESULT).read_text())["labels"]
    return resolve_base(Path(lineage["base"]["path"])), run, load_config(run.config), labels


def document_proba(model_dir: Path, records: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """Each document's class probabilities (mean over its passages) and the model's labels."""
    base, run, cfg, labels = finetuned(model_dir)
    model = load_classifier(base, run, cfg, len(labels))
    tok = base_tokenizer(base)
    prefix = [model.backbone.cls_id] if getattr(getattr(model, "backbone", None), "bidirectional", False) else []
    out = np.full((len(records), len(labels)), 1.0 / len(labels))
    for i, rec in enumerate(records):
        passages = cut_passages(str(rec.get("text", "")), cfg.finetune.passage_chars, cfg.finetune.max_passages_per_doc)
        passages = passages or [str(rec.get("text", ""))]
        x = encode(passages, tok, cfg.finetune.max_tokens, prefix)
        out[i] = predict(model, Split(x, np.zeros(len(x), dtype=np.int64)), dtype=cfg.train.dtype).mean(0)
    return labels, out


def _documents(run: RunDir, split: str) -> list[dict[str, Any]]:
    path = run.require(run.documents(split), "data")
    return [r for r in read_jsonl_gz(path) if "augmented_from" not in r]


def run_pseudo(run: RunDir, model_dir: Path, threshold: float, split: str = "train") -> dict[str, Any]:
    """Append the model's sure labels to labels/model-NAME.jsonl; counts by label."""
    records = _documents(run, split)
    labels, proba = document_proba(model_dir, records)
    rows = model_label_rows([str(r.get("id")) for r in records], labels, proba, threshold, str(Path(model_dir).resolve()),
                            time.strftime("%Y-%m-%dT%H:%M:%S"))
    log = run.root / FOLDER / f"model-{Path(model_dir).name}.jsonl"
    for row in rows:
        append(log, row)
    counts = {lab: sum(1 for r in rows if r["label"] == lab) for lab in labels}
    return {"documents": len(records), "labelled": len(rows), "by_label": counts, "log": str(log)}


def run_active(run: RunDir, model_dir: Path, strategy: str, n: int, split: str = "train") -> dict[str, Any]:
    """labels/queue.json: the `n` documents the model is least sure of (none a person has answered);
    `lmforge label` shows them first."""
    from lmforge.label.store import human_labels

    records = _documents(run, split)
    labels, proba = document_proba(model_dir, records)
    ids = [str(r.get("id")) for r in records]
    answered = set(human_labels(run))
    picked = query(proba, strategy, n, exclude=[i for i, rid in enumerate(ids) if rid in answered])
    queue = {"strategy": strategy, "model": str(Path(model_dir).resolve()), "ids": [ids[i] for i in picked],
             "scores": {ids[i]: [round(float(p), 4) for p in proba[i]] for i in picked}, "labels": labels}
    atomic_write_json(run.root / FOLDER / "queue.json", queue)
    return queue
