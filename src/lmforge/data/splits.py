"""Splits by document: holdout (train/val/test) and k-fold indices for cross-validation.

Whole documents go to one split, never a cut stream. Three decisions, all from the config:

- stratify (data.split_stratify): each source (or label) is split in the same ratios, so a small
  source is not left out of validation by chance (stratified sampling; Kohavi 1995 recommends
  stratification for model selection).
- group (data.split_group): documents of one near-duplicate cluster (the `cluster` field the
  dedup step writes) move together, so a near-copy of a validation document is never trained on
  (the rule of scikit-learn's GroupShuffleSplit / GroupKFold).
- seed (data.seed): the same records and config always give the same split.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmforge.config.schema import DataConfig
from lmforge.errors import LmforgeError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Unit:
    """Documents that must share a split (one near-duplicate cluster, or one lone document)."""

    members: tuple[int, ...]
    stratum: str


def _records(docs: int | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [{} for _ in range(docs)] if isinstance(docs, int) else list(docs)


def stratum_of(rec: Mapping[str, Any], by: str) -> str:
    """The value a record is stratified by ('' when not stratifying or the field is absent)."""
    if by == "none":
        return ""
    value = rec.get(by)
    return "" if value is None else str(value)


def make_units(records: Sequence[Mapping[str, Any]], stratify: str, group: str) -> list[Unit]:
    """Group records into units; a cluster's stratum is its most common member stratum."""
    clusters: dict[str, list[int]] = defaultdict(list)
    units: list[Unit] = []
    for i, rec in enumerate(records):
        cluster = rec.get("cluster") if group == "cluster" else None
        if cluster is None:
            units.append(Unit((i,), stratum_of(rec, stratify)))
        else:
            clusters[str(cluster)].append(i)
    for members in clusters.values():
        strata = [stratum_of(records[i], stratify) for i in members]
        units.append(Unit(tuple(members), max(sorted(set(strata)), key=strata.count)))
    return sorted(units, key=lambda u: u.members[0])  # input order, so the seed alone decides


def held_out_counts(n: int, cfg: DataConfig) -> tuple[int, int]:
    """How many documents validation and test should hold."""
    n_val = max(cfg.min_val_docs, round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
    n_test = max(cfg.min_test_docs, round(n * cfg.test_fraction)) if cfg.test_fraction > 0 else 0
    if n_val + n_test >= n:
        raise LmforgeError(
            f"only {n} documents survived cleaning: too few to hold out {n_val} validation and "
            f"{n_test} test documents and still train",
            "add data (data.paths), or lower data.val_fraction / data.test_fraction "
            "(or data.min_val_docs / data.min_test_docs)",
        )
    return n_val, n_test


def _allocate(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` across strata in proportion to their sizes (largest remainder method)."""
    n = sum(weights.values())
    exact = {k: total * w / n for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def split_documents(docs: int | Sequence[Mapping[str, Any]], cfg: DataConfig) -> list[str]:
    """Assign each document to train/val/test, by document, seeded; stratified and grouped per
    cfg. Accepts the records (fields `source`, `label`, `cluster` are used when present) or a count."""
    records = _records(docs)
    n = len(records)
    n_val, n_test = held_out_counts(n, cfg)
    units = make_units(records, cfg.split_stratify, cfg.split_group)
    by_stratum: dict[str, list[Unit]] = defaultdict(list)
    for unit in units:
        by_stratum[unit.stratum].append(unit)
    rng = random.Random(cfg.seed)
    sizes = {k: sum(len(u.members) for u in v) for k, v in sorted(by_stratum.items())}
    want_val, want_test = _allocate(n_val, sizes), _allocate(n_test, sizes)
    split = ["train"] * n
    for stratum in sorted(by_stratum):
        pool = by_stratum[stratum][:]
        rng.shuffle(pool)
        filled = {"val": 0, "test": 0}
        for unit in pool:
            # a unit goes where it fits; a big cluster that fits nowhere trains (never straddles)
            for name, want in (("val", want_val[stratum]), ("test", want_test[stratum])):
                if filled[name] < want and filled[name] + len(unit.members) <= max(want, 1):
                    for i in unit.members:
                        split[i] = name
                    filled[name] += len(unit.members)
                    break
    for name, want in (("val", n_val), ("test", n_test)):
        if want and name not in split:
            raise LmforgeError(
                f"the {name} split is empty: no near-duplicate cluster is small enough to hold out "
                f"{want} document(s)",
                "add data, raise data.val_fraction / data.test_fraction, or set data.split_group=none",
            )
    if "train" not in split:
        raise LmforgeError("the train split is empty", "lower data.val_fraction / data.test_fraction")
    return split


def split_summary(records: Sequence[Mapping[str, Any]], splits: Sequence[str], stratify: str
                  ) -> dict[str, dict[str, int]]:
    """Documents per split per stratum, to show the stratification held."""
    out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for rec, name in zip(records, splits):
        key = stratum_of(rec, stratify if stratify != "none" else "source") or "(none)"
        out[name][key] = out[name].get(key, 0) + 1
    return out


# ---------------------------------------------------------------- cross-validation


def kfold_indices(n: int, k: int, seed: int = 0, labels: Sequence[Any] | None = None,
                  groups: Sequence[Any] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, test_idx) folds over n items, shuffled with `seed`, via scikit-learn:
    KFold; StratifiedKFold when labels are given; GroupKFold / StratifiedGroupKFold when groups
    are given (a group never straddles a fold). Every item is in exactly one test fold."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise LmforgeError(f"cross-validation needs at least 2 folds, got {k}", "use --cv 5 or --cv 10")
    if n < k:
        raise LmforgeError(f"cannot make {k} folds from {n} items", f"use --cv {max(2, n)} or fewer, or add data")
    for name, values in (("labels", labels), ("groups", groups)):
        if values is not None and len(values) != n:
            raise LmforgeError(f"kfold_indices: {len(values)} {name} for {n} items")
    x = np.zeros((n, 1))
    y = None if labels is None else np.asarray([str(v) for v in labels])
    g = None if groups is None else np.asarray([str(v) for v in groups])
    if g is not None and len(set(g.tolist())) < k:
        n_groups = len(set(g.tolist()))
        raise LmforgeError(
            f"cannot make {k} folds: the {n} items form only {n_groups} groups "
            "(near-duplicate clusters; a group never straddles two folds)", f"use {max(2, n_groups)} folds or fewer")
    if y is not None:
        # scikit-learn refuses when every stratum is smaller than k; say so with the numbers
        largest = max(np.unique(y, return_counts=True)[1].tolist())
        if largest < k:
            raise LmforgeError(
                f"cannot make {k} stratified folds: every stratum has fewer than {k} items "
                f"(the largest has {largest})", f"use {max(2, largest)} folds or fewer, or do not stratify")
    if y is not None and g is not None:
        splitter: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif y is not None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    elif g is not None:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    try:
        with warnings.catch_warnings():
            # "least populated class has only m members": allowed, and noted in docs/tokens.md
            warnings.simplefilter("ignore", UserWarning)
            return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in splitter.split(x, y, g)]
    except ValueError as exc:
        raise LmforgeError(f"cannot make {k} stratified folds: {exc}", "use fewer folds") from None
