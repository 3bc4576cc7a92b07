"""The trainer's commands: `lmforge lr plot` and bad input on the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lmforge.cli import app


def test_lr_plot_writes_png_and_every_step(tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    res = CliRunner().invoke(app, ["lr", "plot", "train.schedule=wsd", "train.steps=200", "train.warmup_steps=10",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "wsd: first 0.0003, peak 0.003 at step 9" in res.output
    assert out.stat().st_size > 1000
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "step,lr" and len(rows) == 201


def test_unknown_schedule_names_the_choices(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["lr", "plot", "train.schedule=cosin", "--out", str(tmp_path / "x.png")])
    assert res.exit_code != 0
    assert "cosine" in str(res.exception) and "train.schedule" in str(res.exception)
