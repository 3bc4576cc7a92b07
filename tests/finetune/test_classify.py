"""lmforge finetune on a tiny base: freezing freezes, held-out documents stay held out, the
lineage is recorded, and bad bases and labels are refused with counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config, run_finetune
from lmforge.rundir import RunDir
from lmforge.train import checkpoint as ckpt
from tests.helpers.finetune import char_tokenizer, finetune_keys, make_base, write_docs


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDir, RunDir, dict]:
    """One fine-tune with the embeddings and the first block frozen."""
    tmp = tmp_path_factory.mktemp("ft")
    base = make_base(tmp / "base")
    docs = write_docs(tmp / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "finetune.freeze_embeddings=true",
                                                     "finetune.freeze_blocks=1"))
    out = RunDir(tmp / "ft")
    return base, out, run_finetune(found, out, cfg, show_progress=False)


def test_frozen_parameters_stay_bit_identical(frozen: tuple[RunDir, RunDir, dict]) -> None:
    base, out, result = frozen
    before = ckpt.read_weights(ckpt.latest_valid(base.checkpoints))
    after = ckpt.read_weights(ckpt.latest_valid(out.checkpoints))
    assert result["steps"] == 12
    frozen_names = [k for k in before if k.startswith(("tok_emb", "pos_emb", "blocks.0."))]
    moved_names = [k for k in before if k.startswith("blocks.1.")]
    assert frozen_names and moved_names
    for k in frozen_names:
        assert torch.equal(before[k], after[f"backbone.{k}"]), k
    assert any(not torch.equal(before[k], after[f"backbone.{k}"]) for k in moved_names)
    assert result["trainable_params"] < result["total_params"]


def test_no_passage_of_a_held_out_document_is_trained_on(frozen: tuple[RunDir, RunDir, dict]) -> None:
    _, out, result = frozen
    lineage = json.loads((out.root / "lineage.json").read_text())
    docs = {s: set(v) for s, v in lineage["documents"].items()}
    assert docs["train"] and docs["val"] and docs["test"]
    assert not docs["train"] & docs["val"] and not docs["train"] & docs["test"] and not docs["val"] & docs["test"]
    # every class is held out (stratified by label) and every held-out passage is scored
    assert set(result["data"]["documents"]["test"]) == {"x", "y"}
    assert all(n > 0 for n in result["data"]["documents"]["test"].values())
    assert result["test"]["n"] == sum(result["data"]["passages"]["test"].values())


def test_lineage_and_metrics_are_recorded(frozen: tuple[RunDir, RunDir, dict]) -> None:
    base, out, _result = frozen
    lineage = json.loads((out.root / "lineage.json").read_text())
    assert lineage["base"]["kind"] == "run" and lineage["base"]["step"] == 10
    assert Path(lineage["base"]["path"]) == base.root.resolve()
    assert lineage["base"]["weights_sha256"]["model.safetensors"]
    saved = json.loads((out.root / "finetune.json").read_text())
    for key in ("f1_macro", "mcc", "confusion_matrix", "per_class"):
        assert key in saved["test"]
    assert saved["test"]["f1_macro"]["ci95"] is not None
    assert saved["method"] == "frozen: embeddings + 1 blocks"


def test_a_missing_label_is_refused_with_its_count(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl", missing=3)
    found = resolve_base(base.root)
    with pytest.raises(LmforgeError, match=r"missing, null or empty in 3 of 16 records \(first: x0, x1, x2\)"):
        run_finetune(found, RunDir(tmp_path / "ft"), finetune_config(found, None, finetune_keys(docs)), False)


def test_one_class_is_refused(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl", classes=("x",))
    found = resolve_base(base.root)
    with pytest.raises(LmforgeError, match="one class only: all 8 records are 'x'"):
        run_finetune(found, RunDir(tmp_path / "ft"), finetune_config(found, None, finetune_keys(docs)), False)


def test_a_shape_that_does_not_fit_the_base_is_refused(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "model.n_embd=64"))
    with pytest.raises(LmforgeError, match=r"model.n_embd=64 \(the base has 32\)"):
        run_finetune(found, RunDir(tmp_path / "ft"), cfg, False)


def test_a_tokenizer_that_does_not_fit_the_weights_is_refused(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base.tokenizer))
    tok.add_special_tokens(["<extra1>", "<extra2>"])  # now 15 tokens; the weights have 13 rows
    tok.save(str(base.tokenizer))
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    with pytest.raises(LmforgeError, match="has 15 tokens but its weights .* have 13 embedding rows"):
        run_finetune(found, RunDir(tmp_path / "ft"), finetune_config(found, None, finetune_keys(docs)), False)


def test_what_is_not_a_base_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="base not found"):
        resolve_base(tmp_path / "nothing")
    char_tokenizer(tmp_path / "folder" / "tokenizer.json")
    with pytest.raises(LmforgeError, match="is not a base lmforge can start from"):
        resolve_base(tmp_path / "folder")


def test_an_encoder_base_is_fine_tuned_through_its_cls_token(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base", "model.family=encoder")
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "finetune.pooling=cls", "train.steps=4"))
    result = run_finetune(found, RunDir(tmp_path / "ft"), cfg, show_progress=False)
    assert result["steps"] == 4 and result["test"]["n"] > 0
    with pytest.raises(LmforgeError, match="pooling 'cls' reads position 0"):
        decoder = make_base(tmp_path / "dec")
        run_finetune(resolve_base(decoder.root), RunDir(tmp_path / "ft2"),
                     finetune_config(resolve_base(decoder.root), None, finetune_keys(docs, "finetune.pooling=cls")),
                     False)
