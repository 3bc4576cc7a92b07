"""The run directory: its paths, atomic writes, and stage identities for caching.

Stages meet only here. A stage's identity is the hash of its config section(s) plus the
identities of the stages it reads from; a stage whose identity is unchanged and whose outputs
exist is skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lmforge.errors import LmforgeError


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents to the disk. A folder's entries (the names a rename
    or a new file put there) are data of the folder: until it is synced, a power loss can undo a
    rename whose file was synced. Filesystems that cannot sync a folder (some network ones) are
    passed over."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # a folder cannot be opened on Windows; a rename there is durable by itself
    try:
        os.fsync(fd)
    except OSError:
        pass  # EINVAL: this filesystem does not sync folders
    finally:
        os.close(fd)


def durable_replace(src: Path, dst: Path) -> None:
    """Rename `src` over `dst` so that it survives a power loss: what `src` holds is synced first
    (a folder: every file and folder in it), then the rename, then the folder that holds `dst`.
    The one way a file or a checkpoint folder is published (atomic_open, checkpoint.save_checkpoint)."""
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        for sub in sorted(src.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first
            fsync_path(sub)
    fsync_path(src)
    os.replace(src, dst)
    fsync_path(dst.parent)


@contextmanager
def atomic_open(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temporary file in the same folder, flush and fsync, then rename over `path` and
    sync the folder (durable_replace): after a power loss `path` holds the old or the new text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        durable_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clear_temp(folder: Path) -> None:
    """Remove what a killed writer left in `folder`: atomic_open's `.NAME.*.tmp` files and
    checkpoint staging folders `.step-N.tmp`. Call it where one process owns the folder."""
    for path in Path(folder).glob(".*.tmp"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_gz(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as gzip-compressed JSON lines, atomically. Returns the count."""
    n = 0
    with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
    return n


def read_jsonl_gz(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush: a crash loses at most the line being written. A line torn
    by an earlier crash is ended first, so this record is not glued onto it."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "ab+") as fh:
        if fh.seek(0, os.SEEK_END):
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = b"\n" + line
        fh.write(line)
        fh.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (metrics.jsonl, events.jsonl); [] when there is none.
    Lines that do not parse (torn by a crash mid-write) are skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def identity(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_stamp(path: Path) -> tuple[int, int] | None:
    """Size and modification time (None when missing): tells a changed file without hashing it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def member(folder: Path, name: str) -> Path | None:
    """`folder/name` when `name`, read from a file a user may not have made (a checkpoint's
    state.json, a weight index), stays inside `folder`; None for an absolute path, `..`, or a
    link leading out."""
    path = folder / name
    if Path(name).is_absolute() or ".." in Path(name).parts or not name.strip():
        return None
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunDir:
    """Paths of one run directory (the layout: docs/architecture.md, 'The run directory')."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # layout ---------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def rejected(self) -> Path:
        return self.data / "rejected"

    @property
    def ledger(self) -> Path:
        return self.data / "ledger.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer" / "tokenizer.json"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def stages(self) -> Path:
        return self.root / ".stages"

    def split_file(self, split: str) -> Path:
        return self.data / f"{split}.jsonl.gz"

    def documents(self, split: str, before: str | None = None) -> Path:
        """The newest documents of a split: augment/ (training split only), then labels/, then
        data/ — each only once its stage has finished after the stages it reads (a stage rerun
        upstream leaves a stale output unread). `before`: the newest written by a stage before
        that one (augment reads the labelled documents)."""
        chain = [("data", self.split_file(split)), ("label", self.root / "labels" / f"{split}.jsonl.gz"),
                 ("augment", self.root / "augment" / f"{split}.jsonl.gz")]
        if before is not None:
            chain = chain[: [name for name, _ in chain].index(before)]
        best, newest = chain[0][1], 0
        for stage, path in chain[1:]:
            record = self.stage_record(stage) or {}
            if not record or not path.is_file():
                continue
            if record.get("finished_ns", 0) >= newest:
                best, newest = path, record.get("finished_ns", 0)
        return best

    def token_file(self, split: str) -> Path:
        return self.tokens / f"{split}.bin"

    # creation ------------------------------------------------------
    def create(self) -> None:
        """Make the folder, or fail with a clear message if it cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise LmforgeError(
                f"cannot write the run directory {self.root}: {exc.strerror or exc}",
                "choose another folder with -o, or fix its permissions",
            ) from None

    def require(self, path: Path, stage: str) -> Path:
        """Fail clearly when an earlier stage's output is missing."""
        if not path.exists():
            raise LmforgeError(
                f"{path} is missing: the '{stage}' stage has not run in {self.root}",
                f"run `lmforge {stage} {self.root}` first, or `lmforge run -o {self.root}`",
            )
        return path

    # stage cache ---------------------------------------------------
    def stage_record(self, stage: str) -> dict[str, Any] | None:
        path = self.stages / f"{stage}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def stage_identity(self, stage: str) -> str | None:
        rec = self.stage_record(stage)
        return rec["identity"] if rec else None

    def mark_done(self, stage: str, ident: str, seconds: float, summary: dict[str, Any] | None = None) -> None:
        atomic_write_json(
            self.stages / f"{stage}.json",
            {"stage": stage, "identity": ident, "seconds": round(seconds, 3),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished_ns": time.time_ns(),
             "summary": summary or {}},
        )

    def invalidate(self, stage: str) -> None:
        (self.stages / f"{stage}.json").unlink(missing_ok=True)

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """Record a decision or adjustment in events.jsonl."""
        self.root.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.events, {"time": time.time(), "kind": kind, "message": message, **fields})


def run_of(path: str | Path) -> RunDir | None:
    """The lmforge run a path names: a run directory (it has config.yaml) or one of its
    checkpoints/step-N folders (state.json inside checkpoints/). None for anything else (a
    Hugging Face folder, say)."""
    path = Path(path)
    if (path / "state.json").is_file() and path.parent.name == "checkpoints":
        return RunDir(path.parent.parent)
    if (path / "config.yaml").is_file():
        return RunDir(path)
    return None
