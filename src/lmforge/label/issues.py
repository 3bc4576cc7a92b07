"""Label errors: records whose given label a model trained without them finds unlikely.

Out-of-fold predicted probabilities come from a character n-gram TF-IDF + logistic regression
(scikit-learn) trained on the other folds, folds grouped by near-duplicate cluster so a copy of a
record never predicts it; or from any model the caller has (a fine-tuned classifier's passage
probabilities). cleanlab's `find_label_issues` (confident learning, Northcutt, Jiang & Chuang 2021,
"Confident learning: estimating uncertainty in dataset labels") ranks the suspects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz


def out_of_fold_proba(texts: Sequence[str], labels: Sequence[int], folds: int = 5, seed: int = 0,
                      groups: Sequence[str] | None = None) -> np.ndarray:
    """(n, k) probabilities, each record's from a model that never saw it (nor its cluster)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    y = np.asarray(labels)
    smallest = int(np.bincount(y).min()) if len(y) else 0
    if smallest < 2:
        raise LmforgeError(f"label issues need at least 2 records of every class (smallest class: {smallest})",
                           "label more records of the rare classes first")
    folds = min(folds, smallest)
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=50_000),
                          LogisticRegression(max_iter=2000, C=10.0))
    split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    group = list(groups) if groups is not None else [str(i) for i in range(len(y))]
    return cross_val_predict(model, list(texts), y, cv=split, groups=group, method="predict_proba")


def find_issues(labels: Sequence[int], proba: np.ndarray) -> list[int]:
    """Indices of likely label errors, most suspect first (cleanlab, ranked by self-confidence)."""
    from cleanlab.filter import find_label_issues

    return [int(i) for i in find_label_issues(np.asarray(labels), proba, return_indices_ranked_by="self_confidence")]


def issue_rows(ids: Sequence[str], labels: Sequence[int], names: Sequence[str], proba: np.ndarray,
               found: Sequence[int]) -> list[dict[str, Any]]:
    """One row per suspect: its id, given label, the label the model prefers and both probabilities."""
    return [{"id": ids[i], "given": names[labels[i]], "suggested": names[int(proba[i].argmax())],
             "p_given": round(float(proba[i, labels[i]]), 4), "p_suggested": round(float(proba[i].max()), 4)}
            for i in found]


def precision_recall(found: Sequence[int], truth: Sequence[int]) -> dict[str, float]:
    """How many found issues are real (precision) and how many real ones were found (recall)."""
    f, t = set(found), set(truth)
    hit = len(f & t)
    return {"precision": hit / len(f) if f else 0.0, "recall": hit / len(t) if t else 1.0,
            "found": len(f), "injected": len(t)}


def run_issues(run: RunDir, field: str, split: str = "train", folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Suspect labels of a run's documents (the newest: labelled, else the data stage's), written
    to labels/issues.json, most suspect first. Records without a label are left out."""
    path = run.require(run.documents(split), "data")
    records = [r for r in read_jsonl_gz(path) if r.get(field) not in (None, "") and "augmented_from" not in r]
    names = sorted({str(r[field]) for r in records})
    if len(names) < 2:
        raise LmforgeError(f"{path}: field '{field}' has {len(names)} label(s) among {len(records)} records",
                           "label the records first (`lmforge label`, label.rules) or choose another field")
    index = {n: i for i, n in enumerate(names)}
    y = [index[str(r[field])] for r in records]
    proba = out_of_fold_proba([r["text"] for r in records], y, folds, seed,
                              [str(r.get("cluster") or r.get("id")) for r in records])
    found = find_issues(y, proba)
    rows = issue_rows([str(r.get("id")) for r in records], y, names, proba, found)
    result = {"input": str(path), "field": field, "records": len(records), "labels": names,
              "model": "char 2-4-gram TF-IDF + logistic regression, out-of-fold", "issues": rows}
    (run.root / "labels").mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.root / "labels" / "issues.json", result)
    return result
