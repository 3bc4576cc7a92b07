"""The `report` stage: report/index.html (one self-contained page: figures embedded, opens offline)
and its Markdown twin report/index.md, with the flow, data ledger, tokens, curves, eval, samples and
events, in English or Chinese (report.lang)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, TemplateError, select_autoescape

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.console import show
from lmforge.errors import LmforgeError
from lmforge.evaluate.plots import task_confusion_figures
from lmforge.report.diagnoses import doctor_section
from lmforge.report.figures import (
    STAGE_IO,
    events_timeline,
    flow_chart,
    funnel_figure,
    loss_curve,
    read_metrics,
    set_lang,
    training_dynamics,
)
from lmforge.report.lang import tr
from lmforge.report.lr_batch import lr_batch_section
from lmforge.report.markdown import report_markdown
from lmforge.report.model_summary import model_section
from lmforge.rundir import RunDir, atomic_write_text, read_jsonl


def _load_json(path: Path) -> Any:
    """A JSON object the run holds (None when absent), or a clear error naming the spot where a
    hand edit or another program broke it."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})", _REWRITE) from None
    except UnicodeDecodeError as exc:
        raise LmforgeError(f"{path}: not UTF-8 text (byte {exc.start})", _REWRITE) from None
    if not isinstance(data, dict):
        raise LmforgeError(f"{path}: expected a JSON object, found {type(data).__name__}", _REWRITE)
    return data


_REWRITE = ("the report reads what the stages wrote: undo the edit, or rerun the stage that writes the file "
            "with --force (eval.json: `lmforge eval RUN --force`)")


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


def tune_section(run: RunDir, out: Path) -> dict[str, Any] | None:
    """What `lmforge tune` left in RUN/tune/ (summary.json and its figures), figures copied beside
    the report as tune_NAME.png."""
    folder = run.root / "tune"
    summary = _load_json(folder / "summary.json")
    if not summary:
        return None
    figures = []
    for name in summary.get("figures", []):
        if (folder / f"{name}.png").is_file():
            shutil.copyfile(folder / f"{name}.png", out / f"tune_{name}.png")
            figures.append(f"tune_{name}.png")
    return {**summary, "figure_files": figures}


def run_config(run: RunDir) -> Config | None:
    """The run's config.yaml, or None (said so) when it is missing or no longer loads: the
    sections drawn from it are then left out, the rest of the report is still written."""
    if not run.config.is_file():
        return None
    try:
        return load_config(run.config)
    except LmforgeError as exc:
        show((f"report: {run.config} does not load ({exc.message}); the model and schedule sections are left out",
              "yellow"))
        return None


def embed_images(page: str, folder: Path) -> str:
    """Every `<img src="NAME.png">` of a figure in `folder` becomes a data URI, so the page is one
    file that opens offline and can be sent on its own."""
    import base64

    def inline(match: re.Match[str]) -> str:
        path = folder / match.group(1)
        if not path.is_file():
            return match.group(0)
        return (f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}" '
                f'data-file="{match.group(1)}"')

    return re.sub(r'src="([^"/:]+\.png)"', inline, page)


def run_report(run: RunDir, title: str | None = None, lang: str = "en") -> Path:
    out = run.report
    out.mkdir(parents=True, exist_ok=True)
    set_lang(lang)
    stages = _stages_in_flow_order(run.stages)
    # the report stage itself is running now: its box shows the time of its last finished run
    flow = flow_chart(stages, out / "flow.png")
    skipped: list[dict] = []
    figure = loss_curve(run.metrics, out / "loss.png", skipped)
    if skipped:
        why = (f"report: left {len(skipped)} record(s) of {run.metrics} out of the figures: each needs a whole "
               f"step and a number (or null) for its loss (first: {json.dumps(skipped[0])[:120]})")
        show((why, "yellow"))
    timeline = events_timeline(run.metrics, run.events, out / "timeline.png")
    evaluation = _load_json(run.eval)
    ledger = _load_json(run.ledger)
    dynamics = training_dynamics(run.metrics, run.root / "stats.jsonl", out / "dynamics.png")
    cfg = run_config(run)
    events = _events(run.events)

    def label(text: str) -> str:
        return tr(text, lang)

    tokens = _load_json(run.tokens / "meta.json")
    train_tokens = ((tokens or {}).get("splits") or {}).get("train", {}).get("tokens")
    model = model_section(run, cfg, events, out, label)
    lr_batch = lr_batch_section(cfg, read_metrics(run.metrics)[0], events, stages.get("train"), train_tokens,
                                out, label)
    doctor = doctor_section(events, cfg.doctor.policy if cfg else None, run.root / "doctor" / "diagnosis.json")
    env = Environment(loader=PackageLoader("lmforge.report", "templates"), autoescape=select_autoescape())
    env.globals["_"] = label
    try:
        funnel = funnel_figure(ledger, out / "funnel.png")
        confusion = task_confusion_figures(evaluation, out)  # evaluate/plots.py: one per multiple-choice task
        context = {
            "title": title or f"lmforge {tr('report', lang) if lang == 'zh' else 'run'}: {run.root.name}",
            "lang_attr": "zh-Hans" if lang == "zh" else "en",
            "flow": flow.name,
            "io": STAGE_IO,
            "config": run.config.read_text() if run.config.is_file() else "",
            "ledger": ledger,
            "funnel": funnel.name if funnel else None,
            "tokens": tokens,
            "model": model,
            "lr_batch": lr_batch,
            "doctor": doctor,
            "leakage": _load_json(run.tokens / "leakage.json") or (evaluation or {}).get("leakage"),
            "lr_find": _load_json(run.root / "lr_find.json"),
            "lr_find_figure": (run.root / "lr_find.png").is_file(),
            "tune": tune_section(run, out),
            "evaluation": evaluation,
            "topk": top_k_key(evaluation),
            "confusion": confusion,
            "events": events,
            "stages": stages,
            "figure": figure.name if figure else None,
            "dynamics": dynamics.name if dynamics else None,
            "timeline": timeline.name if timeline else None,
        }
        html = env.get_template("index.html").render(**context)
        markdown = report_markdown(context, lang)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, TemplateError) as exc:
        # the template is tested on what the stages write: a failure here comes from a file edited
        # by hand or written by another version of lmforge (eval.json above all)
        raise LmforgeError(f"the report cannot be drawn from {run.eval} and the run's other JSON files: "
                           f"{type(exc).__name__}: {exc}", _REWRITE) from None
    if (run.root / "lr_find.png").is_file():  # written by `lmforge lr-find` beside the run's other files
        shutil.copyfile(run.root / "lr_find.png", out / "lr_find.png")
    if lang == "zh":  # the page's own Chinese text, in a font cut from the packaged CJK font
        from lmforge.report.fonts import cjk_font_face

        html = html.replace("</head>", f"<style>{cjk_font_face(html)}</style></head>", 1)
    atomic_write_text(out / "index.html", embed_images(html, out))
    atomic_write_text(out / "index.md", markdown)
    return out / "index.html"
