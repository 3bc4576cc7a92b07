"""The trainer's commands: `lmforge lr plot` and bad input on the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.train import checkpoint as ckpt
from tests.helpers.runs import make_tokens


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


def test_lr_plot_refuses_an_out_that_is_not_a_png(tmp_path: Path) -> None:
    for out, better in ((tmp_path / "lr.txt", "lr.png"), (tmp_path, "lr_schedule.png"), (tmp_path / "lr", "lr.png")):
        res = CliRunner().invoke(app, ["lr", "plot", "--out", str(out)])
        assert isinstance(res.exception, LmforgeError), res.output
        assert "--out" in res.exception.message and better in (res.exception.hint or "")
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / f"{tmp_path.name}.png").exists()


def test_lr_find_refuses_a_falling_sweep(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["lr-find", "--start-lr", "1", "--end-lr", "1e-3", "-o", str(tmp_path / "r")])
    assert isinstance(res.exception, LmforgeError) and "--start-lr" in res.exception.message
    assert not (tmp_path / "r").exists()  # refused before data and tokenize


def test_a_refused_train_command_leaves_the_runs_config(tmp_path: Path) -> None:
    """config.yaml must keep describing the checkpoints: eval, generate and export read it."""
    run = make_tokens(tmp_path / "run")
    base = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16", "train.steps=3",
            "train.batch_size=8", "train.eval_batches=1", "train.threads=1", "train.device=cpu"]
    res = CliRunner().invoke(app, ["train", str(run.root), "--preset", "smoke", *base])
    assert res.exit_code == 0, res.output
    config, record = run.config.read_text(), (run.stages / "train.json").read_text()
    res = CliRunner().invoke(app, ["train", str(run.root), "model.n_layer=2", "train.micro_batch_size=3"])
    assert isinstance(res.exception, LmforgeError) and "micro_batch_size" in res.exception.message
    assert run.config.read_text() == config and (run.stages / "train.json").read_text() == record
    assert [p.name for p in ckpt.list_checkpoints(run.checkpoints)] == ["step-3"]
    res = CliRunner().invoke(app, ["train", str(run.root)])  # unchanged: skipped, checkpoints kept
    assert res.exit_code == 0 and "skipped" in res.output, res.output
