"""The report's doctor section: the `diagnosis` and `repair` events the doctor wrote to events.jsonl
(fields: doctor/findings.py `Finding.record`, doctor/live.py `Doctor._event`), and its closing
`doctor` event saying what it checked. Read only: the report sits below the doctor in the layers
and never runs a detector; `lmforge doctor RUN`'s doctor/diagnosis.json is read when the live
doctor was off."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _values(finding: dict[str, Any]) -> dict[str, Any]:
    """The evidence curve in a line: its step range, first, last, lowest and highest value."""
    steps = [s for s in finding.get("steps") or [] if isinstance(s, int)]
    values = [v for v in finding.get("values") or [] if isinstance(v, (int, float)) and math.isfinite(v)]
    out: dict[str, Any] = {"from": finding.get("first_step", steps[0] if steps else None),
                           "to": finding.get("step", steps[-1] if steps else None)}
    if values:
        out.update(first=values[0], last=values[-1], low=min(values), high=max(values))
    non_finite = len(finding.get("values") or []) - len(values)
    out["non_finite"] = non_finite
    return out


def _evidence(finding: dict[str, Any]) -> list[tuple[str, Any]]:
    """The numbers the detector's rule used, rounded for reading."""
    items = []
    for key, value in (finding.get("evidence") or {}).items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)[:120]
        items.append((key, value))
    return items


def _remedies(finding: dict[str, Any]) -> list[tuple[str, str]]:
    names = [str(r) for r in finding.get("remedies") or []]
    texts = finding.get("remedy_texts") or []
    return [(name, texts[i] if i < len(texts) else "") for i, name in enumerate(names)]


def _owner(repair: dict[str, Any], diagnoses: list[dict[str, Any]]) -> int | None:
    """The diagnosis a repair answers: the latest one of its problem at or before the repair."""
    step = repair.get("step")
    owner = None
    for i, d in enumerate(diagnoses):
        if d.get("problem") == repair.get("problem") and (
                not isinstance(step, int) or not isinstance(d.get("step"), int) or d["step"] <= step):
            owner = i
    return owner


def _finding(f: dict[str, Any], mine: list[dict[str, Any]]) -> dict[str, Any]:
    problem = f.get("problem", "?")
    return {"problem": problem, "severity": f.get("severity", ""), "step": f.get("step"), "metric": f.get("metric"),
            "summary": f.get("summary") or f.get("message", ""), "explanation": f.get("explanation", ""),
            "values": _values(f), "evidence": _evidence(f), "remedies": _remedies(f),
            "repairs": [{"remedy": r.get("remedy"), "outcome": r.get("outcome"), "step": r.get("step"),
                         "message": r.get("message", ""), "changes": r.get("changes")} for r in mine]}


def doctor_section(events: list[dict[str, Any]], policy: str | None, offline: Path) -> dict[str, Any] | None:
    """The doctor's findings with their repairs, or what it checked when it found nothing; None
    when no doctor looked at this run (doctor.policy=off and no `lmforge doctor` output)."""
    diagnoses = [e for e in events if e.get("kind") == "diagnosis"]
    repairs = [e for e in events if e.get("kind") == "repair"]
    runs = [e for e in events if e.get("kind") == "doctor"]
    source = "live"
    if not diagnoses and not runs and offline.is_file():
        try:
            saved = json.loads(offline.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = None
        if isinstance(saved, dict) and isinstance(saved.get("findings"), list):
            diagnoses, source = [f for f in saved["findings"] if isinstance(f, dict)], "offline"
            repairs = [r for r in saved.get("repairs") or [] if isinstance(r, dict)]
    if not diagnoses and not runs and not repairs and policy in (None, "off"):
        return None
    owners = [_owner(r, diagnoses) for r in repairs]
    findings = [_finding(f, [r for r, o in zip(repairs, owners) if o == i]) for i, f in enumerate(diagnoses)]
    checks = sorted({c for e in runs for c in e.get("checks") or []})
    spans = [e.get("checked_steps") for e in runs if e.get("checked_steps")]
    return {"source": source, "policy": policy or (runs[-1].get("policy") if runs else None),
            "findings": findings, "other_repairs": [r for r, o in zip(repairs, owners) if o is None],
            "checks": checks, "checked": sum(int(e.get("checked") or 0) for e in runs),
            "checked_steps": [spans[0][0], spans[-1][-1]] if spans else None,
            "errors": sum(f["severity"] == "error" for f in findings),
            "applied": sum(r.get("outcome") == "applied" for r in repairs)}
