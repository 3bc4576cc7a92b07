"""The token store: the one owner of the files a packed split is made of.

  tokens/{split}.bin             flat token ids (uint16 or uint32), [BOS] doc EOS [BOS] doc EOS ...
  tokens/{split}.docs.npy        int64 start offset of each document in {split}.bin
  tokens/{split}.doc_sources.npy int32 index of each document's source in meta["sources"]
  tokens/meta.json               dtype, vocab_size, special ids, per-split counts; written last,
                                 so its presence marks a complete store

The tokenize stage writes a store, a cross-validation fold writes a small one, and the trainer,
evaluation and monitors read them, all through these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rundir import atomic_open, atomic_write_json

META = "meta.json"


def bin_path(tokens_dir: Path, split: str) -> Path:
    return tokens_dir / f"{split}.bin"


def read_meta(tokens_dir: Path) -> dict[str, Any]:
    """meta.json, or a clear error saying which stage to run."""
    path = tokens_dir / META
    if not path.is_file():
        raise LmforgeError(f"{path} is missing", f"run `lmforge tokenize {tokens_dir.parent}` first")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{path} is corrupt ({exc})", "rerun `lmforge tokenize RUN_DIR --force`") from None
    if not isinstance(meta, dict):
        raise LmforgeError(f"{path} is corrupt (not a JSON object)", "rerun `lmforge tokenize RUN_DIR --force`")
    return meta


def write_meta(tokens_dir: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(tokens_dir / META, meta)


def load_tokens(tokens_dir: Path, split: str) -> np.ndarray:
    """Memory-map {split}.bin with the dtype from meta.json (nothing is read until used)."""
    path = bin_path(tokens_dir, split)
    meta = read_meta(tokens_dir)
    if not path.is_file():
        raise LmforgeError(f"{path} is missing", f"run `lmforge tokenize {tokens_dir.parent}` first")
    try:
        dtype = np.dtype(meta["dtype"])
    except (KeyError, TypeError) as exc:
        raise LmforgeError(f"{tokens_dir / META} is corrupt ({exc})",
                           "rerun `lmforge tokenize RUN_DIR --force`") from None
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise LmforgeError(f"{path} has {size} bytes, not a whole number of {dtype.name} tokens: it is truncated",
                           "rerun `lmforge tokenize RUN_DIR --force`")
    if size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def load_doc_starts(tokens_dir: Path, split: str) -> np.ndarray:
    """Start offset of every document of a split (int64). A missing or unreadable index is a clear
    error naming the file, not a traceback: the tokenize stage writes it beside {split}.bin."""
    path = tokens_dir / f"{split}.docs.npy"
    try:
        starts = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LmforgeError(f"{path} is missing: the {split} split's document index was not written or was removed",
                           "rerun `lmforge tokenize RUN_DIR --force` to rebuild the tokens folder") from None
    except (OSError, ValueError, EOFError) as exc:
        raise LmforgeError(f"{path} cannot be read ({exc})",
                           "rerun `lmforge tokenize RUN_DIR --force` to rebuild the tokens folder") from None
    if starts.ndim != 1 or starts.dtype.kind not in "iu":
        raise LmforgeError(f"{path} is not a document index (shape {starts.shape}, {starts.dtype})",
                           "rerun `lmforge tokenize RUN_DIR --force` to rebuild the tokens folder")
    return starts


def load_doc_sources(tokens_dir: Path, split: str) -> np.ndarray | None:
    """Each document's source index into meta["sources"] (int32), or None when not recorded."""
    path = tokens_dir / f"{split}.doc_sources.npy"
    return np.load(path, allow_pickle=False) if path.is_file() else None


def has_doc_index(tokens_dir: Path, split: str) -> bool:
    return (tokens_dir / f"{split}.docs.npy").is_file()


def write_doc_index(tokens_dir: Path, split: str, starts: np.ndarray, sources: np.ndarray | None = None) -> None:
    """The document index of a split whose .bin is written: start offsets, and source ids if known."""
    with atomic_open(tokens_dir / f"{split}.docs.npy", "wb", encoding=None) as fh:
        np.save(fh, np.asarray(starts, dtype=np.int64), allow_pickle=False)
    if sources is not None:
        with atomic_open(tokens_dir / f"{split}.doc_sources.npy", "wb", encoding=None) as fh:
            np.save(fh, np.asarray(sources, dtype=np.int32), allow_pickle=False)


def write_split(tokens_dir: Path, split: str, docs: list[np.ndarray], dtype: np.dtype) -> dict[str, int]:
    """A whole split from its documents' token arrays: .bin and document index. Returns its counts."""
    tokens_dir.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate(docs).astype(dtype) if docs else np.zeros(0, dtype)
    with atomic_open(bin_path(tokens_dir, split), "wb", encoding=None) as fh:
        fh.write(flat.tobytes())
    starts = np.cumsum([0] + [len(a) for a in docs[:-1]]) if docs else np.zeros(0)
    write_doc_index(tokens_dir, split, starts)
    return {"tokens": len(flat), "documents": len(docs)}
