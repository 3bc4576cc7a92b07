"""Write docs/config.md from the config models, so the reference never drifts from the code.

Run `python -m lmforge.config.doc > docs/config.md` (or `make docs`); a test checks it is current.
"""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lmforge.config.schema import Config


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
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
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)


def _section_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{_type_name(ann)}` | `{_default(field)}` | {_limits(field)} | {desc} |")
    return rows


def _sub_models(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.append((name, ann))
    return out


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
        lines += ["", f"## `{path}`", "", doc, "", "| key | type | default | allowed | meaning |",
                  "|---|---|---|---|---|", *_section_rows(model, f"{path}.")]
        queue += [(f"{path}.{name}", sub) for name, sub in _sub_models(model)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
