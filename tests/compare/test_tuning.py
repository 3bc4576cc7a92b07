"""lmforge compare tuning: one change per arm from the same base, losses measured alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.compare.tuning import arms, run_tuning
from lmforge.config.load import config_over, load_config
from lmforge.errors import LmforgeError
from tests.helpers.runs import make_token_run


def test_each_arm_changes_one_thing_and_reports_the_gap(tmp_path: Path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.eval_interval=10", "train.log_interval=5",
                                           "train.checkpoint_interval=100", "monitor.early_stop.min_delta=10"])
    base = load_config(run.config)
    names = list(arms(base))
    assert names == ["base", "deeper", "wider", "lr-search", "dropout", "l1", "l2", "early-stop"]
    changed = {n: config_over(base, None, keys) for n, keys in arms(base).items()}
    assert changed["deeper"].model.n_layer == 2 * base.model.n_layer and changed["dropout"].model.dropout == 0.1
    assert changed["l1"].train.l1 > 0 and changed["l2"].train.weight_decay > base.train.weight_decay
    result = run_tuning(run, base, ["base", "lr-search", "early-stop"])
    rows = {r["arm"]: r for r in result["results"]}
    for r in rows.values():
        assert r["gap"] == pytest.approx(r["val_loss"] - r["train_loss"])
    assert rows["lr-search"]["lr"] != base.train.lr
    assert rows["early-stop"]["steps"] < 20  # min_delta 10: no check counts as an improvement
    assert rows["base"]["steps"] == 20
    saved = json.loads((run.root / "result.json").read_text())
    assert [r["arm"] for r in saved["results"]] == list(rows) and saved["number"] == 12
    assert [r[0] for r in saved["rows"]] == list(rows)
    assert (run.root / "figure.png").stat().st_size > 0 and (run.root / "table.csv").is_file()
    assert [c["arm"] for c in json.loads((run.root / "cells.json").read_text())] == list(rows)
    with pytest.raises(LmforgeError, match="unknown arm"):
        run_tuning(run, base, ["bigger"])
