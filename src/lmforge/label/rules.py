"""Labeling functions: rules written as data in the config (keyword, regex, metadata field,
length) and Python functions from a module of the user's own, named on the command line (a
config never runs code). Each votes a label or abstains (None).

A function that raises is reported with the record it raised on and counted as abstaining; the
session goes on. Coverage, overlap and conflict per function are those of Ratner et al. 2017
("Snorkel: rapid training data creation with weak supervision"): the share of records it votes
on, on which another function votes too, on which another function votes differently.
"""

from __future__ import annotations

import importlib.util
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import LabelRule
from lmforge.errors import LmforgeError
from lmforge.label.model import ABSTAIN

LabelFn = Callable[[Mapping[str, Any]], str | None]


@dataclass
class Function:
    name: str
    fn: LabelFn
    origin: str  # "rule" (config) or the module file


def from_rule(rule: LabelRule) -> Function:
    """A config rule as a labeling function."""
    if rule.kind == "keyword":
        words = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in rule.keywords) + r")\b", re.IGNORECASE)
        return Function(rule.name, lambda r: rule.label if words.search(str(r.get("text", ""))) else None, "rule")
    if rule.kind == "regex":
        pattern = re.compile(rule.pattern or "")
        return Function(rule.name, lambda r: rule.label if pattern.search(str(r.get("text", ""))) else None, "rule")
    if rule.kind == "field":
        values = set(rule.equals)
        return Function(rule.name, lambda r: rule.label if str(r.get(rule.field or "")) in values else None, "rule")
    low, high = rule.min_chars or 0, rule.max_chars if rule.max_chars is not None else float("inf")
    return Function(rule.name, lambda r: rule.label if low <= len(str(r.get("text", ""))) <= high else None, "rule")


def from_module(path: Path) -> list[Function]:
    """Every top-level function named lf_* in the user's Python file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"labeling functions file not found: {path}", "give a .py file defining lf_* functions")
    spec = importlib.util.spec_from_file_location(f"lmforge_user_lfs_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise LmforgeError(f"cannot load {path} as a Python module", "give a .py file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is reported as theirs
        raise LmforgeError(f"{path} failed to import: {type(exc).__name__}: {exc}", "fix the module and rerun") from None
    found = [Function(name, obj, str(path)) for name, obj in vars(module).items()
             if name.startswith("lf_") and callable(obj)]
    if not found:
        raise LmforgeError(f"{path} defines no labeling function", "name each one lf_<something>(record) -> label or None")
    return found


@dataclass
class Votes:
    """The vote matrix, its functions and labels, and every failure with its record."""

    matrix: np.ndarray  # (records, functions), class index or ABSTAIN
    functions: list[str]
    labels: list[str]
    errors: list[dict[str, Any]] = field(default_factory=list)


def apply_functions(records: Sequence[Mapping[str, Any]], functions: Sequence[Function], labels: Sequence[str]
                    ) -> Votes:
    """Every function on every record; failures and unknown labels become abstentions, reported."""
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise LmforgeError(f"two labeling functions share a name: {sorted({n for n in names if names.count(n) > 1})}",
                           "give each rule and lf_ function its own name")
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = np.full((len(records), len(functions)), ABSTAIN, dtype=np.int64)
    errors: list[dict[str, Any]] = []
    for j, f in enumerate(functions):
        for i, rec in enumerate(records):
            try:
                out = f.fn(rec)
            except Exception as exc:  # noqa: BLE001 - the user's code: reported with the record, the run goes on
                errors.append({"function": f.name, "record": str(rec.get("id", i)), "error": f"{type(exc).__name__}: "
                               f"{exc}", "where": traceback.format_exc(limit=-1).strip().splitlines()[-2:]})
                continue
            if out is None:
                continue
            if str(out) not in index:
                errors.append({"function": f.name, "record": str(rec.get("id", i)),
                               "error": f"voted {out!r}, not one of the labels {list(labels)}"})
                continue
            matrix[i, j] = index[str(out)]
    return Votes(matrix, names, list(labels), errors)


def function_stats(votes: Votes, gold: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """Coverage, overlap and conflict per function (and accuracy where gold labels are known)."""
    m = votes.matrix
    voted = m != ABSTAIN
    out = []
    for j, name in enumerate(votes.functions):
        mine = voted[:, j]
        others = np.delete(voted, j, 1)
        other_votes = np.delete(m, j, 1)
        overlap = mine & others.any(1)
        conflict = mine & ((other_votes != m[:, [j]]) & others).any(1)
        row: dict[str, Any] = {"function": name, "coverage": float(mine.mean()) if len(m) else 0.0,
                               "overlap": float(overlap.mean()) if len(m) else 0.0,
                               "conflict": float(conflict.mean()) if len(m) else 0.0,
                               "votes": {votes.labels[c]: int((m[:, j] == c).sum()) for c in range(len(votes.labels))},
                               "errors": sum(1 for e in votes.errors if e["function"] == name)}
        if gold is not None:
            known = np.array([g is not None for g in gold]) & mine
            if known.any():
                g = np.array([-2 if x is None else x for x in gold])
                row["accuracy"] = float((m[known, j] == g[known]).mean())
        out.append(row)
    return out
