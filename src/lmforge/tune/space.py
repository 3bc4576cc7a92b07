"""The search space: checked against the config schema before any trial starts, sampled through
an Optuna trial, and applied to a config.

A space maps a config key (`train.lr`) to a ParamSpec (config/schema.py). A key with `when` is
sampled only in trials where the keys it names took those values; otherwise the config keeps its
own value for it.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np
import optuna
from pydantic import BaseModel, ValidationError

from lmforge.config.schema import Config, ParamSpec
from lmforge.errors import LmforgeError

# keys a trial cannot change: the data and tokenize stages run once for the whole study, and the
# study's own settings are not a hyperparameter of the model
FIXED_SECTIONS = ("data", "tokenizer", "tune", "eval", "report", "name")
HINT = "see docs/tuning.md for the form of tune.space"


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def check_key(key: str) -> None:
    """`key` names a leaf of the config schema that a trial may set, or the error says which would."""
    parts = key.split(".")
    if parts[0] in FIXED_SECTIONS:
        raise LmforgeError(f"tune.space: '{key}' cannot vary between trials: the data and tokenize stages run "
                           "once for the whole study, and eval, report and tune settings are not hyperparameters",
                           "search model.*, train.* or monitor.* keys; run one study per data or tokenizer setting")
    model: type[BaseModel] = Config
    for depth, part in enumerate(parts):
        fields = _field_names(model)
        if part not in fields:
            near = difflib.get_close_matches(part, fields, n=1, cutoff=0.5)
            where = ".".join(parts[:depth]) or "the config"
            tip = f"did you mean '{'.'.join([*parts[:depth], near[0]])}'? " if near else ""
            raise LmforgeError(f"tune.space: unknown key '{key}' ('{part}' is not a key of {where})",
                               f"{tip}docs/config.md lists every key")
        annotation = model.model_fields[part].annotation
        last = depth == len(parts) - 1
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                raise LmforgeError(f"tune.space: '{key}' is a section, not a key",
                                   f"name one of its keys, e.g. {key}.{_field_names(annotation)[0]}")
            model = annotation
        elif not last:
            raise LmforgeError(f"tune.space: unknown key '{key}' ('{part}' is a value, not a section)",
                               "docs/config.md lists every key")


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """`cfg` with dotted keys set, validated by the schema like any config."""
    data = cfg.model_dump(mode="json")
    for key, value in values.items():
        node = data
        *path, leaf = key.split(".")
        for part in path:
            node = node[part]
        node[leaf] = value
    return Config.model_validate(data)


def candidate_values(spec: ParamSpec) -> list[Any]:
    """The values the grid sampler tries: every choice, every int (by step), every float step, or
    `grid` points on a float range (geometric on a log scale)."""
    if spec.kind == "choice":
        return list(spec.values or [])
    low, high = spec.range or (0.0, 0.0)
    if spec.kind == "int":
        step = int(spec.step or 1)
        if spec.log:
            points = np.unique(np.round(np.geomspace(low, high, spec.grid)).astype(int))
            return [int(v) for v in points]
        return list(range(int(low), int(high) + 1, step))
    if spec.step is not None:
        n = math.floor((high - low) / spec.step + 1e-9)
        return [float(low + i * spec.step) for i in range(n + 1)]
    points = np.geomspace(low, high, spec.grid) if spec.log else np.linspace(low, high, spec.grid)
    return [float(f"{v:.6g}") for v in points]


def check_space(cfg: Config) -> None:
    """Every key exists, every range fits the schema at both ends, every condition names a key of
    the space and a value it can take: all before data, tokenize or any trial runs."""
    space = cfg.tune.space
    if not space:
        raise LmforgeError("tune.space is empty: nothing to search",
                           "add keys under tune.space in the config file, e.g. "
                           "train.lr: {float: [1.0e-4, 1.0e-2], log: true}; " + HINT)
    for key, spec in space.items():
        check_key(key)
        ends = candidate_values(spec) if spec.kind == "choice" else [spec.range[0], spec.range[1]]  # type: ignore[index]
        if spec.kind == "int":
            ends = [int(v) for v in ends]
        for value in ends:
            try:
                with_values(cfg, {key: value})
            except (ValidationError, LmforgeError) as exc:
                reason = (exc.errors()[0]["msg"].removeprefix("Value error, ") if isinstance(exc, ValidationError)
                          else exc.message)
                raise LmforgeError(f"tune.space: {key}={value!r} is not a valid value of {key}: {reason}",
                                   "narrow the range to values the key accepts (docs/config.md)") from None
        for other, wanted in spec.when.items():
            if other not in space:
                raise LmforgeError(f"tune.space: {key} has a condition on '{other}', which is not in the space",
                                   f"add {other} to tune.space, or drop the condition")
            if other == key:
                raise LmforgeError(f"tune.space: {key} has a condition on itself", "drop that condition")
            possible = candidate_values(space[other]) if space[other].kind != "float" else None
            for value in wanted if isinstance(wanted, list) else [wanted]:
                if possible is not None and value not in possible:
                    raise LmforgeError(f"tune.space: {key} is sampled when {other}={value!r}, but {other} takes "
                                       f"only {possible}", "use one of those values in the condition")


def active(spec: ParamSpec, chosen: dict[str, Any]) -> bool:
    """Whether a conditional key is sampled, given the values chosen so far."""
    for other, wanted in spec.when.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if other not in chosen or chosen[other] not in options:
            return False
    return True


def ordered(space: dict[str, ParamSpec]) -> list[str]:
    """Keys with their conditions' keys first, so a condition is decided before it is read."""
    done: list[str] = []

    def visit(key: str, seen: tuple[str, ...]) -> None:
        if key in done:
            return
        if key in seen:
            raise LmforgeError(f"tune.space: the conditions of {' -> '.join((*seen, key))} form a circle",
                               "a condition must name a key that does not depend on this one")
        for other in space[key].when:
            visit(other, (*seen, key))
        done.append(key)

    for key in space:
        visit(key, ())
    return done


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The trial's values for every active key of the space."""
    chosen: dict[str, Any] = {}
    for key in ordered(space):
        spec = space[key]
        if not active(spec, chosen):
            continue
        if spec.kind == "choice":
            chosen[key] = trial.suggest_categorical(key, spec.values)  # type: ignore[arg-type]
        elif spec.kind == "int":
            low, high = (int(v) for v in spec.range)  # type: ignore[union-attr]
            chosen[key] = trial.suggest_int(key, low, high, step=int(spec.step or 1), log=spec.log)
        else:
            low, high = spec.range  # type: ignore[misc]
            chosen[key] = trial.suggest_float(key, low, high, step=spec.step, log=spec.log)
    return chosen


def grid(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """The grid sampler's search space: every key's candidate values."""
    return {key: candidate_values(spec) for key, spec in space.items()}


def grid_size(space: dict[str, ParamSpec]) -> int:
    return math.prod(len(v) for v in grid(space).values())
