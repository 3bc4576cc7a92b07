"""Labels in and out: Label Studio JSON (its task export format: a list of tasks, each with
`data` and `annotations[].result[].value.choices`), CSV, and Cohen's kappa between two labelers.

An import is checked whole before anything is written: a file of the wrong shape is refused
with the task and key that is wrong, and the labels already in the run stay as they were.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.label.store import Label, append, human_labels, log_path, now
from lmforge.rundir import RunDir, atomic_open, atomic_write_json, read_jsonl_gz

CSV_COLUMNS = ["id", "label", "source", "by", "at", "confidence", "note"]


def to_label_studio(records: Sequence[Mapping[str, Any]], labels: Mapping[str, Label], meta: Sequence[str] = ()
                    ) -> list[dict[str, Any]]:
    """Label Studio tasks: the text and metadata in `data`, a label (if any) as an annotation."""
    tasks = []
    for n, rec in enumerate(records, 1):
        rid = str(rec.get("id"))
        task: dict[str, Any] = {"id": n, "data": {"text": rec.get("text", ""), "record_id": rid,
                                                  **{k: rec[k] for k in meta if k in rec}}}
        if rid in labels:
            lab = labels[rid]
            task["annotations"] = [{"completed_by": lab.by, "created_at": lab.at, "result": [
                {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [lab.label]}}],
                "meta": {"source": lab.source, "confidence": lab.confidence}}]
        tasks.append(task)
    return tasks


def _shape_error(path: Path, where: str, what: str) -> LmforgeError:
    return LmforgeError(f"{path}: not a Label Studio export: {where}: {what}",
                        "export from Label Studio as JSON (not JSON-MIN or CSV), or give a CSV with columns id,label")


def from_label_studio(path: Path, labeler: str) -> list[Label]:
    """The labels of a Label Studio JSON export (the newest annotation of each task with a choice)."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LmforgeError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(tasks, list):
        raise _shape_error(path, "top level", f"a list of tasks expected, found {type(tasks).__name__}")
    out: list[Label] = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise _shape_error(path, f"task [{i}]", "an object with a 'data' object expected")
        rid = task["data"].get("record_id", task["data"].get("id"))
        if rid is None:
            raise _shape_error(path, f"task [{i}].data", "no 'record_id' (or 'id') naming the record")
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise _shape_error(path, f"task [{i}].annotations", "a list expected")
        for j, ann in enumerate(annotations):
            results = ann.get("result") if isinstance(ann, dict) else None
            if not isinstance(results, list):
                raise _shape_error(path, f"task [{i}].annotations[{j}]", "a 'result' list expected")
            for k, res in enumerate(results):
                choices = res.get("value", {}).get("choices") if isinstance(res, dict) else None
                if not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str)):
                    raise _shape_error(path, f"task [{i}].annotations[{j}].result[{k}].value.choices",
                                       "one label (a list of one string) expected")
                by = str(ann.get("completed_by", labeler))
                out.append(Label(str(rid), choices[0], "human", f"label-studio:{by}",
                                 str(ann.get("created_at", "")) or now()))
    return out


def to_csv(path: Path, labels: Sequence[Label]) -> None:
    with atomic_open(path, "w") as fh:
        writer = csv.DictWriter(fh, CSV_COLUMNS)
        writer.writeheader()
        for lab in labels:
            writer.writerow({**dict.fromkeys(CSV_COLUMNS, ""), **lab.as_dict()})


def from_csv(path: Path, labeler: str) -> list[Label]:
    """Labels from a CSV with at least columns id and label (the other CSV_COLUMNS optional)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise LmforgeError(f"file not found: {path}") from None
    missing = [c for c in ("id", "label") if c not in header]
    if missing:
        raise LmforgeError(f"{path}: no column(s) {missing} (found {list(header)})", "the first line names the "
                           "columns; id and label are required")
    out = []
    for line, row in enumerate(rows, 2):
        if not row["id"] or not row["label"]:
            raise LmforgeError(f"{path}, line {line}: empty id or label", "fill it in or delete the line")
        try:
            conf = float(row.get("confidence") or 1.0)
        except ValueError:
            raise LmforgeError(f"{path}, line {line}: confidence {row['confidence']!r} is not a number") from None
        out.append(Label(row["id"], row["label"], row.get("source") or "human", row.get("by") or labeler,
                         row.get("at") or now(), conf, row.get("note") or ""))
    return out


def kappa(a: Mapping[str, Label], b: Mapping[str, Label]) -> dict[str, Any]:
    """Cohen's kappa (Cohen 1960) of two labelers on the records both labelled, and raw agreement."""
    from sklearn.metrics import cohen_kappa_score

    both = sorted(set(a) & set(b))
    if len(both) < 2:
        raise LmforgeError(f"the two labelers share {len(both)} labelled record(s); kappa needs at least 2",
                           "have both label the same records")
    x, y = [a[i].label for i in both], [b[i].label for i in both]
    agree = sum(p == q for p, q in zip(x, y)) / len(both)
    k = float(cohen_kappa_score(x, y)) if len(set(x) | set(y)) > 1 else 1.0
    return {"kappa": k, "agreement": agree, "records": len(both)}


def current_labels(run: RunDir, field: str) -> tuple[list[dict[str, Any]], dict[str, Label]]:
    """Every document of the run (the newest of each split) and its current label: the label
    stage's choice with its provenance, and human answers not yet folded in by that stage."""
    records, labels = [], {}
    for split in ("train", "val", "test"):
        path = run.documents(split)
        if path.is_file():
            for rec in read_jsonl_gz(path):
                if "augmented_from" in rec:
                    continue
                records.append(rec)
                meta = rec.get("label_meta") or {}
                if rec.get(field) not in (None, "") and meta:
                    labels[str(rec["id"])] = Label(str(rec["id"]), str(rec[field]), meta.get("source", "rule"),
                                                   meta.get("by", ""), meta.get("at", ""), float(meta.get("confidence", 1)))
    labels.update(human_labels(run))
    return records, labels


def export_labels(run: RunDir, path: Path, field: str) -> int:
    """Write the run's labels as Label Studio JSON (.json) or CSV (.csv); returns how many."""
    records, labels = current_labels(run, field)
    if Path(path).suffix == ".csv":
        to_csv(path, list(labels.values()))
    elif Path(path).suffix == ".json":
        atomic_write_json(path, to_label_studio(records, labels, meta=("title", "author", "edition", "source")))
    else:
        raise LmforgeError(f"unknown export format for {path}", "name a .json (Label Studio) or .csv file")
    return len(labels)


def import_labels(run: RunDir, path: Path, labeler: str) -> int:
    """Read a Label Studio JSON or CSV file whole, then append its labels to labeler's log."""
    path = Path(path)
    labels = from_csv(path, labeler) if path.suffix == ".csv" else from_label_studio(path, labeler)
    log = log_path(run, labeler)
    for lab in labels:
        append(log, lab.as_dict())
    return len(labels)
