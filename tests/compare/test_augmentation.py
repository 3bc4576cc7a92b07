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


def test_paraphrase_by_the_base_is_one_of_the_arms(tmp_path: Path) -> None:
    """Through the command: with augment.paraphrase.model unset, the base itself writes."""
    import json

    from typer.testing import CliRunner

    from lmforge.cli import app

    base = make_base(tmp_path / "base", "model.n_layer=1", "model.n_head=1", "model.n_embd=16", "model.block_size=16")
    docs = write_docs(tmp_path / "docs.jsonl", per_class=4, chars=200)
    keys = finetune_keys(docs, "train.steps=2", "train.eval_interval=2", "train.batch_size=4")
    res = CliRunner().invoke(app, ["compare", "augmentation", str(base.root), *keys, "--ops", "paraphrase",
                                   "--sizes", "4", "--rate", "0.1", "-o", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "cmp" / "result.json").read_text())
    rows = {r["operation"]: r for r in result["results"]}
    assert rows["paraphrase"]["train_passages"] == 2 * rows["none"]["train_passages"] == 8
    assert rows["paraphrase"]["test_passages"] == rows["none"]["test_passages"]
    example = result["examples"]["paraphrase"]
    assert example["before"] != example["after"]


def test_paraphrase_writes_with_the_base_unless_a_model_is_named(tmp_path: Path) -> None:
    """The book's runner and the command both pass every registered operation: paraphrase must
    find a model without a key set."""
    from lmforge.compare.augmentation import augment_section

    base = resolve_base(make_base(tmp_path / "base").root)
    docs = write_docs(tmp_path / "docs.jsonl")
    aug = augment_section(finetune_config(base, None, finetune_keys(docs)), base, ["swap", "paraphrase"], 0.2)
    assert [(o.name, o.rate) for o in aug.operations] == [("swap", 0.2), ("paraphrase", 0.2)]
    assert aug.paraphrase.model == str(base.path)
    other = tmp_path / "other-run"
    named = finetune_config(base, None, finetune_keys(docs, f"augment.paraphrase.model={other}"))
    assert augment_section(named, base, ["paraphrase"], 0.2).paraphrase.model == str(other)


def test_an_example_with_line_breaks_stays_one_line_of_the_table() -> None:
    from lmforge.compare.augmentation import example_notes
    from lmforge.compare.output import markdown

    notes = example_notes({"paraphrase": {"before": "To be,\nor not", "after": "To be,\nand so"}})
    assert len(notes) == 2 and "\n" not in notes[1] and "\\n" in notes[1]
    assert markdown(["op"], [["a\nb|c"]]).splitlines()[-1] == "| a b\\|c |"
