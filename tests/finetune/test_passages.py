"""Passages, the document split and the pooled head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from lmforge.config.load import model_config
from lmforge.config.schema import FinetuneConfig
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
