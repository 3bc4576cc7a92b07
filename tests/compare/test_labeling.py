"""lmforge compare labeling on a tiny base: rules, majority vote and the label model label the
pool without people; pseudo-labels and active learning stay within their budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.compare.labeling import run_labeling
from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config
from lmforge.rundir import RunDir
from tests.helpers.finetune import finetune_keys, make_base, write_docs

# class x writes a-e, class y f-j: a word starting with a means x, with f means y; a 7-letter word says little
RULES = ("label.rules=[{name: has_a, kind: regex, label: x, pattern: '\\ba'},"
         " {name: has_f, kind: regex, label: y, pattern: '\\bf'},"
         " {name: long_word, kind: regex, label: x, pattern: '\\w{7}'}]")


def test_every_arm_on_the_same_test_passages(tmp_path: Path) -> None:
    base = resolve_base(make_base(tmp_path / "base").root)
    docs = write_docs(tmp_path / "docs.jsonl")
    cfg = finetune_config(base, None, finetune_keys(docs, "train.steps=4", "train.eval_interval=4",
                                                    "train.batch_size=4", RULES))
    result = run_labeling(base, RunDir(tmp_path / "cmp"), cfg, [8], threshold=0.5, strategy="margin")
    rows = {r["arm"]: r for r in result["results"]}
    assert set(rows) == {"majority", "label_model", "gold", "pseudo", "active-seed", "active-margin"}
    assert rows["gold"]["train_passages"] == 8 and rows["gold"]["label_accuracy"] == 1.0
    assert rows["active-margin"]["train_passages"] == 8 and rows["active-seed"]["train_passages"] == 4
    assert rows["pseudo"]["train_passages"] == 8 + rows["pseudo"]["pseudo_labels"]
    assert rows["majority"]["budget"] == 0 and 0 < rows["majority"]["coverage"] <= 1
    # single-class rules tie the vote count on every y passage; the label model reads their abstentions
    assert rows["label_model"]["coverage"] > rows["majority"]["coverage"]
    assert rows["label_model"]["label_accuracy"] > 0.9
    assert "| gold | 8 | 8 | 1.000 |" in result["table"]
    out = tmp_path / "cmp"
    assert "| gold | 8 | 8 | 1.000 |" in (out / "table.md").read_text() and (out / "figure.png").stat().st_size > 0
    cells = json.loads((out / "cells.json").read_text())
    assert "gold-b8" in [c["arm"] for c in cells] and "has_a" in (out / "config.yaml").read_text()  # its command's CONFIG


def test_without_rules_it_says_what_to_give(tmp_path: Path) -> None:
    base = resolve_base(make_base(tmp_path / "base").root)
    cfg = finetune_config(base, None, finetune_keys(write_docs(tmp_path / "d.jsonl")))
    with pytest.raises(LmforgeError, match="needs label.rules"):
        run_labeling(base, RunDir(tmp_path / "cmp"), cfg, [8])
