"""The report stage on hand-made run directories: what it shows must match eval.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.report.build import run_report
from lmforge.rundir import RunDir


def _split(documents: int, ci: list[float] | None, k: int = 5) -> dict[str, Any]:
    return {"tokens": 1000, "bytes": 2000, "documents": documents, "loss": 2.0, "loss_ci95": ci,
            "perplexity": 7.389, "perplexity_ci95": ci, "bits_per_byte": 1.4427, "bits_per_byte_ci95": ci,
            "accuracy": 0.25, "accuracy_ci95": ci, f"top{k}_accuracy": 0.625, f"top{k}_accuracy_ci95": ci}


def _report(tmp_path: Path, evaluation: dict[str, Any]) -> str:
    run = RunDir(tmp_path / "run")
    run.create()
    run.eval.write_text(json.dumps(evaluation))
    return run_report(run).read_text()


def test_top_k_accuracy_column_follows_accuracy_top_k(tmp_path):
    html = _report(tmp_path, {"checkpoint": "step-1", "splits": {"val": _split(3, [0.1, 0.9], k=3)},
                              "untrained": {}, "tasks": {}, "samples": []})
    assert "top-3 accuracy" in html and "top-5" not in html
    assert "0.6250" in html


def test_missing_interval_is_not_called_one_document(tmp_path):
    """bootstrap_rounds=0 leaves every interval null; the report must not blame a single document."""
    html = _report(tmp_path, {"checkpoint": "step-1", "splits": {"val": _split(6, None), "test": _split(1, None)},
                              "untrained": {}, "tasks": {}, "samples": [], "intervals": {"rounds": 0}})
    assert html.count("one document") == 1
    assert "none (eval.bootstrap_rounds=0)" in html


def test_report_reads_logs_torn_by_a_crash(tmp_path):
    """A run killed mid-write leaves a partial last line in metrics.jsonl and events.jsonl."""
    run = RunDir(tmp_path / "run")
    run.create()
    run.metrics.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 3.0 - s / 10, "lr": 1e-3}) + "\n"
                                   for s in (1, 2)) + '{"kind": "train", "st')
    run.events.write_text(json.dumps({"kind": "lr_reduce", "step": 2, "message": "cut"}) + '\n{"kind": "con')
    html = run_report(run).read_text()
    assert "cut" in html
    assert (run.report / "loss.png").is_file()


def _broken_run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.create()
    return run


@pytest.mark.parametrize(("text", "says"), [
    ('{"checkpoint": "step-1",\n "splits": {"val": }}', ":2:20: not valid JSON (Expecting value)"),
    ("[1, 2]", ": expected a JSON object, found list"),
    ('{"checkpoint": "step-1", "splits": {"val": {"tokens": 5, "loss": "low"}}, "untrained": {}}',
     "the report cannot be drawn from"),
])
def test_a_hand_edited_eval_json_is_one_clear_error(tmp_path: Path, text: str, says: str) -> None:
    run = _broken_run(tmp_path)
    run.eval.write_text(text)
    with pytest.raises(LmforgeError) as err:
        run_report(run)
    assert str(run.eval) in err.value.message and says in err.value.message
    assert "lmforge eval RUN --force" in err.value.hint


def test_metrics_lines_without_numbers_are_left_out_and_named(tmp_path: Path) -> None:
    run = _broken_run(tmp_path)
    lines = [{"kind": "train", "step": s, "loss": 3.0 - s / 10, "lr": 1e-3} for s in range(1, 6)]
    lines[2]["loss"] = "abc"  # edited by hand
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "eval", "step": "x"}\n{"kind": "train", "st\n'
    run.metrics.write_text(text)
    with console.capture() as cap:
        page = run_report(run)
    assert page.is_file() and (run.report / "loss.png").is_file()
    assert 'left 2 record(s) of' in cap.get() and '"loss": "abc"' in cap.get()


def test_report_reads_in_flow_order_with_tables_not_dumps(tmp_path):
    """Stages in the order they run, the leakage check and the rules as tables (not a JSON dump or
    `{}`), and the training statistics drawn: gradient norm, throughput, per-block curves."""
    run = RunDir(tmp_path / "run")
    run.create()
    run.stages.mkdir(parents=True, exist_ok=True)
    for name in ("report", "eval", "data", "train", "tokenize"):
        (run.stages / f"{name}.json").write_text(json.dumps({"seconds": 1.0, "identity": name, "finished": "t"}))
    run.ledger.parent.mkdir(parents=True, exist_ok=True)
    run.ledger.write_text(json.dumps({"in": 3, "kept": 2, "rejected": 1, "balanced": True, "splits": {},
                                      "sources": {"a": {"in": 2, "kept": 1, "rejected": 1,
                                                        "rejected_by_rule": {"min_chars": 1}},
                                                  "b": {"in": 1, "kept": 1, "rejected": 0, "rejected_by_rule": {}}}}))
    leak = {"measure": "13-gram overlap", "source": "GPT-3", "splits": {"val": {"ngrams": 10, "seen_in_train": 1,
                                                                              "fraction": 0.1}}}
    run.eval.write_text(json.dumps({"checkpoint": "step-2", "splits": {}, "untrained": {}, "tasks": {},
                                    "samples": [], "leakage": leak}))
    run.metrics.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 3.0, "lr": 1e-3, "grad_norm": 0.5,
                                               "tokens_per_s": 900.0}) + "\n" for s in (1, 2)))
    (run.root / "stats.jsonl").write_text("".join(json.dumps({"kind": "stats", "step": s, "act_zero/blocks.0": 0.1,
                                                              "grad_norm/blocks.0.mlp.fc.weight": 0.2}) + "\n"
                                                  for s in (1, 2)))
    html = run_report(run).read_text()
    order = [html.index(f"<td>{name}</td>") for name in ("data", "tokenize", "train", "eval", "report")]
    assert order == sorted(order)
    assert "min_chars (1)" in html and "{}" not in html and "<td style=\"text-align:left\">none</td>" in html
    assert "<pre>{" not in html and "<td>val</td><td>10</td><td>1</td><td>0.1000</td>" in html
    assert (run.report / "dynamics.png").is_file() and 'src="dynamics.png"' in html
