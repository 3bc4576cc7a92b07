"""The training passages of a fine-tuning task as text, and a task rebuilt with other training
passages (augmented copies, other labels) — validation and test left exactly as they were.

The texts are cut again from the training documents with finetune/passages.py's own
`cut_passages`, in the order `build_task` cut them, so index i here is passage i of the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.config.schema import FinetuneConfig
from lmforge.finetune.passages import Split, Task, cut_passages, encode
from lmforge.models.classifier import PAD


def train_texts(records: Sequence[Mapping[str, Any]], task: Task, cfg: FinetuneConfig) -> list[str]:
    """Every training passage's text, aligned with task.splits['train'] (built without train_passages)."""
    train = set(task.documents["train"])
    texts: list[str] = []
    for rec in records:
        if str(rec.get("id")) in train:
            texts += cut_passages(str(rec.get("text", "")), cfg.passage_chars, cfg.max_passages_per_doc)
    if len(texts) != len(task.splits["train"].y):
        raise AssertionError(f"{len(texts)} texts for {len(task.splits['train'].y)} training passages: "
                             "the task was built with finetune.train_passages set")
    return texts


def with_train(task: Task, texts: Sequence[str], y: Sequence[int], docs: Sequence[str], tok: Tokenizer,
               length: int, prefix: Sequence[int]) -> Task:
    """`task` with these training passages instead of its own."""
    x = encode(texts, tok, length, prefix)
    x = x[:, : max(1, int((x != PAD).sum(1).max()))]
    split = Split(x, np.asarray(y, dtype=np.int64), list(docs), [len(t) for t in texts])
    counts = dict(zip(*np.unique(split.y, return_counts=True)))
    summary = {**task.summary, "passages": {**task.summary["passages"],
                                            "train": {task.labels[int(k)]: int(v) for k, v in counts.items()}}}
    return replace(task, splits={**task.splits, "train": split}, summary=summary)
