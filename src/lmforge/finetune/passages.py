"""A classification task from documents: labels from a record field, a split by document, then
passages cut from each document, tokenized with the base's tokenizer.

The split comes first and the passages after it, so every passage of a held-out document is
held out with it: a classifier cannot score well by recognising a document it was trained on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.config.schema import DataConfig, FinetuneConfig
from lmforge.data.splits import split_documents
from lmforge.errors import LmforgeError
from lmforge.models.classifier import PAD

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split's passages: token ids right-padded with PAD, label indices, and where each came from."""

    x: np.ndarray
    y: np.ndarray
    docs: list[str] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)


@dataclass
class Task:
    labels: list[str]
    splits: dict[str, Split]
    documents: dict[str, list[str]]  # split -> document ids
    summary: dict[str, Any]


def label_of(rec: Mapping[str, Any], name: str) -> str | None:
    """The record's label as text, or None when missing, null or empty."""
    value = rec.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def check_labels(records: Sequence[Mapping[str, Any]], name: str) -> list[str]:
    """Every record's label; a label missing anywhere, or a single class, is an error that counts
    the records concerned and names the first few."""
    labels = [label_of(r, name) for r in records]
    missing = [str(r.get("id", i)) for i, (r, lab) in enumerate(zip(records, labels)) if lab is None]
    if missing:
        raise LmforgeError(
            f"finetune.label_field '{name}' is missing, null or empty in {len(missing)} of {len(records)} "
            f"records (first: {', '.join(missing[:3])})",
            f"give those records a '{name}', or set a missing-value rule for it in the data section "
            f"(data.sources[].fields.{name}: action reject, fill or majority), or choose another label field")
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "?")
        raise LmforgeError(f"finetune.label_field '{name}' has one class only: all {len(records)} records are "
                           f"'{only}'", "add documents of another class (e.g. data.authors=[shakespeare,milton])")
    return [lab for lab in labels if lab is not None]


def cut_passages(text: str, chars: int, limit: int | None) -> list[str]:
    """Consecutive passages of about `chars` characters, each ending at a space; a short tail is
    dropped. With `limit`, that many evenly spaced passages (the same ones every time)."""
    words = text.split()
    out: list[str] = []
    current: list[str] = []
    size = 0
    for word in words:
        current.append(word)
        size += len(word) + 1
        if size >= chars:
            out.append(" ".join(current))
            current, size = [], 0
    if limit is not None and len(out) > limit:
        picks = np.linspace(0, len(out) - 1, limit).round().astype(int)
        out = [out[i] for i in sorted(set(picks.tolist()))]
    return out


def split_by_document(records: Sequence[Mapping[str, Any]], labels: Sequence[str], cfg: FinetuneConfig
                      ) -> list[str]:
    """train/val/test per document (data/splits.py), stratified by label so each class is held
    out in proportion; near-duplicate clusters stay in one split."""
    keyed = [{**r, "label": lab} for r, lab in zip(records, labels)]
    counts = Counter(labels)
    small = {k: v for k, v in counts.items() if v < 3}
    if small:
        raise LmforgeError(f"finetune: every class needs at least 3 documents (one each for train, validation "
                           f"and test); too few: {', '.join(f'{k} ({v})' for k, v in sorted(small.items()))}",
                           "add documents of those classes or choose another label field")
    split_cfg = DataConfig(val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                           min_val_docs=len(counts), min_test_docs=len(counts), split_stratify="label",
                           split_group="cluster", seed=cfg.seed)
    return split_documents(keyed, split_cfg)


def encode(texts: Sequence[str], tok: Tokenizer, length: int, prefix: Sequence[int] = ()) -> np.ndarray:
    """Token ids (n, length): `prefix` (an encoder's [CLS]) then the passage, truncated, padded with PAD."""
    out = np.full((len(texts), length), PAD, dtype=np.int64)
    for i, enc in enumerate(tok.encode_batch(list(texts))):
        ids = (list(prefix) + enc.ids)[:length]
        out[i, : len(ids)] = ids
    return out


def subsample(idx: list[int], labels: Sequence[int], n: int, seed: int) -> list[int]:
    """`n` of the indices, stratified by label (each class in proportion, at least one each)."""
    if n >= len(idx):
        return idx
    rng = random.Random(seed)
    by: dict[int, list[int]] = {}
    for i in idx:
        by.setdefault(int(labels[i]), []).append(i)
    keep: list[int] = []
    for lab, members in sorted(by.items()):
        rng.shuffle(members)
        keep += members[: max(1, round(n * len(members) / len(idx)))]
    return sorted(keep)


def build_task(records: Sequence[Mapping[str, Any]], cfg: FinetuneConfig, tok: Tokenizer, length: int,
               prefix: Sequence[int] = ()) -> Task:
    """Labels, document split, passages and token ids of every split."""
    labels = check_labels(records, cfg.label_field)
    names = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(names)}
    assignment = split_by_document(records, labels, cfg)
    splits: dict[str, Split] = {}
    documents: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        texts, ys, docs = [], [], []
        for rec, lab, where in zip(records, labels, assignment):
            if where != split:
                continue
            doc_id = str(rec.get("id"))
            documents[split].append(doc_id)
            cut = cut_passages(str(rec.get("text", "")), cfg.passage_chars, cfg.max_passages_per_doc)
            texts += cut
            ys += [index[lab]] * len(cut)
            docs += [doc_id] * len(cut)
        y = np.asarray(ys, dtype=np.int64)
        keep = list(range(len(texts)))
        if split == "train" and cfg.train_passages is not None:
            keep = subsample(keep, y, cfg.train_passages, cfg.seed)
        texts, docs, y = [texts[i] for i in keep], [docs[i] for i in keep], y[keep]
        if len(texts) == 0:
            raise LmforgeError(f"finetune: the {split} split has no passage (its documents are shorter than "
                               f"finetune.passage_chars={cfg.passage_chars})", "lower finetune.passage_chars")
        x = encode(texts, tok, length, prefix)
        x = x[:, : max(1, int((x != PAD).sum(1).max()))]  # no column of padding alone
        splits[split] = Split(x, y, docs, [len(t) for t in texts])
    summary = {
        "labels": names, "label_field": cfg.label_field,
        "documents": {s: {lab: sum(1 for r, lb, w in zip(records, labels, assignment) if w == s and lb == lab)
                          for lab in names} for s in SPLITS},
        "passages": {s: {names[k]: int(v) for k, v in zip(*np.unique(splits[s].y, return_counts=True))}
                     for s in SPLITS},
        "mean_passage_chars": {s: float(np.mean(splits[s].chars)) for s in SPLITS},
        "mean_passage_tokens": {s: float((splits[s].x != PAD).sum(1).mean()) for s in SPLITS},
        "passages_cut_at_max_tokens": {s: int(((splits[s].x != PAD).sum(1) == length).sum()) for s in SPLITS},
    }
    return Task(names, splits, documents, summary)
