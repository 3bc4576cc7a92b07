"""Classification metrics against scikit-learn and hand-computed values on fixed predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from lmforge.evaluate import classification as cl


def _cm(y, p, c):
    return skm.confusion_matrix(y, p, labels=list(range(c)))


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 5))
    y = rng.integers(0, c, 40)
    p = np.where(rng.random(40) < 0.6, y, rng.integers(0, c, 40))
    if seed % 3 == 0:
        p[p == c - 1] = 0  # a class that is never predicted
    cm = _cm(y, p, c)
    labels = list(range(c))
    assert cl.cm_accuracy(cm) == pytest.approx(skm.accuracy_score(y, p))
    assert cl.cm_mcc(cm) == pytest.approx(skm.matthews_corrcoef(y, p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cl.cm_balanced_accuracy(cm) == pytest.approx(skm.balanced_accuracy_score(y, p))
    avg = cl.cm_averages(cm)
    for a in ("macro", "micro", "weighted"):
        pr, rc, f1, _ = skm.precision_recall_fscore_support(y, p, labels=labels, average=a, zero_division=0)
        assert avg[f"precision_{a}"] == pytest.approx(pr)
        assert avg[f"recall_{a}"] == pytest.approx(rc)
        assert avg[f"f1_{a}"] == pytest.approx(f1)
    per = cl.cm_per_class(cm)
    pr, rc, f1, _ = skm.precision_recall_fscore_support(y, p, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(per["precision"], pr)
    np.testing.assert_allclose(per["recall"], rc)
    np.testing.assert_allclose(per["f1"], f1)


def test_binary_informedness_markedness_by_hand():
    # TP=3 FN=1 FP=2 TN=4: TPR=.75 TNR=4/6, PPV=.6 NPV=.8
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    cm = _cm(y, p, 2)
    assert cl.cm_informedness(cm) == pytest.approx(0.75 + 4 / 6 - 1)
    assert cl.cm_markedness(cm) == pytest.approx(0.6 + 0.8 - 1)
    # Powers 2011: in the binary case MCC is the geometric mean of informedness and markedness
    assert cl.cm_informedness(cm) * cl.cm_markedness(cm) == pytest.approx(skm.matthews_corrcoef(y, p) ** 2)
    # and informedness is scikit-learn's chance-adjusted balanced accuracy (Youden's J)
    assert cl.cm_informedness(cm) == pytest.approx(skm.balanced_accuracy_score(y, p, adjusted=True))


def test_informedness_extremes_multiclass():
    y = [0, 1, 2, 0, 1, 2]
    assert cl.cm_informedness(_cm(y, y, 3)) == pytest.approx(1.0)
    assert cl.cm_markedness(_cm(y, y, 3)) == pytest.approx(1.0)
    # always predicting one class carries no information
    assert cl.cm_informedness(_cm(y, [0] * 6, 3)) == pytest.approx(0.0)


def test_report_edge_cases_never_predicted_and_single_class():
    rep = cl.classification_report(["a", "a", "b", "c"], ["a", "a", "b", "b"], rounds=200)
    assert rep["per_class"]["c"]["predicted"] == 0
    assert rep["per_class"]["c"]["precision"]["value"] == 0.0
    assert rep["accuracy"]["value"] == pytest.approx(0.75)
    lo, hi = rep["accuracy"]["ci95"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    single = cl.classification_report([1, 1, 1], [1, 1, 1], rounds=50)
    assert single["accuracy"]["value"] == 1.0
    assert single["mcc"]["value"] == 0.0  # scikit-learn's convention: undefined -> 0
    assert single["balanced_accuracy"]["value"] == 1.0
    one = cl.classification_report([0], [1], labels=[0, 1])
    assert one["accuracy"]["ci95"] is None and one["rounds"] == 0


def test_auc_ties_and_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9])  # a tie across classes counts one half
    assert cl.roc_auc_from_ranks(y, s) == pytest.approx(skm.roc_auc_score(y, s)) == pytest.approx(0.875)
    proba = np.stack([1 - s, s], 1)
    assert cl.roc_auc(y, proba) == pytest.approx(0.875)
    assert cl.pr_auc(y, proba) == pytest.approx(skm.average_precision_score(y, s))
    # ECE: confidences 0.9 (right) and 0.6 (wrong) in different bins -> (|1-.9| + |0-.6|)/2
    assert cl.expected_calibration_error(np.array([1, 0]), np.array([0.9, 0.6]))[0] == pytest.approx(0.35)


def test_multiclass_auc_matches_sklearn_ovr():
    rng = np.random.default_rng(3)
    y = np.tile([0, 1, 2], 10)
    logits = rng.normal(size=(30, 3)) + np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert cl.roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    rep = cl.classification_report(y, proba.argmax(1), proba=proba, rounds=100)
    assert rep["roc_auc"]["ci95"][0] <= rep["roc_auc"]["value"] <= rep["roc_auc"]["ci95"][1]
    assert rep["pr_auc"]["value"] is not None and rep["ece"]["value"] >= 0


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="not in the label list"):
        cl.classification_report([0, 1], [0, 2], labels=[0, 1])
    with pytest.raises(ValueError, match="items"):
        cl.classification_report([0, 1], [0])
