"""Input files as bounded streams: decompression with a bomb guard, text decoding chunk by chunk,
and lines or documents of bounded size.

Nothing here holds a whole file: bytes are read and decompressed a chunk at a time, decoded with
an incremental decoder, and cut into lines (JSON Lines, CSV) or documents (text files) no longer
than `Limits.max_doc_chars`. A problem found part-way (a truncated archive, a decompression bomb)
raises `InputProblem` with how far reading got, so the caller keeps what came before it.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmforge.data.encoding import BOMS, binary_reason, detect

CHUNK = 1 << 20  # decompressed bytes per read
HEAD = 1 << 18  # bytes looked at to tell binary from text and to detect the encoding
_ZSTD_PIECE = 4096  # compressed bytes per zstd call: a zstd frame can expand 30,000-fold, so feed it little
# C0 controls and DEL, except tab, newline, carriage return and form feed (which text uses)
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """What one input may cost: the longest document (or line) held at once, and the largest
    expansion a compressed file may have before it counts as a decompression bomb."""

    max_doc_chars: int = 5_000_000
    max_expansion: float = 100.0
    bomb_floor: int = 64 << 20  # below this many decompressed bytes no file is a bomb


class InputProblem(ValueError):
    """A file that could not be read (on), with how many decompressed bytes came before."""

    def __init__(self, message: str, at_byte: int = 0) -> None:
        super().__init__(message)
        self.at_byte = at_byte


def _gzip_chunks(fh: object) -> Iterator[bytes]:
    """Gzip members one after another (like gzip.open), with bounded output per call."""
    d = zlib.decompressobj(wbits=47)
    out = 0
    pending = b""
    fed = False  # whether the current member has had any input
    while True:
        data = pending or fh.read(CHUNK)  # type: ignore[attr-defined]
        pending = b""
        if not data:
            if fed and not d.eof:
                raise InputProblem(f"the gz file is cut short: it ends before its end marker, after {out:,} "
                                   "decompressed bytes", out)
            return
        while data:
            fed = True
            try:
                block = d.decompress(data, CHUNK)
            except zlib.error as exc:
                raise InputProblem(f"not a valid or complete gz file after {out:,} decompressed bytes: {exc}",
                                   out) from None
            out += len(block)
            if block:
                yield block
            if d.eof:  # next member, or trailing garbage
                pending = d.unused_data
                d, fed = zlib.decompressobj(wbits=47), False
                if pending and not pending.startswith(b"\x1f\x8b"):
                    if pending.strip(b"\x00"):
                        raise InputProblem(f"not a valid gz file: unexpected bytes after {out:,} decompressed bytes",
                                           out)
                    pending = b""
                break
            data = d.unconsumed_tail


def _zstd_chunks(fh: object) -> Iterator[bytes]:
    import zstandard

    d = zstandard.ZstdDecompressor().decompressobj()
    out = 0
    started = False
    while True:
        data = fh.read(_ZSTD_PIECE)  # type: ignore[attr-defined]
        if not data:
            if started and not d.eof:
                raise InputProblem(f"the zst file is cut short: its last frame is incomplete, after {out:,} "
                                   "decompressed bytes", out)
            return
        while data:
            started = True
            try:
                block = d.decompress(data)
            except zstandard.ZstdError as exc:
                raise InputProblem(f"not a valid or complete zst file after {out:,} decompressed bytes: {exc}",
                                   out) from None
            out += len(block)
            if block:
                yield block
            data = b""
            if d.eof:
                data, started = d.unused_data, False
                d = zstandard.ZstdDecompressor().decompressobj()


def byte_chunks(path: Path, limits: Limits) -> Iterator[bytes]:
    """The file's bytes, decompressed by extension (.gz, .zst), a chunk at a time.

    Raises OSError when the file cannot be opened, and InputProblem for a broken archive or one
    that expands more than `limits.max_expansion` times its size (and past `limits.bomb_floor`)."""
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if suffix == ".gz":
            chunks: Iterator[bytes] = _gzip_chunks(fh)
        elif suffix == ".zst":
            chunks = _zstd_chunks(fh)
        else:
            yield from iter(lambda: fh.read(CHUNK), b"")
            return
        ceiling = max(limits.bomb_floor, limits.max_expansion * size)
        total = 0
        for block in chunks:
            total += len(block)
            if total > ceiling:
                raise InputProblem(
                    f"decompression bomb refused: the {size:,}-byte {suffix[1:]} file expands past {total:,} bytes, "
                    f"more than data.max_expansion={limits.max_expansion:g} times its size", total)
            yield block


# ---------------------------------------------------------------- decoding

_COUNT = threading.local()


def _count_and_replace(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Python's 'replace' error handler (one U+FFFD per bad sequence) that also counts."""
    _COUNT.n = getattr(_COUNT, "n", 0) + 1
    return "\ufffd", exc.end


codecs.register_error("lmforge.count", _count_and_replace)


class TextStream:
    """A file's text, decoded chunk by chunk. The encoding is chosen from the first HEAD bytes
    (BOM, then UTF-8, then charset-normalizer); `replaced` counts bytes the encoding could not
    decode (each became U+FFFD). Binary files raise InputProblem before any text is returned."""

    def __init__(self, path: Path, encoding: str, limits: Limits, what: str = "text") -> None:
        self.path, self.limits, self.what = path, limits, what
        self.declared = encoding
        self.encoding = encoding
        self.replaced = 0
        self.bytes_read = 0
        self.empty = False

    def _choose(self, head: bytes, final: bool) -> str:
        if self.declared != "auto":
            return self.declared
        for bom, name in BOMS:
            if head.startswith(bom):
                return name
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=final)
            return "utf-8"
        except UnicodeDecodeError:
            return detect(head) or "utf-8"

    def chunks(self) -> Iterator[str]:
        source = byte_chunks(self.path, self.limits)
        head = b""
        final = False
        broken: InputProblem | None = None  # a problem inside the head: decode what came before it first
        while len(head) < HEAD:
            try:
                block = next(source, None)
            except InputProblem as exc:
                block, broken = None, exc
            if block is None:
                final = True
                break
            head += block
        if not head:
            if broken:
                raise broken
            self.empty = True
            return
        why = binary_reason(head[:HEAD])
        if why:
            raise InputProblem(f"{why}, not {self.what}")
        self.encoding = self._choose(head, final)
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="lmforge.count")
        blocks: Iterator[bytes] = iter([head]) if final else _chain(head, source)
        _COUNT.n = 0
        for block in blocks:
            self.bytes_read += len(block)
            before = _COUNT.n
            text = decoder.decode(block)
            self.replaced += _COUNT.n - before
            if text:
                yield text
        before = _COUNT.n
        tail = decoder.decode(b"", final=broken is None)
        self.replaced += _COUNT.n - before
        if tail:
            yield tail
        if broken:
            raise broken


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def remove_controls(text: str) -> tuple[str, int]:
    """Drop stray control characters (a NUL in otherwise good text); returns (text, how many)."""
    cleaned, n = CONTROL_CHARS.subn("", text)
    return cleaned, n


# ---------------------------------------------------------------- lines and documents


def lines(chunks: Iterator[str], limit: int, keepends: bool = False) -> Iterator[tuple[int, str | None, int]]:
    """(line number, line, length) of each line ending in "\\n" (JSON Lines ends records there only);
    a line longer than `limit` characters comes as None and is never held whole."""
    parts: list[str] = []
    held = 0
    too_long = False
    lineno = 1
    for chunk in chunks:
        start = 0
        while True:
            nl = chunk.find("\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl + 1 if keepends else nl]
            held += len(piece)
            if not too_long:
                parts.append(piece)
                if held > limit:
                    too_long, parts = True, []
            if nl < 0:
                break
            yield lineno, None if too_long else "".join(parts), held
            lineno += 1
            parts, held, too_long = [], 0, False
            start = nl + 1
    if held:
        yield lineno, None if too_long else "".join(parts), held


def documents(chunks: Iterator[str], separator: re.Pattern[str] | None,
              limit: int) -> Iterator[tuple[int, str, bool]]:
    """(first line number, text, cut) of each document: text between separator matches (the whole
    text when separator is None). A document longer than `limit` characters is cut at its last
    line break before the limit (cut=True), so no document is held whole past the limit."""
    buf = ""
    line = 1  # line number of buf[0]
    cut_open = False  # the next part continues a cut document
    for chunk in _and_end(chunks):
        final = chunk is None
        buf += chunk or ""
        last = 0
        if separator is not None:
            for m in separator.finditer(buf):
                if not final and m.end() >= len(buf):  # the match could go on in the next chunk
                    break
                if m.end() == m.start():
                    continue
                yield line + buf.count("\n", 0, last), buf[last:m.start()], cut_open
                cut_open = False
                last = m.end()
        line += buf.count("\n", 0, last)
        buf = buf[last:]
        while len(buf) > limit:
            cut = buf.rfind("\n", 0, limit) + 1 or limit
            yield line, buf[:cut], True
            line += buf.count("\n", 0, cut)
            buf = buf[cut:]
            cut_open = True
        if final and buf:
            yield line, buf, cut_open
            buf = ""


def _and_end(chunks: Iterator[str]) -> Iterator[str | None]:
    """The chunks, then None. A stream that breaks ends early too (None), and its error is raised
    after the text read before it has been handed out."""
    try:
        yield from chunks
    except (InputProblem, OSError):
        yield None
        raise
    yield None
