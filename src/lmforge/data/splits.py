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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmforge.config.schema import DataConfig
from lmforge.errors import LmforgeError

SPLITS = ("train", "val", "test")


def _records(docs: int | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [{} for _ in range(docs)] if isinstance(docs, int) else list(docs)


def stratum_of(rec: Mapping[str, Any], by: str) -> str:
    """The value a record is stratified by ('' when not stratifying or the field is absent)."""
    if by == "none":
        return ""
    value = rec.get(by)
    return "" if value is None else str(value)


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
    names: dict[str, int] = {}
    strata = np.array([names.setdefault(stratum_of(rec, cfg.split_stratify), len(names)) for rec in records],
                      dtype=np.int64)
    groups = None
    if cfg.split_group == "cluster":
        first: dict[str, int] = {}  # a record without a cluster is a group of its own
        groups = np.array([i if rec.get("cluster") is None else first.setdefault(str(rec["cluster"]), i)
                           for i, rec in enumerate(records)], dtype=np.int64)
    codes = assign_splits(strata, list(names), groups, cfg)
    return [SPLITS[c] for c in codes.tolist()]


def _units(strata: np.ndarray, names: list[str], groups: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Units as columns, in input order of their first member: (first member, size, stratum code,
    {first member: members} for units of two or more). A unit's stratum is its members' most
    common one (ties: the first in sorted order)."""
    n = len(strata)
    if groups is None:
        return np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64), strata, {}
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    firsts = order[starts]
    unit_strata = strata[firsts].copy()
    members: dict[int, np.ndarray] = {}
    for u in np.flatnonzero(sizes > 1).tolist():
        m = order[starts[u]:starts[u] + sizes[u]]
        members[int(m[0])] = m
        found = [names[c] for c in strata[m].tolist()]
        unit_strata[u] = names.index(max(sorted(set(found)), key=found.count))
    by_first = np.argsort(firsts, kind="stable")
    return firsts[by_first], sizes[by_first], unit_strata[by_first], members


def assign_splits(strata: np.ndarray, names: list[str], groups: np.ndarray | None, cfg: DataConfig) -> np.ndarray:
    """split_documents on columns: document i is in stratum `names[strata[i]]`; documents with the
    same `groups` value form one unit (None: every document is its own). Returns each document's
    split as an index into SPLITS (int8)."""
    n = len(strata)
    n_val, n_test = held_out_counts(n, cfg)
    firsts, sizes, unit_strata, members = _units(strata, names, groups)
    rng = random.Random(cfg.seed)
    present = sorted({names[c] for c in np.unique(unit_strata).tolist()})
    totals = {k: int(sizes[unit_strata == names.index(k)].sum()) for k in present}
    want_val, want_test = _allocate(n_val, totals), _allocate(n_test, totals)
    split = np.zeros(n, dtype=np.int8)
    for stratum in present:
        pool = np.flatnonzero(unit_strata == names.index(stratum))
        rng.shuffle(pool)  # shuffled as a list of the same length would be: the same seed, the same split
        want = {1: want_val[stratum], 2: want_test[stratum]}
        filled = {1: 0, 2: 0}
        for start in range(0, len(pool), 1 << 16):
            part = pool[start:start + (1 << 16)]
            for u, size in zip(part.tolist(), sizes[part].tolist()):
                # a unit goes where it fits; a big cluster that fits nowhere trains (never straddles)
                for code in (1, 2):
                    if filled[code] < want[code] and filled[code] + size <= max(want[code], 1):
                        first = int(firsts[u])
                        split[members[first] if size > 1 else first] = code
                        filled[code] += size
                        break
            if filled[1] >= want[1] and filled[2] >= want[2]:
                break  # nothing else can move
    for code, name, want_n in ((1, "val", n_val), (2, "test", n_test)):
        if want_n and not (split == code).any():
            raise LmforgeError(
                f"the {name} split is empty: no near-duplicate cluster is small enough to hold out "
                f"{want_n} document(s)",
                "add data, raise data.val_fraction / data.test_fraction, or set data.split_group=none",
            )
    if not (split == 0).any():
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
