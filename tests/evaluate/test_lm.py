"""Language-model metrics on fixed token scores: consistency of loss, perplexity and bits per byte."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmforge.evaluate import lm


def test_perplexity_and_bpb_are_consistent_by_hand():
    # stream: doc0 = tokens [0..3], doc1 = [4..9]; 9 predicted tokens (targets at positions 1..9)
    starts = np.array([0, 4])
    losses = np.array([1.0, 2.0, 3.0, 0.5, 0.5, 1.5, 1.0, 2.0, 0.5])
    correct = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1], bool)
    topk = np.ones(9, bool)
    targets = np.array([1, 2, 1, 2, 1, 2, 1, 2, 1])
    byte_len = np.array([0, 2, 3])  # token 1 is 2 bytes, token 2 is 3 bytes
    out = lm.summarize(lm.TokenScores(losses, correct, topk), targets, byte_len, starts, rounds=200)
    assert out["tokens"] == 9 and out["documents"] == 2
    assert out["loss"] == pytest.approx(losses.mean())
    assert out["perplexity"] == pytest.approx(math.exp(losses.mean()))
    n_bytes = 5 * 2 + 4 * 3
    assert out["bytes"] == n_bytes
    assert out["bits_per_byte"] == pytest.approx(losses.sum() / n_bytes / math.log(2))
    # bits per byte = loss per token in bits x tokens per byte
    assert out["bits_per_byte"] == pytest.approx(out["loss"] / math.log(2) * 9 / n_bytes)
    assert out["accuracy"] == pytest.approx(5 / 9) and out["top5_accuracy"] == 1.0
    for key in ("loss", "perplexity", "bits_per_byte", "accuracy"):
        lo, hi = out[f"{key}_ci95"]
        assert lo <= out[key] <= hi


def test_documents_are_the_resampling_unit():
    starts = np.array([0, 3])
    doc = lm.document_of(6, starts)
    # targets at stream positions 1..6; position 3 starts document 1
    assert doc.tolist() == [0, 0, 1, 1, 1, 1]
    one_doc = lm.summarize(np.ones(5), np.ones(5, int), np.array([0, 1]), np.array([0]))
    assert one_doc["documents"] == 1 and one_doc["bits_per_byte_ci95"] is None


def test_per_source_numbers():
    starts = np.array([0, 3, 6, 9])
    losses = np.array([1.0] * 5 + [3.0] * 6)  # docs 0,1 (targets 1..5) easy; docs 2,3 hard
    scores = lm.TokenScores(losses, np.zeros(11, bool), np.zeros(11, bool))
    out = lm.summarize(scores, np.ones(11, int), np.array([0, 1]), starts, sources=["a", "a", "b", "b"], rounds=50)
    assert out["sources"]["a"]["tokens"] == 5 and out["sources"]["a"]["loss"] == pytest.approx(1.0)
    assert out["sources"]["b"]["loss"] == pytest.approx(3.0)


def test_score_tokens_matches_argmax_and_topk():
    from lmforge.config.schema import ModelConfig
    from lmforge.models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=13)
    data = np.random.default_rng(0).integers(0, 13, 30).astype(np.uint16)
    s = lm.score_tokens(model, data, block_size=8, batch_size=2, max_tokens=None, k=3)
    assert len(s) == 29
    with torch.no_grad():
        logits = model(torch.tensor(data[:8].astype(np.int64))[None])[0]
    y = torch.tensor(data[1:9].astype(np.int64))
    assert s.correct[:8].tolist() == (logits.argmax(-1) == y).tolist()
    assert s.topk[:8].tolist() == (logits.topk(3).indices == y[:, None]).any(-1).tolist()
    assert np.allclose(s.losses[:8], torch.nn.functional.cross_entropy(logits, y, reduction="none").numpy(), atol=1e-5)


def test_token_budget_covers_every_document():
    data = np.arange(100)
    starts = np.array([0, 10, 60])
    sub, sub_starts = lm.spread_budget(data, starts, 30)
    # 10 tokens from each document, centred: doc0 is exactly 10 long, doc1 [60..] centred in 10..59
    assert sub_starts.tolist() == [0, 10, 20]
    assert sub[:10].tolist() == list(range(10))
    assert sub[10:20].tolist() == list(range(30, 40))
    assert sub[20:].tolist() == list(range(75, 85))
    same, _ = lm.spread_budget(data, starts, None)
    assert same is data


def test_top_k_accuracy_is_named_by_its_k():
    """eval.accuracy_top_k=3 measures top-3 hits: eval.json must not call them top5_accuracy."""
    scores = lm.TokenScores(np.ones(4), np.zeros(4, bool), np.ones(4, bool))
    out = lm.summarize(scores, np.ones(4, int), np.array([0, 1]), np.array([0, 2]), rounds=20, k=3)
    assert out["top3_accuracy"] == 1.0 and "top3_accuracy_ci95" in out
    assert "top5_accuracy" not in out


def test_budget_on_one_document_takes_its_middle():
    """docs/evaluation.md: the budget is a chunk from the middle of every document, front matter
    skipped; a split of one document was cut to its first max_tokens tokens instead."""
    data = np.arange(100)
    sub, starts = lm.spread_budget(data, np.array([0]), 10)
    assert sub.tolist() == list(range(45, 55)) and starts.tolist() == [0]
