"""The label log: one JSON line per answer, appended and flushed, so a crash loses at most the
answer being written and nothing labelled before it. The current labels are the log replayed.

An entry is {"id", "label", "source": "human" | "rule" | "model", "by", "at", "confidence",
"note"}, or an action without a label: {"id", "action": "skip" | "undo" | "note", ...}.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.rundir import RunDir, append_jsonl, read_jsonl

SOURCES = ("human", "rule", "model")
FOLDER = "labels"


def now() -> str:
    """The time stamp every label carries."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Label:
    """One label with its provenance."""

    id: str
    label: str
    source: str
    by: str
    at: str = field(default_factory=now)
    confidence: float = 1.0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "source": self.source, "by": self.by, "at": self.at,
                "confidence": self.confidence, **({"note": self.note} if self.note else {})}


def log_path(run: RunDir, labeler: str) -> Path:
    """Each labeler writes their own log, so two people never write one file."""
    return run.root / FOLDER / f"human-{labeler}.jsonl"


def append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    append_jsonl(path, entry)


@dataclass
class Replay:
    """A log replayed: current labels by id, skipped ids, notes, and the order answers came in."""

    labels: dict[str, Label] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # ids answered or skipped, oldest first (undo pops)


def replay(entries: list[dict[str, Any]]) -> Replay:
    """The state a log describes: an undo takes back the newest answer or skip not yet taken back."""
    state = Replay()
    for e in entries:
        rid = str(e.get("id", ""))
        action = e.get("action", "label")
        if action == "undo":
            if state.history:
                last = state.history.pop()
                state.labels.pop(last, None)
                state.skipped.discard(last)
        elif action == "skip":
            state.skipped.add(rid)
            state.history.append(rid)
        elif action == "note":
            state.notes[rid] = str(e.get("note", ""))
        elif "label" in e:
            state.labels[rid] = Label(rid, str(e["label"]), str(e.get("source", "human")), str(e.get("by", "")),
                                      str(e.get("at", "")), float(e.get("confidence", 1.0)), str(e.get("note", "")))
            state.skipped.discard(rid)
            state.history.append(rid)
    return state


def read_log(path: Path) -> Replay:
    return replay(read_jsonl(path))


def human_labels(run: RunDir) -> dict[str, Label]:
    """Every labeler's current answers; where two disagree, the later answer wins."""
    return _merged(run, "human")


def model_labels(run: RunDir) -> dict[str, Label]:
    """Every model's pseudo-labels (labels/model-*.jsonl); the later one wins."""
    return _merged(run, "model")


def _merged(run: RunDir, kind: str) -> dict[str, Label]:
    merged: dict[str, Label] = {}
    for path in sorted((run.root / FOLDER).glob(f"{kind}-*.jsonl")):
        for rid, lab in read_log(path).labels.items():
            if rid not in merged or lab.at >= merged[rid].at:
                merged[rid] = lab
    return merged
