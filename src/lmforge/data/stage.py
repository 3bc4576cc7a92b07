"""The `data` stage: read, clean, deduplicate, split by document, and keep a ledger.

Outputs: data/{train,val,test}.jsonl.gz, data/rejected/rejected.jsonl.gz, data/ledger.json.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

from lmforge.config import DataConfig
from lmforge.data import clean
from lmforge.data.sources import Item, read_items
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, write_jsonl_gz
from lmforge.tokens.splits import split_documents


def clean_item(item: Item, cfg: DataConfig) -> tuple[str, str | None, bool]:
    """Apply the cleaning rules. Returns (text, reason to reject or None, gutenberg cut)."""
    text = clean.normalize_unicode(item.text, cfg.normalize)
    cut = False
    if cfg.strip_gutenberg:
        text, cut = clean.strip_gutenberg(text)
    text = clean.normalize_whitespace(text)
    return text, clean.too_short(text, cfg.min_chars), cut


def run_data(run: RunDir, cfg: DataConfig) -> dict[str, Any]:
    """Run the data stage into `run`. Returns the ledger."""
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    counts_in: Counter[str] = Counter()
    rules: dict[str, Counter[str]] = defaultdict(Counter)
    gutenberg_cut = 0

    def reject(item: Item, rule: str, detail: str, text: str) -> None:
        rules[item.source][rule] += 1
        rejected.append({"id": item.id, "source": item.source, "rule": rule, "reason": detail,
                         "text": text, **item.meta})

    for item in read_items(cfg):
        counts_in[item.source] += 1
        if item.reason:
            reject(item, "read", item.reason, item.text)
            continue
        text, reason, cut = clean_item(item, cfg)
        gutenberg_cut += cut
        if reason:
            reject(item, "too_short", reason, item.text)
            continue
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if cfg.dedup == "exact" and digest in seen:
            reject(item, "exact_duplicate", f"same text as {seen[digest]}", text)
            continue
        seen[digest] = item.id
        kept.append({"id": item.id, "source": item.source, "text": text, "sha256": digest, **item.meta})

    if not counts_in:
        raise LmforgeError("no documents were read: data.corpus is 'none' and data.paths is empty",
                           "set data.corpus=shakespeare or list your files in data.paths")
    if cfg.max_docs is not None:
        for doc in kept[cfg.max_docs:]:
            rules[doc["source"]]["max_docs"] += 1
            rejected.append({**doc, "rule": "max_docs", "reason": f"beyond data.max_docs={cfg.max_docs}"})
        kept = kept[: cfg.max_docs]

    splits = split_documents(len(kept), cfg)
    for doc, split in zip(kept, splits):
        doc["split"] = split
    run.data.mkdir(parents=True, exist_ok=True)
    per_split = {}
    for name in ("train", "val", "test"):
        docs = [d for d in kept if d["split"] == name]
        write_jsonl_gz(run.split_file(name), docs)
        per_split[name] = {"documents": len(docs), "characters": sum(len(d["text"]) for d in docs),
                           "bytes": sum(len(d["text"].encode()) for d in docs),
                           "ids": [d["id"] for d in docs] if name != "train" else None}
    write_jsonl_gz(run.rejected / "rejected.jsonl.gz", rejected)

    kept_by_source = Counter(d["source"] for d in kept)
    sources = {}
    for src, n_in in counts_in.items():
        n_rej = sum(rules[src].values())
        sources[src] = {"in": n_in, "kept": kept_by_source[src], "rejected": n_rej,
                        "rejected_by_rule": dict(rules[src]), "balanced": n_in == kept_by_source[src] + n_rej}
    ledger = {
        "in": sum(counts_in.values()),
        "kept": len(kept),
        "rejected": len(rejected),
        "balanced": sum(counts_in.values()) == len(kept) + len(rejected),
        "sources": sources,
        "splits": per_split,
        "gutenberg_boilerplate_removed": gutenberg_cut,
    }
    if not ledger["balanced"]:  # a bug, never a user error: refuse to go on
        raise RuntimeError(f"ledger does not balance: {ledger}")
    atomic_write_json(run.ledger, ledger)
    return ledger
