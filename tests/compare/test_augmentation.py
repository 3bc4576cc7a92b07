"""lmforge compare augmentation on a tiny base: each operation adds copies of the training
passages only, every arm is scored on the same held-out passages."""

from __future__ import annotations

from pathlib import Path

from lmforge.compare.augmentation import run_augmentation
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config
from lmforge.rundir import RunDir
from tests.helpers.finetune import finetune_keys, make_base, write_docs


def test_each_operation_at_each_size_on_the_same_test_passages(tmp_path: Path) -> None:
    base = resolve_base(make_base(tmp_path / "base").root)
    docs = write_docs(tmp_path / "docs.jsonl")
    cfg = finetune_config(base, None, finetune_keys(docs, "train.steps=4", "train.eval_interval=4", "train.batch_size=4"))
    out = RunDir(tmp_path / "cmp")
    result = run_augmentation(base, out, cfg, [12], ["swap", "char_noise"], 0.3)
    rows = {(r["operation"], r["size"]): r for r in result["results"]}
    assert set(rows) == {(o, 12) for o in ("none", "swap", "char_noise")}
    for size in (12,):
        none = rows[("none", size)]
        assert none["train_passages"] == size
        for op in ("swap", "char_noise"):
            assert rows[(op, size)]["train_passages"] == 2 * size  # one changed copy of each
            assert rows[(op, size)]["test_passages"] == none["test_passages"]
    assert set(result["examples"]) == {"swap", "char_noise"}
    assert result["examples"]["swap"]["before"] != result["examples"]["swap"]["after"]
    assert "| char_noise | 12 | 24 |" in result["table"]
    table = (out.root / "table.md").read_text()
    assert table.startswith("# Table 3.") and "| swap | 12 | 24 |" in table and "swap: …" in table  # its example
    assert (out.root / "figure.png").stat().st_size > 0 and (out.root / "cells.json").is_file()
