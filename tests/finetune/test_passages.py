"""Passages, the document split and the pooled head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from lmforge.config.load import model_config
from lmforge.config.schema import FinetuneConfig
from lmforge.errors import LmforgeError
from lmforge.finetune.passages import build_task, cut_passages
from lmforge.models.classifier import PAD, SequenceClassifier
from lmforge.models.registry import build_model
from tests.helpers.finetune import char_tokenizer, write_docs


def test_passages_end_at_spaces_and_keep_evenly_spaced_ones() -> None:
    text = " ".join(f"w{i:03d}" for i in range(200))  # 200 words of 4 characters
    cut = cut_passages(text, 50, None)
    assert all(len(p) >= 49 and not p.startswith(" ") for p in cut)
    assert " ".join(cut) == text[: len(" ".join(cut))]  # consecutive, nothing lost but the tail
    kept = cut_passages(text, 50, 4)
    assert len(kept) == 4 and kept[0] == cut[0] and kept[-1] == cut[-1]


def test_no_held_out_passage_is_in_training(tmp_path: Path) -> None:
    char_tokenizer(tmp_path / "tok.json")
    tok = Tokenizer.from_file(str(tmp_path / "tok.json"))
    rows = [json.loads(line) for line in write_docs(tmp_path / "d.jsonl", per_class=10).read_text().splitlines()]
    for seed in range(3):
        task = build_task(rows, FinetuneConfig(passage_chars=40, max_passages_per_doc=None, seed=seed), tok, 64)
        docs = {s: set(task.splits[s].docs) for s in ("train", "val", "test")}
        assert docs["train"].isdisjoint(docs["val"] | docs["test"]) and docs["val"].isdisjoint(docs["test"])
        assert docs == {s: set(v) for s, v in task.documents.items()}
        train_rows = {tuple(r) for r in task.splits["train"].x.tolist()}
        assert not any(tuple(r) in train_rows for r in task.splits["test"].x.tolist())
        assert set(task.splits["test"].y.tolist()) == {0, 1}


def test_last_token_pooling_ignores_padding() -> None:
    torch.manual_seed(0)
    for family in ("gpt", "llama"):
        backbone = build_model(model_config(family=family, n_layer=1, n_head=2, n_embd=16, block_size=12), 10)
        for pooling in ("last", "mean"):
            clf = SequenceClassifier(backbone, 2, pooling).eval()
            ids = torch.randint(0, 10, (1, 7))
            padded = torch.cat([ids, torch.full((1, 5), PAD)], 1)
            with torch.no_grad():
                torch.testing.assert_close(clf(padded), clf(ids))
                assert not torch.allclose(clf(padded), clf(ids[:, :6]))


def test_a_passage_longer_than_the_context_is_read_in_windows() -> None:
    torch.manual_seed(0)
    backbone = build_model(model_config(n_layer=1, n_head=2, n_embd=16, block_size=8), 10)
    clf = SequenceClassifier(backbone, 2, "last").eval()
    ids = torch.randint(0, 10, (1, 13))  # windows of 8 and 5 real tokens
    with torch.no_grad():
        first, second = clf.pooled(ids[:, :8]), clf.pooled(ids[:, 8:])
        torch.testing.assert_close(clf.pooled(ids), (8 * first + 5 * second) / 13)
        padded = torch.cat([ids, torch.full((1, 7), PAD)], 1)  # a third window of padding only
        torch.testing.assert_close(clf.pooled(padded), clf.pooled(ids))


def test_balanced_class_weights_follow_scikit_learn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    from lmforge.finetune.classify import class_weights
    from lmforge.finetune.passages import Split, Task

    y = np.array([0] * 30 + [1] * 6 + [2] * 4)
    task = Task(["a", "b", "c"], {"train": Split(np.zeros((40, 2), dtype=np.int64), y)}, {}, {})
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(class_weights(task, "balanced").numpy(), expected, rtol=1e-6)
    assert class_weights(task, "none") is None


def test_a_group_shares_one_split(tmp_path: Path) -> None:
    char_tokenizer(tmp_path / "tok.json")
    tok = Tokenizer.from_file(str(tmp_path / "tok.json"))
    rows = [json.loads(line) for line in write_docs(tmp_path / "d.jsonl", per_class=10).read_text().splitlines()]
    for i, row in enumerate(rows):
        row["work"] = f"w{i // 2}"  # x0+x1, x2+x3, ...: two editions of one work
    rows[4]["cluster"] = rows[6]["cluster"] = "c"  # a near-duplicate pair joins w2 and w3
    for seed in range(4):
        cfg = FinetuneConfig(passage_chars=40, max_passages_per_doc=2, group_field="work", val_fraction=0.3,
                             test_fraction=0.3, seed=seed)
        task = build_task(rows, cfg, tok, 64)
        where = {d: s for s, docs in task.documents.items() for d in docs}
        for a, b in ((0, 1), (2, 3), (4, 5), (6, 7), (4, 7), (10, 11)):
            assert where[rows[a]["id"]] == where[rows[b]["id"]]
    with pytest.raises(LmforgeError, match="finetune.group_field 'title' is missing in record x0"):
        build_task(rows, FinetuneConfig(passage_chars=40, group_field="title"), tok, 64)


def test_the_position_split_holds_out_the_end_of_every_document(tmp_path: Path) -> None:
    char_tokenizer(tmp_path / "tok.json")
    tok = Tokenizer.from_file(str(tmp_path / "tok.json"))
    rows = [json.loads(line) for line in write_docs(tmp_path / "d.jsonl", per_class=3).read_text().splitlines()]
    for row in rows:
        row["work"] = row["id"]  # one class per document
    cfg = FinetuneConfig(label_field="work", split="position", passage_chars=40, max_passages_per_doc=None)
    task = build_task(rows, cfg, tok, 64)
    assert len(task.labels) == 6
    for row in rows:
        cut = cut_passages(row["text"], 40, None)
        n = {s: task.splits[s].docs.count(row["id"]) for s in ("train", "val", "test")}
        assert all(n.values()) and sum(n.values()) == len(cut)
        assert n["test"] == round(len(cut) * 0.2) and n["val"] == round(len(cut) * 0.15)
    train_rows = {tuple(r) for r in task.splits["train"].x.tolist()}
    assert not any(tuple(r) in train_rows for r in task.splits["test"].x.tolist())
    short = [{**rows[0], "text": rows[0]["text"][:90]}, *rows[1:]]
    with pytest.raises(LmforgeError, match="document x0 gives only 2 passages"):
        build_task(short, cfg, tok, 64)


def test_held_out_test_documents_are_scored_on_every_passage_by_default(tmp_path: Path) -> None:
    """max_passages_per_doc caps training and validation documents only; the test documents give
    all their passages unless finetune.test_passages_per_doc caps them too."""
    char_tokenizer(tmp_path / "tok.json")
    tok = Tokenizer.from_file(str(tmp_path / "tok.json"))
    rows = [json.loads(line) for line in write_docs(tmp_path / "d.jsonl", per_class=10).read_text().splitlines()]
    text = {r["id"]: r["text"] for r in rows}
    task = build_task(rows, FinetuneConfig(passage_chars=40, max_passages_per_doc=2), tok, 64)
    for split in ("train", "val"):
        assert all(task.splits[split].docs.count(d) <= 2 for d in task.documents[split])
    counts = [task.splits["test"].docs.count(d) for d in task.documents["test"]]
    assert counts == [len(cut_passages(text[d], 40, None)) for d in task.documents["test"]] and max(counts) > 2
    capped = build_task(rows, FinetuneConfig(passage_chars=40, max_passages_per_doc=2, test_passages_per_doc=2),
                        tok, 64)
    assert capped.documents == task.documents
    assert all(capped.splits["test"].docs.count(d) <= 2 for d in capped.documents["test"])
