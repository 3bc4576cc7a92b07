"""lmforge compare transfer on a tiny base: every arm at every size on the same held-out passages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.compare.transfer import arms, run_transfer
from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config
from lmforge.rundir import RunDir
from tests.helpers.finetune import finetune_keys, make_base, write_docs


def test_arms_share_held_out_passages_and_differ_in_what_trains(tmp_path: Path) -> None:
    assert list(arms(2)) == ["scratch", "full", "frozen-1", "frozen-2", "lora"]
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "train.steps=4"))
    out = RunDir(tmp_path / "cmp")
    result = run_transfer(found, out, cfg, [8, 24], ["scratch", "full", "frozen-2"])
    rows = {(r["arm"], r["size"]): r for r in result["results"]}
    assert len(rows) == 6
    assert {r["train_passages"] for r in rows.values() if r["size"] == 8} == {8}
    assert len({r["test_passages"] for r in rows.values()}) == 1
    assert rows[("frozen-2", 8)]["trainable_params"] < rows[("full", 8)]["trainable_params"]
    assert rows[("scratch", 8)]["trainable_params"] == rows[("full", 8)]["trainable_params"]
    scratch = json.loads((out.root / "n8" / "scratch" / "finetune.json").read_text())
    assert scratch["init"] == "scratch"
    assert (out.root / "transfer.png").stat().st_size > 0 and "| frozen-2 | 24 |" in result["table"]
    with pytest.raises(LmforgeError, match="unknown arm"):
        run_transfer(found, out, cfg, [8], ["frozen-9"])
