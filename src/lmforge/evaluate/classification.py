"""Classification metrics with bootstrap confidence intervals (for fine-tuned classifiers and tasks).

Point estimates come from scikit-learn wherever it has the metric. Intervals need the metric
recomputed on 1,000 resamples, which would mean ~12,000 scikit-learn calls; instead every
confusion-matrix metric is also written here in a vectorised form over a stack of confusion
matrices (one per resample), and the tests check that form equals scikit-learn on the sample.
Informedness and markedness (Powers 2011) are not in scikit-learn, so they are only here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

from lmforge.evaluate.stats import DEFAULT_ROUNDS, percentile_interval, resample_indices

ECE_BINS = 15  # Guo et al. 2017 ("On calibration of modern neural networks") use 15 equal-width bins


# ------------------------------------------------------------ from confusion matrices (vectorised)
# Every function takes cm of shape (..., C, C), rows = true class, columns = predicted class, and
# returns one value per leading index. Conventions follow scikit-learn with zero_division=0.


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _parts(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    true = cm.sum(-1).astype(np.float64)  # support of each class
    pred = cm.sum(-2).astype(np.float64)  # how often each class was predicted
    total = true.sum(-1)
    return tp, true, pred, total


def cm_accuracy(cm: np.ndarray) -> np.ndarray:
    tp, _, _, total = _parts(cm)
    return _safe_div(tp.sum(-1), total)


def cm_per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of each class (zero when undefined, as scikit-learn's zero_division=0)."""
    tp, true, pred, _ = _parts(cm)
    return {"precision": _safe_div(tp, pred), "recall": _safe_div(tp, true),
            "f1": _safe_div(2 * tp, true + pred)}


def cm_averages(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Macro, weighted and micro averages of precision, recall and F1."""
    tp, true, _, total = _parts(cm)
    per = cm_per_class(cm)
    out = {}
    for name, v in per.items():
        out[f"{name}_macro"] = v.mean(-1)
        out[f"{name}_weighted"] = _safe_div((v * true).sum(-1), total)
        # single-label data: every error is one false positive and one false negative, so the
        # micro averages all equal accuracy
        out[f"{name}_micro"] = _safe_div(tp.sum(-1), total)
    return out


def cm_balanced_accuracy(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes that occur in y_true (scikit-learn's definition)."""
    tp, true, _, _ = _parts(cm)
    present = true > 0
    recall = _safe_div(tp, true)
    return _safe_div((recall * present).sum(-1), present.sum(-1))


def cm_mcc(cm: np.ndarray) -> np.ndarray:
    """Matthews correlation, multiclass form (Gorodkin 2004), as scikit-learn computes it."""
    tp, true, pred, total = _parts(cm)
    correct = tp.sum(-1)
    cov = correct * total - (pred * true).sum(-1)
    den = np.sqrt((total ** 2 - (pred ** 2).sum(-1)) * (total ** 2 - (true ** 2).sum(-1)))
    return _safe_div(cov, den)


def cm_informedness(cm: np.ndarray) -> np.ndarray:
    """Bookmaker informedness (Powers 2011): how far predictions are informed beyond chance.

    Per class, one-vs-rest: TPR − FPR. Classes are combined weighted by Bias (how often each class
    is predicted), the multiclass form in Powers 2011; in the binary case both classes give the
    same value, TPR + TNR − 1 (Youden's J). A term whose rate is undefined counts as zero.
    """
    tp, true, pred, total = _parts(cm)
    t = total[..., None]
    tpr = _safe_div(tp, true)
    fpr = _safe_div(pred - tp, t - true)
    return (_safe_div(pred, t) * (tpr - fpr)).sum(-1)


def cm_markedness(cm: np.ndarray) -> np.ndarray:
    """Markedness (Powers 2011), the dual of informedness: PPV + NPV − 1 per class, weighted by
    prevalence (how often each class truly occurs). Binary: informedness × markedness = MCC²."""
    tp, true, pred, total = _parts(cm)
    t = total[..., None]
    ppv = _safe_div(tp, pred)
    tn = t - true - pred + tp
    npv = _safe_div(tn, t - pred)
    return (_safe_div(true, t) * (ppv + npv - 1)).sum(-1)


CM_METRICS = {
    "accuracy": cm_accuracy,
    "balanced_accuracy": cm_balanced_accuracy,
    "mcc": cm_mcc,
    "informedness": cm_informedness,
    "markedness": cm_markedness,
}


def confusion_stack(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, picks: np.ndarray) -> np.ndarray:
    """Confusion matrices of every resample at once: (rounds, C, C) from encoded labels."""
    rounds = picks.shape[0]
    cells = (np.arange(rounds)[:, None] * n_classes * n_classes
             + y_true[picks] * n_classes + y_pred[picks])
    return np.bincount(cells.ravel(), minlength=rounds * n_classes * n_classes).reshape(
        rounds, n_classes, n_classes)


# ------------------------------------------------------------ probability metrics


def roc_auc_from_ranks(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC along the last axis by the Mann–Whitney U statistic (ties get average ranks, which
    equals the trapezoid area scikit-learn computes); NaN where one class is missing."""
    labels = labels.astype(bool)
    ranks = rankdata(scores, axis=-1)
    n_pos = labels.sum(-1).astype(np.float64)
    n_neg = labels.shape[-1] - n_pos
    u = (ranks * labels).sum(-1) - n_pos * (n_pos + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """ECE along the last axis: Σ_b |B|/n · |accuracy(B) − mean confidence(B)| over equal-width
    confidence bins (Naeini et al. 2015; Guo et al. 2017)."""
    correct = np.atleast_2d(correct).astype(np.float64)
    confidence = np.atleast_2d(confidence).astype(np.float64)
    rows, n = confidence.shape
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # bins (lo, hi]
    flat = (np.arange(rows)[:, None] * bins + which).ravel()
    size = rows * bins
    acc = np.bincount(flat, weights=correct.ravel(), minlength=size).reshape(rows, bins)
    conf = np.bincount(flat, weights=confidence.ravel(), minlength=size).reshape(rows, bins)
    # |B| * |mean accuracy(B) - mean confidence(B)| = |sum of hits(B) - sum of confidences(B)|
    return np.abs(acc - conf).sum(-1) / n


def _one_vs_rest(y: np.ndarray, proba: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary problems to score: for two classes only the positive class (index 1), else every class."""
    classes = [1] if n_classes == 2 else list(range(n_classes))
    return np.array(classes), np.stack([y == c for c in classes], axis=-1)


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    """Binary ROC-AUC, or the one-vs-rest macro average over classes present (scikit-learn)."""
    classes, onehot = _one_vs_rest(y, proba, proba.shape[1])
    values = [skm.roc_auc_score(onehot[:, i], proba[:, c]) for i, c in enumerate(classes)
              if 0 < onehot[:, i].sum() < len(y)]
    return float(np.mean(values)) if values else None


def pr_auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    """Average precision (area under the precision–recall curve), one-vs-rest macro (scikit-learn)."""
    classes, onehot = _one_vs_rest(y, proba, proba.shape[1])
    values = [skm.average_precision_score(onehot[:, i], proba[:, c]) for i, c in enumerate(classes)
              if onehot[:, i].sum() > 0]
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------ the report


def _encode(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None
            ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=lambda v: (str(type(v)), v))
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = (set(y_true) | set(y_pred)) - set(index)
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} are not in the label list {list(labels)}")
    return (np.array([index[v] for v in y_true], dtype=np.int64),
            np.array([index[v] for v in y_pred], dtype=np.int64), list(labels))


def _with_ci(value: float | None, replicates: np.ndarray | None) -> dict[str, Any]:
    return {"value": value, "ci95": percentile_interval(replicates) if replicates is not None else None}


def classification_report(y_true: Sequence[Any], y_pred: Sequence[Any], proba: np.ndarray | None = None,
                          labels: Sequence[Any] | None = None, rounds: int = DEFAULT_ROUNDS,
                          seed: int = 0) -> dict[str, Any]:
    """Every classification metric with a 95% bootstrap interval over examples.

    proba, if given, is (n, C) with columns in the order of `labels`; it adds ROC-AUC, PR-AUC and
    expected calibration error. Returns a JSON-ready dict; undefined metrics are None.
    """
    yt, yp, labels = _encode(list(y_true), list(y_pred), labels)
    n, c = len(yt), len(labels)
    if n == 0:
        raise ValueError("no examples to score")
    idx = list(range(c))
    with warnings.catch_warnings():  # a one-class label list is a legitimate 1x1 matrix here
        warnings.filterwarnings("ignore", message="A single label was found")
        cm = skm.confusion_matrix(yt, yp, labels=idx)
    picks = resample_indices(n, rounds, seed) if n >= 2 and rounds > 0 else None
    stack = confusion_stack(yt, yp, c, picks) if picks is not None else None

    def rep(fn: Any) -> np.ndarray | None:
        return fn(stack) if stack is not None else None

    prf = {avg: skm.precision_recall_fscore_support(yt, yp, labels=idx, average=avg, zero_division=0)
           for avg in ("macro", "micro", "weighted")}
    single = len(set(yt.tolist())) < 2  # scikit-learn's MCC and balanced accuracy need care here
    point = {
        "accuracy": float(skm.accuracy_score(yt, yp)),
        "balanced_accuracy": float(cm_balanced_accuracy(cm)) if single else float(skm.balanced_accuracy_score(yt, yp)),
        "mcc": float(cm_mcc(cm)) if single else float(skm.matthews_corrcoef(yt, yp)),
        "informedness": float(cm_informedness(cm)),
        "markedness": float(cm_markedness(cm)),
    }
    out: dict[str, Any] = {"n": n, "labels": [str(v) for v in labels], "rounds": rounds if stack is not None else 0}
    for name, fn in CM_METRICS.items():
        out[name] = _with_ci(point[name], rep(fn))
    averages = rep(cm_averages)
    for avg, (p, r, f, _) in prf.items():
        for name, v in (("precision", p), ("recall", r), ("f1", f)):
            key = f"{name}_{avg}"
            out[key] = _with_ci(float(v), averages[key] if averages is not None else None)
    p, r, f, s = skm.precision_recall_fscore_support(yt, yp, labels=idx, average=None, zero_division=0)
    per = rep(cm_per_class)
    out["per_class"] = {
        str(lab): {"support": int(s[i]), "predicted": int(cm[:, i].sum()),
                   **{name: _with_ci(float(v[i]), per[name][:, i] if per is not None else None)
                      for name, v in (("precision", p), ("recall", r), ("f1", f))}}
        for i, lab in enumerate(labels)
    }
    out["confusion_matrix"] = cm.tolist()
    if proba is not None:
        out.update(_probability_metrics(yt, np.asarray(proba, dtype=np.float64), c, picks))
    return out


def _probability_metrics(yt: np.ndarray, proba: np.ndarray, c: int, picks: np.ndarray | None) -> dict[str, Any]:
    if proba.shape != (len(yt), c):
        raise ValueError(f"proba must have shape ({len(yt)}, {c}), got {proba.shape}")
    correct = proba.argmax(1) == yt
    conf = proba.max(1)
    out = {"roc_auc": roc_auc(yt, proba), "pr_auc": pr_auc(yt, proba),
           "ece": float(expected_calibration_error(correct, conf)[0])}
    ci: dict[str, np.ndarray | None] = {k: None for k in out}
    if picks is not None:
        ci["ece"] = expected_calibration_error(correct[picks], conf[picks])
        classes, onehot = _one_vs_rest(yt, proba, c)
        # ROC-AUC per resample by ranks (vectorised); classes missing from a resample drop out
        aucs = np.stack([roc_auc_from_ranks(onehot[:, i][picks], proba[:, k][picks])
                         for i, k in enumerate(classes)], axis=-1)
        valid = ~np.isnan(aucs)
        counts = valid.sum(-1)
        ci["roc_auc"] = np.where(counts > 0, np.where(valid, aucs, 0).sum(-1) / np.maximum(counts, 1), np.nan)
        # average precision has no cheap vectorised form: 200 resamples keep it under a second
        ap_rounds = picks[:200]
        aps = [pr_auc(yt[row], proba[row]) for row in ap_rounds]
        ci["pr_auc"] = np.array([np.nan if v is None else v for v in aps])
    return {k: _with_ci(v, ci[k]) for k, v in out.items()}
