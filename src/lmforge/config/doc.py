"""Write docs/config.md from the config models, so the reference never drifts from the code.

Run `python -m lmforge.config.doc > docs/config.md` (or `make docs`); a test checks it is current.
"""

from __future__ import annotations

import json
import re
import typing

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lmforge.config.schema import OUTSIDE_KEYS, Config


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    # a model inside a list or dict prints with its module path; the reader knows it by its section
    text = re.sub(r"lmforge(?:\.\w+)+\.(\w+)", r"\1", text)
    return text.replace("typing.", "").replace("NoneType", "None")


def _limits(field: FieldInfo) -> str:
    marks = []
    for meta in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                marks.append(f"{sign} {value}")
    return ", ".join(marks)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "*required*"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"


def _nested(annotation: object) -> tuple[type[BaseModel], str] | None:
    """The model a field holds and how its keys are reached: directly (`.key`), as items of a list
    (`[].key`) or as values of a dict (`.<name>.key`); None for a field that holds no model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    inner = args[-1] if args else None
    if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
        return None
    if origin is list:
        return inner, "[]"
    if origin is dict:
        return inner, ".<name>"
    return None


def _section_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        nested = _nested(ann)
        if nested is not None and not nested[1]:  # a plain sub-section: its keys get their own table
            continue
        desc = (field.description or "").replace("|", "\\|")
        kind = _type_name(ann).replace("|", "\\|")  # a bare | ends the table cell, even inside backticks
        rows.append(f"| `{prefix}{name}` | `{kind}` | {_default(field)} | {_limits(field)} | {desc} |")
    return rows


def _sub_models(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """Every model nested in `model`, named by the path to its keys (`near`, `sources[]`,
    `fields.<name>`), so lists and dicts of models are documented like plain sub-sections."""
    out = []
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        if nested is not None:
            out.append((name + nested[1], nested[0]))
    return out


def _how_to_set(path: str) -> list[str]:
    """Keys inside a list or dict of models are set in YAML, not as one key=value override."""
    if path.endswith("[]"):
        return [f"`{path[:-2]}` is a YAML list; each item takes these keys.", ""]
    if path.endswith(".<name>"):
        return [f"`{path[:-7]}` is a YAML mapping; under each `<name>` go these keys.", ""]
    return []


def reference() -> str:
    lines = ["# Configuration reference", "",
             "Generated from `src/lmforge/config/schema.py` by `python -m lmforge.config.doc`; do not edit by hand.",
             "Any key can be set in a YAML file (`section:` then `key: value`) or on the command line as",
             "`section.key=value`. Unknown keys and out-of-range values are errors that name the key.", "",
             "## Top level", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|",
             *_section_rows(Config, "")]
    queue = [(name, m) for name, m in _sub_models(Config)]
    while queue:
        path, model = queue.pop(0)
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        lines += ["", f"## `{path}`", "", doc, "", *_how_to_set(path), "| key | type | default | allowed | meaning |",
                  "|---|---|---|---|---|", *_section_rows(model, f"{path}.")]
        queue += [(f"{path}.{name}", sub) for name, sub in _sub_models(model)]
    lines += ["", "## Keys that run commands or reach the network", "",
              "No value is ever evaluated as code, and YAML tags that build Python objects are refused. These",
              "keys do leave the process on purpose; before a run uses them, `lmforge run` and the stage",
              "commands print the ones in effect, so a config from someone else cannot use them unseen.", "",
              "| key | what it does |", "|---|---|",
              *(f"| `{key}` | {what} |" for key, what in OUTSIDE_KEYS.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
