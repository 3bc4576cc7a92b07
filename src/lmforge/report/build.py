"""The `report` stage: report/index.html with the config, data ledger, curves, eval and samples."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from lmforge.evaluate.plots import task_confusion_figures
from lmforge.report.figures import events_timeline, funnel_figure, loss_curve, training_dynamics
from lmforge.rundir import RunDir, atomic_write_text, read_jsonl


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _events(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


FLOW = ("data", "tokenize", "train", "eval", "report")  # the stages in the order they run


def _stages_in_flow_order(folder: Path) -> dict[str, Any]:
    """Each stage's record (.stages/NAME.json) in flow order; other records (lr_find...) after."""
    found = {p.stem: _load_json(p) for p in folder.glob("*.json")} if folder.is_dir() else {}
    return {name: found[name] for name in sorted(found, key=lambda n: (FLOW.index(n) if n in FLOW else len(FLOW), n))}


def top_k_key(evaluation: dict[str, Any] | None) -> str:
    """The `top{k}_accuracy` key eval.json uses (k is eval.accuracy_top_k, 5 by default)."""
    for split in ((evaluation or {}).get("splits") or {}).values():
        for key in split:
            if re.fullmatch(r"top\d+_accuracy", key):
                return key
    return "top5_accuracy"


def run_report(run: RunDir, title: str | None = None) -> Path:
    out = run.report
    out.mkdir(parents=True, exist_ok=True)
    figure = loss_curve(run.metrics, out / "loss.png")
    timeline = events_timeline(run.metrics, run.events, out / "timeline.png")
    evaluation = _load_json(run.eval)
    ledger = _load_json(run.ledger)
    funnel = funnel_figure(ledger, out / "funnel.png")
    confusion = task_confusion_figures(evaluation, out)  # evaluate/plots.py: one per multiple-choice task
    stages = _stages_in_flow_order(run.stages)
    dynamics = training_dynamics(run.metrics, run.root / "stats.jsonl", out / "dynamics.png")
    env = Environment(loader=PackageLoader("lmforge.report", "templates"), autoescape=select_autoescape())
    html = env.get_template("index.html").render(
        title=title or f"lmforge run: {run.root.name}",
        config=run.config.read_text() if run.config.is_file() else "",
        ledger=ledger,
        funnel=funnel.name if funnel else None,
        tokens=_load_json(run.tokens / "meta.json"),
        leakage=_load_json(run.tokens / "leakage.json") or (evaluation or {}).get("leakage"),
        lr_find=_load_json(run.root / "lr_find.json"),
        lr_find_figure=(run.root / "lr_find.png").is_file(),
        evaluation=evaluation,
        topk=top_k_key(evaluation),
        confusion=confusion,
        events=_events(run.events),
        stages=stages,
        figure=figure.name if figure else None,
        dynamics=dynamics.name if dynamics else None,
        timeline=timeline.name if timeline else None,
    )
    if (run.root / "lr_find.png").is_file():  # written by `lmforge lr-find` beside the run's other files
        shutil.copyfile(run.root / "lr_find.png", out / "lr_find.png")
    atomic_write_text(out / "index.html", html)
    return out / "index.html"
