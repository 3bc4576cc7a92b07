"""Where documents come from: the built-in corpus and the user's files in six formats.

Inputs are resolved into `Unit`s (one file, or one corpus text) before any work starts, so a
config error stops the run early. Reading a unit yields `Item`s: a document, or a record that
could not be read, with the reason and its place (file and line) — nothing is dropped here.
"""

from __future__ import annotations

import base64
import csv
import glob
import json
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from lmforge.config.schema import DataConfig, FieldRule, SourceConfig
from lmforge.corpora import shakespeare
from lmforge.data.streams import InputProblem, Limits, TextStream, documents, lines, remove_controls
from lmforge.errors import LmforgeError

TEXT_SUFFIXES = {".txt", ".md", ".text", ".markdown", ".html", ".htm"}
RECORD_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
_PREVIEW = 2000  # characters of a bad record kept in rejected/, enough to see what was wrong


@dataclass
class Item:
    """A document read from a source, or a record rejected while reading (reason set)."""

    id: str
    source: str
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    rule: str = "read"


@dataclass(frozen=True)
class Unit:
    """One thing to read: a file of a source, or a text of the built-in corpus."""

    source: str
    path: str
    format: str
    spec: SourceConfig | None = None
    meta: tuple[tuple[str, str], ...] = ()
    problem: str | None = None  # e.g. a symlink pointing outside its folder
    limits: Limits = field(default_factory=Limits)


# ------------------------------------------------------------------ resolving inputs


def _format_of(path: Path, declared: str) -> str:
    """The reader for a file: the declared format, or one inferred from the (inner) extension."""
    if declared != "auto":
        return declared
    if path.is_dir():
        return "hf"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    return RECORD_SUFFIXES.get(suffixes[-1] if suffixes else "", "text")


def _is_hf_dir(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _folder_files(root: Path) -> Iterator[tuple[Path, str | None]]:
    """Files under a folder, in a stable order; symlinks leaving the folder are flagged, not read."""
    base = root.resolve()
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(base):
                yield path, f"symlink points outside the input folder ({target})"
                continue
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts):
            yield path, None


def _folder_or_file(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_dir():
        return [(path, None)] if _is_hf_dir(path) else list(_folder_files(path))
    return [(path, None)] if path.is_file() else []


def _expand(pattern: str, where: str) -> list[tuple[Path, str | None]]:
    path = Path(pattern).expanduser()
    if path.is_dir() or path.is_file():
        found = _folder_or_file(path)
    elif path.is_symlink():
        return [(path, "broken symlink")]
    else:
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if not matches:
            raise LmforgeError(f"{where}: '{pattern}' matches no file",
                               "give a file, a folder or a glob such as 'texts/**/*.txt'")
        # a folder the glob matches is read like a folder given by name
        found = [f for m in matches for f in _folder_or_file(m)]
    if not found:  # an empty folder, or only hidden files: say which source, not just "no files"
        raise LmforgeError(f"{where}: '{pattern}' holds no file to read (hidden files and folders are skipped)",
                           "point it at a folder or glob with files, or remove it from the config")
    return found


def source_specs(cfg: DataConfig) -> list[tuple[str, SourceConfig]]:
    """Every user source as (ledger name, spec); `paths` is shorthand for auto-format sources."""
    specs = [(p, SourceConfig(path=p, text_field=cfg.text_field)) for p in cfg.paths]
    specs += [(s.name or s.path, s) for s in cfg.sources]
    return specs


def limits_of(cfg: DataConfig) -> Limits:
    return Limits(cfg.max_doc_chars, cfg.max_expansion)


def resolve_units(cfg: DataConfig) -> list[Unit]:
    """All units of all sources, in a stable order. Raises LmforgeError on a path that matches nothing."""
    units: list[Unit] = []
    if cfg.corpus == "shakespeare":
        for doc in shakespeare.documents(list(cfg.authors), list(cfg.editions)):
            meta = (("id", doc.id), ("title", doc.title), ("author", doc.author), ("edition", doc.edition),
                    ("work", doc.work))
            units.append(Unit(f"shakespeare:{doc.author}", str(doc.path), "corpus", None, meta, None, limits_of(cfg)))
    for i, (name, spec) in enumerate(source_specs(cfg)):
        where = f"data.paths[{i}]" if i < len(cfg.paths) else f"data.sources[{i - len(cfg.paths)}].path"
        for path, problem in _expand(spec.path, where):
            units.append(Unit(name, str(path), _format_of(path, spec.format), spec, (), problem, limits_of(cfg)))
    return units


def input_files(cfg: DataConfig) -> list[Path]:
    """The user's files the data stage reads (sources and dedup_against), for the stage identity:
    an edited, added or removed file must re-run the stage. A path that matches nothing is left
    for resolve_units to report when the stage runs."""
    out: list[Path] = []
    for pattern in [spec.path for _, spec in source_specs(cfg)] + list(cfg.dedup_against):
        try:
            found = _expand(pattern, "data")
        except LmforgeError:
            continue
        for path, _ in found:
            out += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return out


def reference_units(cfg: DataConfig) -> list[Unit]:
    """Units of data.dedup_against, read like auto-format sources. Raises LmforgeError naming
    data.dedup_against[i] for a path that matches nothing (checked before any work starts)."""
    units: list[Unit] = []
    for i, pattern in enumerate(cfg.dedup_against):
        spec = SourceConfig(path=pattern)
        for path, problem in _expand(pattern, f"data.dedup_against[{i}]"):
            units.append(Unit(pattern, str(path), _format_of(path, "auto"), spec, (), problem, limits_of(cfg)))
    return units


# ------------------------------------------------------------------ reading units

Row = tuple[int, "dict[str, Any] | None", str]  # (line or row number, record or None, problem)


def _unreadable(exc: OSError) -> str:
    """A file that was listed but cannot be opened or read now."""
    what = exc.strerror or type(exc).__name__
    return (f"cannot read the file: {what} (it was listed, then removed, moved or made unreadable); "
            "fix it and run the stage again")


def _separator(spec: SourceConfig | None) -> re.Pattern[str] | None:
    if spec is None or spec.split_docs == "file":
        return None
    assert spec.split_docs == "blank_lines" or spec.split_pattern is not None  # SourceConfig checks it
    return re.compile(r"\n\s*\n" if spec.split_docs == "blank_lines" else str(spec.split_pattern), re.MULTILINE)


def _first_bad_line(stream: TextStream) -> tuple[int, str]:
    """Read a whole stream; (line of the first undecodable byte or 0, the text's first characters)."""
    seen, first, preview = 0, 0, ""
    for chunk in stream.chunks():
        if len(preview) < _PREVIEW:
            preview += chunk[:_PREVIEW]
        if stream.replaced and not first:
            first = seen + chunk.count("\n", 0, max(chunk.find("\ufffd"), 0)) + 1
        seen += chunk.count("\n")
    return first, preview[:_PREVIEW]


def _text_items(unit: Unit) -> Iterator[Item]:
    path = Path(unit.path)
    spec = unit.spec
    encoding = spec.encoding if spec else "auto"
    base: dict[str, Any] = dict(unit.meta)
    doc_id = str(base.pop("id", unit.path))
    base.setdefault("title", path.stem)
    if spec is not None and spec.on_decode_error == "reject":
        check = TextStream(path, encoding, unit.limits)
        try:
            bad, preview = _first_bad_line(check)
        except InputProblem as exc:
            yield Item(unit.path, unit.source, "", {}, str(exc))
            return
        except OSError as exc:
            yield Item(unit.path, unit.source, "", {}, _unreadable(exc))
            return
        if bad:
            yield Item(doc_id, unit.source, preview, {**base, "encoding": check.encoding,
                                                      "replaced_bytes": check.replaced},
                       f"{check.replaced} bytes are not valid {check.encoding}, the first on line {bad} "
                       "(data.sources on_decode_error=reject)", "decode")
            return
    stream = TextStream(path, encoding, unit.limits)
    pending: tuple[int, str, dict[str, Any]] | None = None  # the first part, until we know if others follow
    parts, line = 0, 1
    try:
        for line, part, cut in documents(stream.chunks(), _separator(spec), unit.limits.max_doc_chars):
            if not part.strip():
                continue
            part, removed = remove_controls(part)
            meta = {**base, "encoding": stream.encoding, "origin": f"{unit.path}:{line}"}
            if stream.replaced and "\ufffd" in part:
                meta["replaced_bytes"] = part.count("\ufffd")
            if removed:
                meta["control_chars_removed"] = removed
            if cut:
                meta["cut"] = f"longer than data.max_doc_chars={unit.limits.max_doc_chars:,}: cut at a line break"
            parts += 1
            if parts == 1:
                pending = (line, part, meta)
                continue
            if pending is not None:
                yield Item(f"{doc_id}:{pending[0]}", unit.source, pending[1], pending[2])
                pending = None
            yield Item(f"{doc_id}:{line}", unit.source, part, meta)
    except (InputProblem, OSError) as exc:
        why = _unreadable(exc) if isinstance(exc, OSError) else str(exc)
        if pending is not None:
            yield Item(doc_id, unit.source, pending[1], pending[2])
        if parts:  # keep what was read; only the broken tail is rejected
            yield Item(f"{unit.path}:tail", unit.source, "", {"origin": unit.path},
                       f"{why}; the text before it is kept ({parts} document{'s' * (parts > 1)})")
        else:
            yield Item(unit.path, unit.source, "", {}, why)
        return
    if pending is not None:
        yield Item(doc_id, unit.source, pending[1], pending[2])
    elif stream.empty:
        yield Item(unit.path, unit.source, "", {}, "empty file")
    elif not parts and spec is not None:  # only separators: say so, or the file would vanish from the ledger
        yield Item(doc_id, unit.source, "", {**base, "encoding": stream.encoding},
                   f"no document: the file holds only whitespace and separators (split_docs={spec.split_docs})")


# --------------------------------------------------------------- record formats


class Undecodable(ValueError):
    """A record file with bytes its encoding cannot decode, read with on_decode_error=reject."""


def _record_stream(path: Path, spec: SourceConfig, limits: Limits, what: str) -> TextStream:
    """A record file's text in the source's `encoding`. Undecodable bytes become U+FFFD, or, with
    `on_decode_error: reject`, reject the file (a first pass finds the first bad line)."""
    if spec.on_decode_error == "reject":
        check = TextStream(path, spec.encoding, limits, what)
        bad, _ = _first_bad_line(check)
        if bad:
            raise Undecodable(f"{check.replaced} bytes are not valid {check.encoding}, the first on line {bad} "
                              "(data.sources on_decode_error=reject)")
    return TextStream(path, spec.encoding, limits, what)


def _too_long(length: int, limits: Limits) -> str:
    return (f"line is {length:,} characters long, more than data.max_doc_chars={limits.max_doc_chars:,}; "
            "it was skipped without being read whole")


def _jsonl_records(path: Path, spec: SourceConfig, limits: Limits) -> Iterator[Row]:
    """(line number, record or None, problem or raw line)."""
    stream = _record_stream(path, spec, limits, "JSON lines")
    # JSON Lines ends records at "\n" only: str.splitlines() would also cut at U+2028, U+0085 and
    # other characters that JSON strings may hold raw (json.dumps(..., ensure_ascii=False) writes them).
    for lineno, line, length in lines(stream.chunks(), limits.max_doc_chars):
        if line is None:
            yield lineno, None, _too_long(length, limits)
            continue
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, None, f"malformed JSON ({exc.msg} at column {exc.colno}): {line[:200]}"
            continue
        if not isinstance(rec, dict):
            yield lineno, None, f"a JSONL line must be an object, got {type(rec).__name__}"
            continue
        yield lineno, rec, ""


def _csv_records(path: Path, spec: SourceConfig, delimiter: str, limits: Limits) -> Iterator[Row]:
    stream = _record_stream(path, spec, limits, "CSV")
    csv.field_size_limit(limits.max_doc_chars)
    fed: deque[tuple[int, int, str]] = deque(maxlen=1024)  # (index fed to csv, line number, text), latest
    skipped: list[tuple[int, int]] = []  # (line number, length) of lines too long to hold

    def feed() -> Iterator[str]:
        for lineno, line, length in lines(stream.chunks(), limits.max_doc_chars, keepends=True):
            if line is None:
                skipped.append((lineno, length))
                continue
            fed.append(((fed[-1][0] + 1) if fed else 1, lineno, line))
            yield line

    def number(k: int) -> int:
        return next((n for i, n, _ in fed if i == k), fed[0][1] if fed else k)

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            row = None
        except csv.Error as exc:
            # The reader has consumed the broken lines and starts afresh on the next one, so only
            # these lines are lost; name them, show them, and read on.
            last = max(first, reader.line_num)
            line = number(first)
            raw = "".join(t for i, _, t in fed if first <= i <= last).rstrip("\n")[:200]
            span = f"line {line}" if last == first else f"lines {line}-{number(last)}"
            if header is None or reader.line_num < first:  # no header to map rows with, or stuck
                yield line, None, f"broken CSV quoting on {span}: {exc}; the rest of the file is not read: {raw}"
                return
            yield line, None, f"broken CSV quoting on {span}: {exc}: {raw}"
            continue
        while skipped:
            lineno, length = skipped.pop(0)
            yield lineno, None, _too_long(length, limits)
        if row is None:
            return
        line = number(first)
        if header is None:
            twice = sorted({name for name in row if row.count(name) > 1})
            if twice:  # a record maps each name to one value, so one column would vanish silently
                raise ValueError(f"the header line names {', '.join(map(repr, twice))} more than once; "
                                 "give each column its own name")
            header = row
            continue
        if not row:
            continue
        if len(row) > len(header):
            yield line, None, f"row has {len(row)} fields but the header has {len(header)}"
            continue
        # Missing trailing fields become missing values, for the per-field rules to handle.
        yield line, dict(zip(header, row)), ""


def _arrow_tables(path: Path, fmt: str) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=1024)
        return
    # A `datasets` folder from save_to_disk: arrow stream files, one folder per split for a DatasetDict.
    folders = [path] if (path / "state.json").is_file() else sorted(p for p in path.iterdir() if (p / "state.json").is_file())
    for folder in folders:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        for shard in state.get("_data_files", []):
            file = (folder / shard["filename"]).resolve()
            if not file.is_relative_to(folder.resolve()):
                raise ValueError(f"state.json names a file outside the dataset folder: {shard['filename']}")
            with pa.memory_map(str(file)) as source:
                yield from pa.ipc.open_stream(source)


def _arrow_records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    row = 0
    try:
        for batch in _arrow_tables(path, fmt):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec, ""
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a readable {fmt} input: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- pyarrow.ArrowInvalid and friends
        raise ValueError(f"not a readable {fmt} input: {type(exc).__name__}: {exc}") from None


def _missing(value: Any, kind: str) -> str | None:
    """Why a field value counts as missing, or None when it is usable."""
    if value is None:
        return "missing or null"
    if isinstance(value, str) and not value.strip():
        return "empty"
    types = {"str": str, "int": int, "float": (int, float), "bool": bool}
    if kind != "any" and (not isinstance(value, types[kind]) or (kind in ("int", "float") and isinstance(value, bool))):
        return f"of type {type(value).__name__}, not {kind}"
    return None


def _majorities(rows: Iterable[Row], rules: dict[str, FieldRule]) -> dict[str, Any]:
    """The most common usable value of each field whose rule is 'majority' (a first pass)."""
    wanted = {name: rule for name, rule in rules.items() if rule.action == "majority"}
    counts: dict[str, Counter[str]] = {name: Counter() for name in wanted}
    for _, rec, _ in rows:
        if rec is None:
            continue
        for name, rule in wanted.items():
            if _missing(rec.get(name), rule.type) is None:
                counts[name][json.dumps(_json_safe(rec.get(name)), sort_keys=True)] += 1
    return {name: json.loads(c.most_common(1)[0][0]) if c else None for name, c in counts.items()}


def _rows(unit: Unit, spec: SourceConfig) -> Iterator[Row]:
    path = Path(unit.path)
    if unit.format == "jsonl":
        return _jsonl_records(path, spec, unit.limits)
    if unit.format in ("csv", "tsv"):
        return _csv_records(path, spec, "," if unit.format == "csv" else "\t", unit.limits)
    return _arrow_records(path, unit.format)


def _record_items(unit: Unit) -> Iterator[Item]:
    spec = unit.spec
    assert spec is not None  # record formats only come from user sources
    rules = dict(spec.fields)
    rules.setdefault(spec.text_field, FieldRule(action="reject", type="str"))
    n, last = 0, 0
    try:
        majority = _majorities(_rows(unit, spec), rules) if any(r.action == "majority" for r in rules.values()) else {}
        for line, rec, problem in _rows(unit, spec):
            n, last = n + 1, line
            where = f"{unit.path}:{line}"
            if rec is None:
                yield Item(where, unit.source, problem[:_PREVIEW], {"origin": where}, problem)
                continue
            yield _apply_rules(rec, where, unit, spec, rules, majority)
    except (ValueError, OSError) as exc:
        why = _unreadable(exc) if isinstance(exc, OSError) else str(exc)
        if n:  # keep the records read before the problem; only the broken tail is rejected
            yield Item(f"{unit.path}:{last + 1}", unit.source, "", {"origin": f"{unit.path}:{last + 1}"},
                       f"{why}; the {n:,} records before it are kept")
        else:
            yield Item(unit.path, unit.source, "", {}, why, "decode" if isinstance(exc, Undecodable) else "read")
        return
    if not n:
        yield Item(unit.path, unit.source, "", {}, f"empty {unit.format} file: no records")


def _json_safe(value: Any) -> Any:
    """A value JSON can hold: Parquet and saved datasets may hold bytes, Decimal, dates or sets,
    which the writers cannot serialise. Bytes become text when they are UTF-8, else base64."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)  # exact; a float could change the digits
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _apply_rules(rec: dict[str, Any], where: str, unit: Unit, spec: SourceConfig,
                 rules: dict[str, FieldRule], majority: dict[str, Any]) -> Item:
    """Handle missing values field by field, then map fields to text, id, label and metadata."""
    rec = dict(rec)
    filled: dict[str, str] = {}
    doc_id = str(rec[spec.id_field]) if spec.id_field and _missing(rec.get(spec.id_field), "any") is None else where
    for name, rule in rules.items():
        why = _missing(rec.get(name), rule.type)
        if why is None:
            continue
        fill = rule.value if rule.action == "fill" else majority.get(name)
        if rule.action == "reject" or fill is None:
            detail = f"field '{name}' is {why}" + ("" if rule.action == "reject" else " and has no majority value")
            preview = json.dumps(rec, ensure_ascii=False, default=str)[:_PREVIEW]
            return Item(doc_id, unit.source, preview, {"origin": where, "field": name}, detail, "missing_value")
        rec[name] = fill
        filled[name] = rule.action
    text = rec.pop(spec.text_field)
    if not isinstance(text, str):
        text = str(text)  # a filled non-string text (e.g. fill value 0) is still text
    rec.pop(spec.id_field, None) if spec.id_field else None
    meta: dict[str, Any] = {"origin": where}
    if spec.label_field:
        meta["label"] = _json_safe(rec.pop(spec.label_field, None))
    keep = rec if spec.meta_fields is None else {k: rec[k] for k in spec.meta_fields if k in rec}
    meta.update({k: _json_safe(v) for k, v in keep.items() if not k.startswith("_")})
    if filled:
        meta["filled"] = filled
    return Item(doc_id, unit.source, text, meta)


def read_unit(unit: Unit) -> Iterator[Item]:
    """Every record of one unit, as documents or read failures."""
    if unit.problem:
        yield Item(unit.path, unit.source, "", {}, unit.problem)
    elif unit.format in ("text", "corpus"):
        yield from _text_items(unit)
    else:
        yield from _record_items(unit)


def read_items(cfg: DataConfig) -> Iterator[Item]:
    """All records of all configured sources (a convenience for tools outside the pipeline)."""
    for unit in resolve_units(cfg):
        yield from read_unit(unit)
