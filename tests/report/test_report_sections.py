"""The report's model, LR-and-batch and doctor sections on a real tiny run (trained by the train
stage with the pipeline's callbacks, so the doctor watched it), in English and Chinese, with an
injected diagnosis, and left out cleanly when the run lacks their data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from lmforge.config.load import load_config
from lmforge.doctor.detect import DETECTORS
from lmforge.doctor.findings import PROBLEMS, REMEDIES, Finding
from lmforge.doctor.offline import write_diagnosis
from lmforge.models.registry import build_model, count_parameters
from lmforge.pipeline import run_stage
from lmforge.report.build import run_report
from lmforge.report.figures import set_lang
from lmforge.report.lang import ZH
from lmforge.report.lr_batch import lr_batch_section
from lmforge.report.markdown import report_markdown
from lmforge.report.model_info import info_command
from lmforge.report.model_summary import model_section
from lmforge.rundir import RunDir, read_jsonl
from lmforge.train.schedule import lr_at
from tests.helpers.runs import make_token_run

STEPS = 30
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A tiny run after its train stage: tokens, config.yaml, metrics, stats and events."""
    run = make_token_run(tmp_path_factory.mktemp("sections") / "run",
                         [f"train.steps={STEPS}", "train.log_interval=2", "train.eval_interval=15",
                          "train.checkpoint_interval=30", "monitor.stats_interval=10", "train.grad_accum=2"])
    run_stage(run, load_config(run.config), "train")
    return run


@pytest.fixture(scope="module")
def english(trained: RunDir, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDir, str, str]:
    """The English report of a copy of the trained run: (run, index.html, index.md)."""
    run = _copy(trained, tmp_path_factory.mktemp("english") / "run")
    return (run, *_report(run))


def _copy(run: RunDir, to: Path) -> RunDir:
    shutil.copytree(run.root, to)
    return RunDir(to)


def _report(run: RunDir, lang: str = "en") -> tuple[str, str]:
    try:
        html = run_report(run, lang=lang).read_text()
    finally:
        set_lang("en")
    return html, (run.report / "index.md").read_text()


def test_model_section_counts_the_runs_model_and_checks_its_init(english: tuple[RunDir, str, str]) -> None:
    run, html, md = english
    cfg = load_config(run.config)
    params = count_parameters(build_model(cfg.model, 64))
    for text in (html, md):
        assert "Model" in text and "Signal check at init" in text
        for key, label in (("total", "parameters"), ("embedding", "embedding parameters"),
                           ("non_embedding", "non-embedding parameters")):
            assert re.search(rf"{label}\W+{params[key]:,}\b", re.sub(r"<[^>]+>", " ", text)), (label, params[key])
        assert f"{params['total']:,} (same)" in re.sub(r"<[^>]+>", "", text)  # the train stage's own count
    assert "gpt2 (std 0.02)" in html and 'data-file="signal.png"' in html and "](signal.png)" in md
    # the same weights and batch as `lmforge model info --signal --run RUN`: the same numbers
    cli = info_command(cfg, None, None, None, None, True, run.root, None)
    embedding = next(line.split() for line in cli.splitlines() if line.startswith("embedding"))
    assert f"| embedding | {float(embedding[1]):.4g} | {float(embedding[2]):.4g} | {float(embedding[3]):.4g} |" in md
    assert f"verdict: **{cli.split('verdict: ')[1].split(' ')[0]}**" in md


def test_lr_section_shows_the_trainers_schedule_and_batch(english: tuple[RunDir, str, str]) -> None:
    run, html, md = english
    cfg = load_config(run.config)
    logged = [r for r in read_jsonl(run.metrics) if r.get("kind") == "train"]
    tokens = logged[-1]["tokens"]
    assert tokens == STEPS * 8 * 32
    for row in ("| schedule | cosine |", f"| peak learning rate | {max(lr_at(s, cfg.train) for s in range(STEPS)):.4g} |",
                f"| planned steps | {STEPS} |", f"| trained steps | {STEPS} |",
                f"| logged learning rate | as planned ({len(logged)} points",
                "| batch (sequences per step) | 8 = 4 × 2 × 1 |", "| gradient accumulation | 2 |",
                "| context length | 32 |", "| tokens per step | 256 |", f"| planned tokens | {tokens:,} |",
                f"| tokens trained (logged) | {tokens:,} |", f"| floor (train.min_lr) | {cfg.train.min_lr:.4g} |"):
        assert row in md, row
    assert "time budget" not in md  # no train.time_budget in this run
    assert "Learning-rate schedule and batch" in html and 'data-file="lr_schedule.png"' in html


def test_lr_section_names_where_the_logged_lr_left_the_plan(trained: RunDir, tmp_path: Path) -> None:
    cfg = load_config(trained.config)
    train = [r for r in read_jsonl(trained.metrics) if r.get("kind") == "train"]
    assert all(abs(r["lr"] - lr_at(r["step"] - 1, cfg.train)) <= 1e-12 for r in train)  # the plan the loop used
    cut = [{**r, "lr": r["lr"] * (0.1 if r["step"] >= 20 else 1.0)} for r in train]  # a live LR cut at step 20
    section = lr_batch_section(cfg, cut, [], None, None, tmp_path)
    assert section is not None and section["drift"]["first_step"] == 20
    assert section["drift"]["max_rel_gap"] == pytest.approx(0.9)


def test_lr_section_shows_the_time_budget_plan(trained: RunDir, tmp_path: Path) -> None:
    cfg = load_config(trained.config, overrides=["train.time_budget=60", "train.budget_steps=12"])
    record = {"seconds": 58.5, "summary": {"step": 12, "budget": {"time_budget_s": 60.0, "steps": 12, "why": "12 steps fit"}}}
    probe = {"kind": "budget", "budget_s": 60.0, "step_s": 0.25, "eval_s": 1.5, "steps": 12}
    section = lr_batch_section(cfg, [], [probe], record, 1000, tmp_path)
    assert section is not None and section["steps"] == 12 and section["total_tokens"] == 12 * 256
    assert section["budget"]["why"] == "12 steps fit" and section["budget_probe"]["step_s"] == 0.25
    md = report_markdown({"title": "t", "flow": "flow.png", "io": {}, "stages": {}, "lr_batch": section})
    for row in ("| planned steps | 12 |", "| time budget | 60.0 s: 12 steps |", "| budget plan | 12 steps fit |",
                "| measured step time | 250.0 ms |", "| train stage time | 58.5 s |", "| measured validation pass | 1.50 s |"):
        assert row in md, row


def test_doctor_section_says_what_it_checked_when_it_found_nothing(english: tuple[RunDir, str, str]) -> None:
    run, html, md = english
    summary = [e for e in read_jsonl(run.events) if e["kind"] == "doctor"]
    assert len(summary) == 1 and summary[0]["findings"] == 0 and summary[0]["checked"] > 0
    assert "Doctor&#39;s findings" in html or "Doctor's findings" in html
    assert "No problems found." in html and "No problems found." in md
    assert all(f"<code>{name}</code>" in html and f"`{name}`" in md for name in DETECTORS)
    assert f"checked {summary[0]['checked']} logged points (steps {summary[0]['checked_steps'][0]}–{STEPS})" in md


def _inject(run: RunDir) -> Finding:
    """A diagnosis and its repairs as the live doctor writes them (Finding.record, Doctor._event)."""
    f = Finding("lr_too_high", 24, 10, "loss", "smoothed loss 9.1 is 2.3x its best 3.9",
                [10, 14, 18, 22, 24], [4.0, 3.9, 6.5, 8.8, 9.1], {"best": 3.9, "ratio": 2.33})
    run.event("diagnosis", f"{f.problem}: {f.summary}", **f.record())
    before = {"metric": f.metric, "steps": f.steps, "values": f.values}
    run.event("repair", "applied lower_lr: lr 0.0003", problem=f.problem, remedy="lower_lr", outcome="applied",
              step=24, detected_step=24, before=before, changes={"lr": 3e-4})
    run.event("repair", "lr_too_high gone 30 steps after lower_lr", problem=f.problem, remedy="lower_lr",
              outcome="verified", step=54, detected_step=24, before=before)
    return f


def test_an_injected_diagnosis_is_explained_with_evidence_remedies_and_repairs(trained: RunDir,
                                                                               tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "run")
    f = _inject(run)
    html, md = _report(run)
    assert "No problems found." not in md and "1 problem(s) found (1 error(s))" in md
    assert "### Finding 1: lr_too_high" in md and "<h3>Finding 1: lr_too_high</h3>" in html
    said = PROBLEMS["lr_too_high"][0]
    assert f"**error**. {said[0].upper()}{said[1:]}." in md
    assert "| evidence | loss, steps 10–24: 4 → 9.1 (min 3.9, max 9.1) |" in md
    assert "| `ratio` | 2.33 |" in md and "| symptom | smoothed loss 9.1 is 2.3x its best 3.9 |" in md
    for i, name in enumerate(f.remedies, 1):
        assert f"{i}. `{name}`: {REMEDIES[name]}" in md
    assert "| 24 | `lower_lr` | applied | applied lower_lr: lr 0.0003 |" in md
    assert "| 54 | `lower_lr` | verified |" in md and "1 repair(s) applied" in md
    assert f"<b>error</b>. {said[0].upper()}{said[1:]}.</p>" in html


def test_chinese_report_translates_the_new_sections(trained: RunDir, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "run")
    _inject(run)
    html, md = _report(run, lang="zh")
    for title in ("<h2>模型</h2>", "<h3>初始化时的信号检查</h3>", "<h3>学习率调度与批量</h3>", "<h2>诊断结果</h2>"):
        assert title in html, title
    assert "## 模型" in md and "### 学习率调度与批量" in md and "## 诊断结果" in md
    assert ZH[PROBLEMS["lr_too_high"][0]] in html and ZH[REMEDIES["lower_lr"]] in md
    labels = re.findall(r"<(h1|h2|h3|th|figcaption)>(.*?)</\1>", html, flags=re.DOTALL)
    assert [text for _, text in labels if not CJK.search(text)] == []
    sections = html[html.index("<h2>模型</h2>"): html.index("<h2>事件</h2>")]  # the new sections' row names
    keys = re.findall(r"<tr><td>([^<]*)</td>", sections)
    assert keys and [k for k in keys if not CJK.search(k) and not k.strip().isdigit()] == []


def test_every_doctor_text_has_a_chinese_translation() -> None:
    """The Chinese page looks the doctor's English texts up in lang.ZH: a new or reworded
    explanation or remedy must get its translation there."""
    assert [p for p, (text, _) in PROBLEMS.items() if text not in ZH] == []
    assert [r for r, text in REMEDIES.items() if text not in ZH] == []


def test_sections_are_left_out_without_their_data(tmp_path: Path) -> None:
    """No config, no tokens, no doctor events: none of the three sections, in either file."""
    run = RunDir(tmp_path / "bare")
    run.create()
    run.metrics.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 3.0, "lr": 1e-3}) + "\n"
                                   for s in (1, 2)))
    html, md = _report(run)
    for title in ("Model", "Signal check at init", "Learning-rate schedule and batch", "Doctor's findings"):
        assert title not in md and f">{title}<" not in html
    assert not (run.report / "signal.png").exists() and not (run.report / "lr_schedule.png").exists()


def test_doctor_off_leaves_the_doctor_section_out_unless_lmforge_doctor_ran(trained: RunDir,
                                                                           tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "run")
    cfg = load_config(run.config, overrides=["doctor.policy=off"])
    from lmforge.config.load import dump_config

    run.config.write_text(dump_config(cfg))
    run.events.write_text("".join(json.dumps(e) + "\n" for e in read_jsonl(run.events) if e["kind"] != "doctor"))
    _, md = _report(run)
    assert "Doctor's findings" not in md and "## Model" in md
    found = Finding("overfitting", 28, 15, "val_loss", "validation loss 3.1 is 4% above its best", [15, 28], [3.0, 3.1])
    write_diagnosis(run, [found], figures=False)  # what `lmforge doctor RUN` leaves
    _, md = _report(run)
    assert "### Finding 1: overfitting" in md and "from `lmforge doctor RUN` (doctor/diagnosis.json)" in md


def test_the_init_check_leaves_the_random_state_alone(trained: RunDir, tmp_path: Path) -> None:
    """Rebuilding the model for its init check must not move the caller's torch RNG."""
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    section = model_section(trained, load_config(trained.config), [], tmp_path)
    assert section is not None and section["signal"] is not None
    assert torch.equal(torch.rand(3), expected)
