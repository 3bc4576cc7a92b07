"""Where documents come from: the built-in corpus and the user's own files.

Every record read is either yielded as a document or yielded as a rejection with a reason and
its place (file and line), so the ledger can prove that nothing was lost.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import DataConfig
from lmforge.corpora import shakespeare
from lmforge.errors import LmforgeError

TEXT_SUFFIXES = {".txt", ".md"}


@dataclass
class Item:
    """A document read from a source, or a record rejected while reading (reason set)."""

    id: str
    source: str
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def _read_text_file(path: Path) -> tuple[str, str | None]:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", errors="replace"), f"not valid UTF-8 at byte {exc.start}"


def corpus_items(cfg: DataConfig) -> Iterator[Item]:
    for doc in shakespeare.documents(list(cfg.authors), list(cfg.editions)):
        text, problem = _read_text_file(doc.path)
        meta = {"title": doc.title, "author": doc.author, "edition": doc.edition}
        yield Item(doc.id, f"shakespeare:{doc.author}", text, meta, problem)


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files named by paths, folders (searched recursively) and globs, in a stable order."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES | {".jsonl"})
        elif path.is_file():
            files.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if not matches:
                raise LmforgeError(f"data.paths: '{pattern}' matches no file",
                                   "give a file, a folder or a glob such as 'texts/**/*.txt'")
            files += [m for m in matches if m.is_file()]
    return files


def _jsonl_items(path: Path, text_field: str) -> Iterator[Item]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Item(where, str(path), line, {}, f"malformed JSON: {exc.msg}")
                continue
            if not isinstance(rec, dict):
                yield Item(where, str(path), line, {}, "a JSONL line must be an object")
                continue
            text = rec.get(text_field)
            doc_id = str(rec.get("id", where))
            meta = {k: v for k, v in rec.items() if k not in (text_field, "id")}
            if not isinstance(text, str):
                reason = f"field '{text_field}' is missing" if text is None else f"field '{text_field}' is not a string"
                yield Item(doc_id, str(path), json.dumps(rec)[:2000], meta, reason)
                continue
            yield Item(doc_id, str(path), text, meta)


def path_items(cfg: DataConfig) -> Iterator[Item]:
    for path in expand_paths(cfg.paths):
        if path.suffix == ".jsonl":
            yield from _jsonl_items(path, cfg.text_field)
        else:
            text, problem = _read_text_file(path)
            yield Item(str(path), str(path), text, {"title": path.stem}, problem)


def read_items(cfg: DataConfig) -> Iterator[Item]:
    """All records of all configured sources."""
    if cfg.corpus == "shakespeare":
        yield from corpus_items(cfg)
    yield from path_items(cfg)
