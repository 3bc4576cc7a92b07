"""Records on disk between the data stage's passes, so no pass holds the corpus in memory.

Phase 1 writes its kept and rejected documents as JSON lines (one file per datatrove task);
`phase1_records` reads them back one at a time, the kept ones merged into input order. Phase 2
appends each record to a `Spool` and keeps only a small row (id, source, sizes, offset) per
document; its decisions are made on the rows and applied when the spool is read back in order.
"""

from __future__ import annotations

import gzip
import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lmforge.data.record import Record


def _lines(path: Path) -> Iterator[Record]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def phase1_records(folder: Path, ordered: bool = False) -> Iterator[Record]:
    """Every record of phase 1's JSON lines files under `folder`. With `ordered`, merged by `seq`
    (input unit, record), which each task's file already follows: the order of the inputs."""
    files = sorted(folder.rglob("*.jsonl*")) if folder.is_dir() else []
    if not ordered:
        for path in files:
            yield from _lines(path)
        return
    yield from heapq.merge(*(_lines(p) for p in files), key=lambda r: tuple(r["seq"]))


class Spool:
    """An append-only file of JSON records, read back in order or one record by its offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = open(path, "w+b")  # noqa: SIM115 -- closed by close()
        self.count = 0

    def append(self, rec: Record) -> int:
        """Write one record; returns its offset."""
        self._fh.seek(0, 2)
        at = self._fh.tell()
        self._fh.write(json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n")
        self.count += 1
        return at

    def read(self, at: int) -> Record:
        self._fh.seek(at)
        return json.loads(self._fh.readline())

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        """(offset, record) of every record, in the order written."""
        self._fh.flush()
        with open(self.path, "rb") as fh:
            while True:
                at = fh.tell()
                line = fh.readline()
                if not line:
                    return
                yield at, json.loads(line)

    def close(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
