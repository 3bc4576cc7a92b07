"""The report in Chinese (report.lang=zh): every section title and table header translated, figures
drawn with the packaged CJK font (no glyph drawn as a box), the page's own text carried in a font
cut from it; and figure 1, the flow chart, plus the Markdown twin, in either language."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from lmforge.report.build import run_report
from lmforge.report.figures import flow_chart, set_lang
from lmforge.report.fonts import cjk_font_path, missing_glyphs
from lmforge.report.lang import ZH
from lmforge.rundir import RunDir

CJK = re.compile(r"[\u4e00-\u9fff]")


def _run(tmp_path: Path) -> RunDir:
    """A run directory with every section's input: stages, ledger, tokens, metrics, eval, events."""
    run = RunDir(tmp_path / "run")
    run.create()
    run.stages.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("data", "tokenize", "train", "eval")):
        (run.stages / f"{name}.json").write_text(json.dumps({"seconds": 1.5 + i, "identity": name, "finished": "t"}))
    run.ledger.parent.mkdir(parents=True, exist_ok=True)
    run.ledger.write_text(json.dumps({
        "in": 3, "kept": 2, "rejected": 1, "balanced": True,
        "splits": {"train": {"documents": 2, "characters": 900, "bytes": 900}},
        "sources": {"a": {"in": 3, "kept": 2, "rejected": 1, "rejected_by_rule": {"too_short": 1}}},
        "funnel": [{"step": "read", "documents": 3, "removed": 0}, {"step": "too_short", "documents": 2, "removed": 1}],
        "rules": {"too_short": {"documents": 1, "characters": 10, "reasons": {"short": 1}, "examples": []}}}))
    run.tokens.mkdir(parents=True, exist_ok=True)
    (run.tokens / "meta.json").write_text(json.dumps({"kind": "char", "vocab_size": 60, "dtype": "uint16",
                                                      "splits": {"train": {"documents": 2, "tokens": 900,
                                                                           "bytes_per_token": 1.0}}}))
    run.metrics.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 3.0 - s / 10, "lr": 1e-3,
                                               "grad_norm": 0.5, "tokens_per_s": 900.0}) + "\n" for s in (1, 2, 3)))
    run.events.write_text(json.dumps({"kind": "lr_reduce", "step": 2, "message": "cut", "reason": "plateau"}) + "\n")
    split = {"tokens": 1000, "bytes": 2000, "documents": 3, "loss": 2.0, "perplexity": 7.389, "bits_per_byte": 1.44,
             "bits_per_byte_ci95": [1.4, 1.5], "accuracy": 0.25, "accuracy_ci95": [0.2, 0.3],
             "top5_accuracy": 0.6, "top5_accuracy_ci95": [0.5, 0.7]}
    run.eval.write_text(json.dumps({"checkpoint": "step-3", "splits": {"val": split}, "untrained": {}, "tasks": {},
                                    "samples": [{"seed": 1, "text": "ROMEO: hi"}]}))
    return run


def test_every_chinese_label_has_a_glyph_in_the_packaged_font() -> None:
    path = cjk_font_path()
    assert path is not None and path.name == "NotoSansCJKsc-Regular.otf"
    assert missing_glyphs("".join(ZH.values()), path) == []
    assert missing_glyphs("训练", Path(plt.matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf")  # the control


def _draw_warnings(lang: str, tmp_path: Path) -> list[str]:
    set_lang(lang)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title(ZH["the training flow of this run"])
        fig.savefig(tmp_path / f"{lang}.png")
        plt.close(fig)
    # matplotlib 3.8 (the floor) warns "Glyph N (...) missing from current font.", newer releases
    # "... missing from font(s) DejaVu Sans."
    return [str(w.message) for w in caught if re.match(r"Glyph \d+ .* missing from (current )?font", str(w.message))]


def test_chinese_figures_use_a_font_with_the_glyphs(tmp_path: Path) -> None:
    try:
        assert _draw_warnings("en", tmp_path), "the English font should lack CJK glyphs (the control)"
        assert _draw_warnings("zh", tmp_path) == []
        from matplotlib import font_manager

        used = font_manager.findfont(font_manager.FontProperties(family=plt.rcParams["font.sans-serif"][0]))
        assert Path(used).name == "NotoSansCJKsc-Regular.otf"
    finally:
        set_lang("en")


def test_chinese_report_translates_every_title_and_header(tmp_path: Path) -> None:
    run = _run(tmp_path)
    try:
        html = run_report(run, lang="zh").read_text()
    finally:
        set_lang("en")
    labels = re.findall(r"<(h1|h2|h3|th|figcaption)>(.*?)</\1>", html, flags=re.DOTALL)
    assert len(labels) > 30
    untranslated = [text for tag, text in labels if not CJK.search(text)]
    assert untranslated == []
    assert '<html lang="zh-Hans">' in html and "@font-face" in html and "lmforge CJK" in html
    md = (run.report / "index.md").read_text()
    assert "## 流程" in md and "## 数据账本" in md and "| 阶段 | 秒 | 输入 | 输出 |" in md


def test_report_is_one_page_with_figure_one_and_a_markdown_twin(tmp_path: Path) -> None:
    run = _run(tmp_path)
    html = run_report(run).read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # self-contained
    assert 'data-file="flow.png"' in html and "Figure 1. the training flow of this run" in html
    assert '<meta name="viewport"' in html
    # the stages table names each stage's inputs and outputs
    assert "<td>train</td><td>3.5</td>" in html and "checkpoints, metrics.jsonl" in html
    md = (run.report / "index.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "flow.png" in links and "loss.png" in links
    assert all((run.report / link).is_file() for link in links)  # no broken image


@pytest.mark.parametrize("stages", [{}, {"data": {"seconds": 2.0}}])
def test_flow_chart_draws_with_or_without_finished_stages(tmp_path: Path, stages: dict) -> None:
    out = flow_chart(stages, tmp_path / "flow.png")
    assert out.is_file() and out.stat().st_size > 5000
