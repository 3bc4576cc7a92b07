"""`lmforge finetune BASE --cv K`: K fine-tunes, each tested on one fold of whole documents.

With a handful of documents per class, one train/validation/test split is an estimate about
the documents it happened to hold out as much as about the method. K-fold cross-validation over
documents tests every document once: the folds come from scikit-learn's StratifiedGroupKFold
(GroupKFold that also keeps each class's share in every fold; data/splits.py:kfold_indices),
grouped by document (and by near-duplicate cluster or finetune.group_field), so no passage of a
held-out document is trained on. Within each fold, validation documents are drawn from the
remaining ones as a single fine-tune draws them. The figures: mean, standard deviation, min and
max of each fold's test macro-F1, MCC and accuracy.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.data.splits import kfold_indices
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.classify import read_documents, run_finetune
from lmforge.finetune.passages import check_labels, split_by_document, split_groups
from lmforge.rundir import RunDir, atomic_write_json

RESULT = "cv.json"
METRICS = ("f1_macro", "mcc", "accuracy")


def document_folds(records: list[dict[str, Any]], cfg: Config, k: int) -> list[list[str]]:
    """Each record's split in each of the k folds: the fold's documents are test, validation is
    drawn from the others (stratified by label, groups kept whole), the rest train."""
    ft = cfg.finetune
    if ft.split != "document":
        raise LmforgeError("--cv holds out whole documents; finetune.split=position holds out part of each",
                           "drop --cv, or set finetune.split=document")
    labels = check_labels(records, ft.label_field)
    groups = split_groups(records, ft.group_field)
    per_class = Counter(labels)
    few = {lab: n for lab, n in per_class.items() if n < k + 1}
    if few:
        raise LmforgeError(f"--cv {k}: every class needs at least {k + 1} documents (one in each test fold, and one "
                           f"more to train on); too few: {', '.join(f'{c} ({n})' for c, n in sorted(few.items()))}",
                           f"use --cv {max(2, min(per_class.values()) - 1)} or fewer, or add documents")
    folds = kfold_indices(len(records), k, ft.seed, labels=labels, groups=groups)
    out = []
    for i, (rest, held) in enumerate(folds):
        missing = sorted(set(labels) - {labels[j] for j in held})
        if missing:
            raise LmforgeError(f"--cv {k}: fold {i + 1} holds out no document of {', '.join(missing)} (groups of "
                               "documents that share a split left too few to spread)", "use fewer folds")
        inner = split_by_document([records[j] for j in rest], [labels[j] for j in rest], ft, test=False)
        where = ["test"] * len(records)
        for j, split in zip(rest.tolist(), inner):
            where[j] = split
        out.append(where)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1), min and max over folds."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "min": float(arr.min()), "max": float(arr.max())}


def run_cv(base: Base, run: RunDir, cfg: Config, k: int, show_progress: bool = True) -> dict[str, Any]:
    """k fine-tunes in RUN/fold-I (each a complete fine-tuned run); RUN/cv.json gathers them."""
    records = read_documents(run, cfg)
    folds = document_folds(records, cfg, k)
    started = time.time()
    results = []
    for i, assignment in enumerate(folds, 1):
        console.print(f"cv: fold {i} of {k}")
        res = run_finetune(base, RunDir(run.root / f"fold-{i}"), cfg, show_progress, records=records,
                           assignment=assignment)
        test_docs = [str(r.get("id")) for r, s in zip(records, assignment) if s == "test"]
        row = {"fold": i, "test_documents": test_docs, "test_passages": res["test"]["n"],
               **{m: res["test"][m]["value"] for m in METRICS},
               "f1_ci95": res["test"]["f1_macro"]["ci95"], "train_seconds": res["train_seconds"]}
        results.append(row)
        console.print(f"  fold {i}: test macro-F1 {row['f1_macro']:.3f}, MCC {row['mcc']:.3f} "
                      f"({len(test_docs)} documents)")
    record = {"folds": k, "label_field": cfg.finetune.label_field, "labels": res["labels"],
              "splitter": "StratifiedGroupKFold", "seed": cfg.finetune.seed,
              **{m: spread([r[m] for r in results]) for m in METRICS},
              "wall_s": round(time.time() - started, 1), "results": results}
    atomic_write_json(run.root / RESULT, record)
    return record
