"""`lmforge doctor RUN`: the detectors over a run directory's logs, replayed in the order the live
doctor saw them, a small figure per finding, and the repairs the live doctor made."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lmforge.config.load import load_config
from lmforge.config.schema import DoctorConfig
from lmforge.doctor.detect import replay
from lmforge.doctor.findings import Finding
from lmforge.doctor.history import STATS_FILE, is_run, load_history
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl

OUT = "doctor"


def logged_records(run: RunDir) -> list[tuple[str, dict[str, Any]]]:
    """metrics.jsonl in file order, with each stats.jsonl record placed before the first training
    record at or after its step (when the Monitor flushed it)."""
    stats = [r for r in read_jsonl(run.root / STATS_FILE) if isinstance(r.get("step"), int)]
    out: list[tuple[str, dict[str, Any]]] = []
    k = 0
    for rec in read_jsonl(run.metrics):
        kind = rec.get("kind")
        if kind not in ("train", "eval") or not isinstance(rec.get("step"), int):
            continue
        if kind == "train":
            while k < len(stats) and stats[k]["step"] <= rec["step"]:
                out.append(("stats", stats[k]))
                k += 1
        out.append((kind, rec))
    return out


def diagnose(run: RunDir, thresholds: DoctorConfig | None = None) -> list[Finding]:
    """Every finding in the run's logs, in the order it would have been found live (with the
    run's own doctor.* thresholds, or `thresholds`)."""
    if run.root.is_dir() and is_run(run.root):
        try:
            cfg = load_config(run.config)
        except LmforgeError as exc:
            raise LmforgeError(f"{run.config} does not load: {exc.message}", exc.hint) from None
    else:
        cfg = None
    hist = load_history(run, cfg)  # raises the clear errors: not a run, nothing logged
    return list(replay(logged_records(run), hist.facts, thresholds or cfg.doctor))


def live_events(run: RunDir) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The diagnosis and repair events the live doctor wrote."""
    events = read_jsonl(run.events)
    return [e for e in events if e.get("kind") == "diagnosis"], [e for e in events if e.get("kind") == "repair"]


def plot_finding(f: Finding, path: Path) -> Path:
    """The evidence curve of one finding, the detection step marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    ax.plot(f.steps, [float("nan") if v is None else v for v in f.values], marker=".", lw=1)
    ax.axvline(f.step, color="tab:red", ls="--", lw=1, label=f"detected (step {f.step})")
    ax.set_xlabel("step")
    ax.set_ylabel(f.metric)
    positive = [v for v in f.values if v is not None and math.isfinite(v) and v > 0]
    if positive and max(positive) / max(min(positive), 1e-30) > 100:
        ax.set_yscale("log")
    ax.set_title(f.problem, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_diagnosis(run: RunDir, findings: list[Finding], figures: bool = True) -> Path:
    """RUN/doctor/diagnosis.json and one PNG per finding."""
    out = run.root / OUT
    records = []
    for f in findings:
        rec = f.record()
        if figures:
            rec["figure"] = str(plot_finding(f, out / f"{f.problem}.png").relative_to(run.root))
        records.append(rec)
    diag, repairs = live_events(run)
    atomic_write_json(out / "diagnosis.json", {"findings": records, "live_diagnoses": len(diag),
                                               "repairs": repairs})
    return out / "diagnosis.json"
