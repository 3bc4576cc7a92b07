"""The `tokenize` stage: train the tokenizer on the train split, then encode and pack every split.

Outputs: tokenizer/tokenizer.json, tokens/{split}.bin (flat token ids, EOS after each document),
tokens/{split}.docs.npy (start offset of each document) and tokens/meta.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.config import TokenizerConfig
from lmforge.rundir import RunDir, atomic_open, atomic_write_json, read_jsonl_gz
from lmforge.tokens.tokenizer import token_byte_lengths, train_tokenizer

SPLITS = ("train", "val", "test")
BATCH_DOCS = 64


def _texts(run: RunDir, split: str) -> Iterator[str]:
    for rec in read_jsonl_gz(run.split_file(split)):
        yield rec["text"]


def pack_split(run: RunDir, split: str, tok: Tokenizer, eos_id: int, dtype: np.dtype) -> dict[str, Any]:
    """Encode one split in batches (the tokenizer parallelises each batch) and stream it to disk."""
    offsets: list[int] = []
    sources: list[str] = []
    total = 0
    with atomic_open(run.token_file(split), "wb") as out:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal total
            for rec, enc in zip(batch, tok.encode_batch([r["text"] for r in batch])):
                ids = np.asarray(enc.ids + [eos_id], dtype=dtype)
                offsets.append(total)
                sources.append(rec["source"])
                out.write(ids.tobytes())
                total += len(ids)
            batch.clear()

        for rec in read_jsonl_gz(run.split_file(split)):
            batch.append(rec)
            if len(batch) >= BATCH_DOCS:
                flush()
        flush()
    with atomic_open(run.tokens / f"{split}.docs.npy", "wb") as fh:
        np.save(fh, np.asarray(offsets, dtype=np.int64), allow_pickle=False)
    return {"tokens": total, "documents": len(offsets), "sources": sorted(set(sources))}


def run_tokenize(run: RunDir, cfg: TokenizerConfig) -> dict[str, Any]:
    run.require(run.split_file("train"), "data")
    run.tokenizer.parent.mkdir(parents=True, exist_ok=True)
    run.tokens.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(_texts(run, "train"), cfg, run.tokenizer)
    eos_id = tok.token_to_id(cfg.eos_token)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dtype = np.dtype(np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32)
    byte_lengths = token_byte_lengths(tok)
    splits = {}
    for split in SPLITS:
        info = pack_split(run, split, tok, eos_id, dtype)
        ids = np.fromfile(run.token_file(split), dtype=dtype)
        n_bytes = int(byte_lengths[ids].sum())
        info["bytes"] = n_bytes
        info["bytes_per_token"] = round(n_bytes / max(1, info["tokens"]), 4)
        splits[split] = info
    meta = {"dtype": dtype.name, "vocab_size": vocab, "eos_id": eos_id, "kind": cfg.kind,
            "doc_index": "{split}.docs.npy: int64 start offset of each document", "splits": splits}
    atomic_write_json(run.tokens / "meta.json", meta)
    return meta
