"""lmforge compare continual on a tiny A run: every method from the same start, both domains
scored before and after, lineage per arm, table and figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.compare.continual import run_continual
from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.rundir import RunDir
from lmforge.tokens.loader import MixedWindows, RandomWindows
from tests.helpers.finetune import add_tokens, make_base, write_docs


def test_every_method_starts_from_a_and_is_scored_on_both_domains(tmp_path: Path) -> None:
    base = make_base(tmp_path / "A")
    add_tokens(base)
    docs = write_docs(tmp_path / "b.jsonl", per_class=6, classes=("y",), chars=1500)
    keys = [f"data.paths=[{docs}]", "data.corpus=none", "data.dedup=none", "train.steps=6", "train.batch_size=4",
            "train.warmup_steps=2", "train.log_interval=2", "train.lr=3e-3"]
    result = run_continual(resolve_base(base.root), RunDir(tmp_path / "cmp"), keys, ["naive", "replay", "ewc", "l2"],
                           0.5, {"ewc": 0.1, "l2": 0.1}, fisher_windows=8)
    rows = {r["method"]: r for r in result["results"]}
    assert list(rows) == ["naive", "replay", "ewc", "l2"]
    starts = {(r["before"]["A"], r["before"]["B"]) for r in rows.values()}
    assert len(starts) == 1  # the same checkpoint of A, scored on the same windows
    for r in rows.values():
        assert r["steps"] == 6
        assert r["forgetting"] == pytest.approx(r["after"]["A"] - r["before"]["A"])
        assert r["gain"] == pytest.approx(r["before"]["B"] - r["after"]["B"])
    assert rows["replay"]["b_tokens"] < rows["naive"]["b_tokens"]  # half of each replay batch is A's
    assert rows["ewc"]["fisher_seconds"] > 0
    lineage = json.loads((tmp_path / "cmp" / "ewc" / "lineage.json").read_text())
    assert lineage["base"]["step"] == 10 and lineage["schedule"]["rewarmed"]
    assert (tmp_path / "cmp" / "figure.png").stat().st_size > 0
    assert "| replay |" in (tmp_path / "cmp" / "table.md").read_text()
    assert (tmp_path / "cmp" / "table.md").read_text().startswith("# Table 13.")
    cells = json.loads((tmp_path / "cmp" / "cells.json").read_text())
    assert [c["arm"] for c in cells] == ["naive", "replay", "ewc", "l2"] and "--methods ewc" in cells[2]["command"]
    saved = json.loads((tmp_path / "cmp" / "result.json").read_text())
    assert saved["number"] == 13 and saved["rows"][1][0] == "replay" and len(saved["results"]) == 4
    with pytest.raises(LmforgeError, match="unknown continual method"):
        run_continual(resolve_base(base.root), RunDir(tmp_path / "cmp"), keys, ["forget"], 0.5, {}, 8)


def test_replay_batches_mix_both_domains() -> None:
    import numpy as np

    a = np.zeros(500, dtype=np.uint16)
    b = np.ones(500, dtype=np.uint16)
    mixed = MixedWindows(RandomWindows(b, 8, 8, 0), RandomWindows(a, 8, 8, 1), 0.25)
    x, _ = mixed.next()
    assert x.shape == (8, 8) and int((x[:, 0] == 0).sum()) == 2
    state = mixed.state_dict()
    again = mixed.next()
    mixed.load_state_dict(state)
    assert all((u == v).all() for u, v in zip(mixed.next(), again))
