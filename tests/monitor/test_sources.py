"""Validation loss per data source: a learnable source ends lower than a random one."""

from __future__ import annotations

import json
import math

import numpy as np

from lmforge.monitor.sources import source_names
from tests.helpers.runs import make_token_run, read_jsonl, train

VOCAB = 64


def add_two_sources(run) -> None:
    """Rewrite the token files as documents alternating between a repeating pattern and noise."""
    rng = np.random.default_rng(1)
    pattern = rng.integers(0, VOCAB, 97)
    for split, n_docs in (("train", 200), ("val", 40)):
        docs, kinds = [], []
        for i in range(n_docs):
            if i % 2 == 0:
                docs.append(np.tile(pattern, 3)[rng.integers(0, 97):][:200])
            else:
                docs.append(rng.integers(0, VOCAB, 200))
            kinds.append(i % 2)
        flat = np.concatenate(docs).astype(np.uint16)
        flat.tofile(run.token_file(split))
        np.save(run.tokens / f"{split}.docs.npy", np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64))
        np.save(run.tokens / f"{split}.doc_sources.npy", np.asarray(kinds, dtype=np.int32))
    meta = json.loads((run.tokens / "meta.json").read_text())
    meta["sources"] = ["plays/pattern", "noise"]
    meta["splits"]["val"]["tokens"] = 40 * 200
    (run.tokens / "meta.json").write_text(json.dumps(meta))


def test_val_loss_per_source(tmp_path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=150", "train.log_interval=50", "train.eval_interval=150",
                                            "monitor.source_loss=true", "monitor.stats_interval=0",
                                            "monitor.tensorboard=false"])
    add_two_sources(run)
    assert source_names(run.tokens) == ["plays/pattern", "noise"]
    train(run)
    (ev,) = [r for r in read_jsonl(run.metrics) if r["kind"] == "eval"]
    pattern, noise = ev["val_loss/plays_pattern"], ev["val_loss/noise"]
    assert pattern < noise - 0.5, (pattern, noise)  # the pattern is learnable, the noise is not
    assert abs(noise - math.log(VOCAB)) < 0.5  # the best one can do on uniform noise is log(vocab)


def test_no_per_source_loss_with_one_source(tmp_path) -> None:
    run = make_token_run(tmp_path / "run")
    assert source_names(run.tokens) is None
