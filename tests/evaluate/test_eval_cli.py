"""`lmforge eval` and `lmforge report` on the command line: a mistaken command leaves the run as it was."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir


def test_eval_and_report_of_a_missing_folder_create_nothing(tmp_path: Path) -> None:
    """A mistyped run folder was created, with a default config.yaml (and an empty report)."""
    for cmd in ("eval", "report"):
        res = CliRunner().invoke(app, [cmd, str(tmp_path / "typo")])
        assert isinstance(res.exception, LmforgeError), res.output
        assert "run directory not found" in res.exception.message
        assert not (tmp_path / "typo").exists()


def test_a_refused_eval_leaves_the_runs_config(tmp_path: Path) -> None:
    """config.yaml must keep describing eval.json; a refused option must not stick for the next eval."""
    run = RunDir(tmp_path / "run")
    run.create()
    run.config.write_text("name: kept\n")
    run.eval.write_text(json.dumps({"checkpoint": "step-1", "splits": {}}))
    run.mark_done("eval", "abc", 1.0)
    record = (run.stages / "eval.json").read_text()
    res = CliRunner().invoke(app, ["eval", str(run.root), "--preset", "smoke", "--cv", "50"])
    assert isinstance(res.exception, LmforgeError), res.output  # no tokenizer: refused
    assert run.config.read_text() == "name: kept\n"
    assert (run.stages / "eval.json").read_text() == record
