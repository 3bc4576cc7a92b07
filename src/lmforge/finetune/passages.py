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


def split_groups(records: Sequence[Mapping[str, Any]], group_field: str | None) -> list[str]:
    """Each record's group: records that must share a split (and a cross-validation fold). A
    near-duplicate cluster (the data stage's `cluster`) is one group; with `group_field`, so is
    every value of that field (`work`: both editions of one play), and groups joined by either
    rule merge (union-find)."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, rec in enumerate(records):
        keys = [f"cluster:{rec['cluster']}"] if rec.get("cluster") is not None else []
        if group_field:
            value = label_of(rec, group_field)
            if value is None:
                raise LmforgeError(f"finetune.group_field '{group_field}' is missing in record "
                                   f"{rec.get('id', i)}", f"give every record a '{group_field}', or drop "
                                   "finetune.group_field")
            keys.append(f"{group_field}:{value}")
        for key in keys:
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    return [str(records[root(i)].get("id", root(i))) for i in range(len(records))]


def split_by_document(records: Sequence[Mapping[str, Any]], labels: Sequence[str], cfg: FinetuneConfig,
                      test: bool = True) -> list[str]:
    """train/val/test per document (data/splits.py), stratified by label so each class is held
    out in proportion; a group (split_groups) stays in one split. `test` off: train/val only
    (the documents outside a cross-validation fold)."""
    groups = split_groups(records, cfg.group_field)
    keyed = [{**r, "label": lab, "cluster": g} for r, lab, g in zip(records, labels, groups)]
    counts = Counter(labels)
    need = 3 if test else 2
    small = {k: v for k, v in counts.items() if v < need}
    if small:
        raise LmforgeError(f"finetune: every class needs at least {need} documents (one each for train, validation"
                           f"{' and test' if test else ''}); too few: "
                           f"{', '.join(f'{k} ({v})' for k, v in sorted(small.items()))}",
                           "add documents of those classes, choose another label field, or split by position "
                           "(finetune.split=position)")
    split_cfg = DataConfig(val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction if test else 0.0,
                           min_val_docs=len(counts), min_test_docs=len(counts), split_stratify="label",
                           split_group="cluster", seed=cfg.seed)
    return split_documents(keyed, split_cfg)


def split_by_position(passages: Sequence[str], cfg: FinetuneConfig, doc_id: str) -> list[str]:
    """train/val/test for one document's passages in text order: the first share trains, the
    next is validation, the last is test (contiguous blocks, so a held-out passage is never a
    neighbour's copy). For tasks whose label is the document itself (`work`)."""
    n = len(passages)
    n_test = max(1, round(n * cfg.test_fraction))
    n_val = max(1, round(n * cfg.val_fraction))
    if n - n_val - n_test < 1:
        raise LmforgeError(f"finetune.split=position: document {doc_id} gives only {n} passages of about "
                           f"{cfg.passage_chars} characters; it needs at least 3 (train, validation, test)",
                           "lower finetune.passage_chars, raise finetune.max_passages_per_doc, or leave the "
                           "document out")
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


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
               prefix: Sequence[int] = (), assignment: Sequence[str] | None = None) -> Task:
    """Labels, split, passages and token ids of every split. `assignment`: each record's split,
    given (a cross-validation fold) rather than drawn."""
    labels = check_labels(records, cfg.label_field)
    names = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(names)}
    if cfg.split == "position" and assignment is not None:
        raise LmforgeError("cross-validation folds are over documents; finetune.split=position holds out part of "
                           "every document", "use finetune.split=document with --cv")
    if cfg.split == "document" and assignment is None:
        assignment = split_by_document(records, labels, cfg)
    pieces: dict[str, tuple[list[str], list[int], list[str]]] = {s: ([], [], []) for s in SPLITS}
    for i, (rec, lab) in enumerate(zip(records, labels)):
        doc_id = str(rec.get("id"))
        cap = cfg.test_passages_per_doc if assignment is not None and assignment[i] == "test" else cfg.max_passages_per_doc
        cut = cut_passages(str(rec.get("text", "")), cfg.passage_chars, cap)
        wheres = split_by_position(cut, cfg, doc_id) if assignment is None else [assignment[i]] * len(cut)
        for text, where in zip(cut, wheres):
            texts, ys, docs = pieces[where]
            texts.append(text)
            ys.append(index[lab])
            docs.append(doc_id)
    splits: dict[str, Split] = {}
    documents: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        texts, ys, docs = pieces[split]
        documents[split] = list(dict.fromkeys(docs))  # before a training subset drops some
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
    label_of_doc = {str(r.get("id")): lab for r, lab in zip(records, labels)}
    summary = {
        "labels": names, "label_field": cfg.label_field, "split": cfg.split,
        "documents": {s: {lab: sum(1 for d in documents[s] if label_of_doc[d] == lab) for lab in names}
                      for s in SPLITS},
        "passages": {s: {names[k]: int(v) for k, v in zip(*np.unique(splits[s].y, return_counts=True))}
                     for s in SPLITS},
        "mean_passage_chars": {s: float(np.mean(splits[s].chars)) for s in SPLITS},
        "mean_passage_tokens": {s: float((splits[s].x != PAD).sum(1).mean()) for s in SPLITS},
        "passages_cut_at_max_tokens": {s: int(((splits[s].x != PAD).sum(1) == length).sum()) for s in SPLITS},
    }
    return Task(names, splits, documents, summary)
