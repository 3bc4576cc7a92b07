"""The `data` stage: read, clean and filter on datatrove, then dedup, mix, split and keep a ledger.

Two phases. Phase 1 is a datatrove pipeline (reader -> read errors -> cleaner -> min length ->
language -> quality filters -> writer) run by datatrove's executor for `data.executor` (local, Ray
or Slurm; see data/executors.py) with `data.tasks` / `data.workers`; every dropped document goes to
an exclusion writer. Phase 2 needs
the whole corpus at once (boilerplate lines, exact and near dedup, mixing, splits) and runs in
this process on phase 1's output. Outputs: data/{train,val,test}.jsonl.gz,
data/rejected/rejected.jsonl.gz and data/ledger.json.
"""

from __future__ import annotations

import contextlib
import difflib
import gzip
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import DataConfig, NearDedupConfig
from lmforge.data import dedup, executors, quality
from lmforge.data.columns import KeyIndex, Rows, key128
from lmforge.data.ledger import LedgerBuilder
from lmforge.data.mix import mix_columns
from lmforge.data.record import Record
from lmforge.data.sources import Unit, read_unit, reference_units, resolve_units, source_specs
from lmforge.data.splits import SPLITS, assign_splits
from lmforge.data.spool import Spool, phase1_records
from lmforge.data.text import count_tokens
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_open, atomic_write_json


def check_ready(cfg: DataConfig) -> dict[str, dict[str, Any]]:
    """Config checks that need more than the schema; run before any work. Returns the filter plan."""
    try:
        plan = quality.plan(cfg.quality, cfg.filters, cfg.thresholds)
    except KeyError as exc:
        key = str(exc.args[0])
        near = difflib.get_close_matches(key, quality.valid_threshold_keys(), n=1, cutoff=0.5)
        raise LmforgeError(f"data.thresholds: unknown rule parameter '{key}'"
                           + (f" (did you mean '{near[0]}'?)" if near else ""),
                           "keys are RULE.PARAM, e.g. c4.min_sentences; see docs/data.md") from None
    if cfg.fix_mojibake:
        try:
            import ftfy  # noqa: F401
        except ImportError:
            raise LmforgeError("data.fix_mojibake needs ftfy", "pip install 'lmforge[data-extra]'") from None
    if cfg.corpus == "none" and not cfg.paths and not cfg.sources:
        raise LmforgeError("no documents to read: data.corpus is 'none' and data.paths and data.sources are empty",
                           "set data.corpus=shakespeare or list your files in data.paths")
    executors.check_executor(cfg)
    reference_units(cfg)  # a dedup_against path that matches nothing stops the run here, not after phase 1
    return plan


def _pipeline(units: list[Unit], cfg: DataConfig, plan: dict[str, dict[str, Any]], work: Path) -> list[Any]:
    from datatrove.pipeline.writers import JsonlWriter

    from lmforge.data import steps

    def excluded(rule: str) -> JsonlWriter:
        return JsonlWriter(str(work / "rejected" / rule), compression=None, expand_metadata=True)

    pipeline: list[Any] = [
        steps.UnitReader(units, str(work / "counts")),
        steps.ReadFilter(cfg.pii, exclusion_writer=excluded("read")),
        steps.Cleaner(cfg),
        steps.MinLengthFilter(cfg.min_chars, exclusion_writer=excluded("too_short")),
    ]
    if cfg.languages or cfg.detect_language:
        pipeline.append(steps.LanguageFilter(cfg.languages, cfg.language_threshold, exclusion_writer=excluded("language")))
    pipeline += [steps.QualityFilter(rule, params, exclusion_writer=excluded(rule)) for rule, params in plan.items()]
    pipeline.append(JsonlWriter(str(work / "kept"), compression=None, expand_metadata=True))
    return pipeline


def run_phase1(units: list[Unit], cfg: DataConfig, plan: dict[str, dict[str, Any]], work: Path) -> None:
    """Per-document steps on datatrove's local or Ray executor, waiting for every task. Logs go to
    work/logs, not the console. (Slurm is `executors.slurm_phase1`: it submits and returns.)"""
    work = work.resolve()
    tasks = executors.task_count(cfg, units)
    executor = executors.build_executor(_pipeline(units, cfg, plan, work), cfg, tasks, work / "logs")
    executors.run_local_or_ray(executor, cfg, work / "logs", tasks)


def write_jsonl_gz(path: Path, records: Iterable[Record]) -> int:
    """Gzip JSON lines, atomically; level 6 is 3-4x faster than gzip's default 9 on text, ~2% larger."""
    n = 0
    with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
    return n


def _record(raw: Record) -> Record:
    """datatrove's flattened writer output -> an lmforge record (id, source, text, metadata)."""
    raw.pop("media", None)
    raw.setdefault("text", "")
    raw.pop("filter_reason", None)
    return raw


def _reference_records(cfg: DataConfig) -> Iterator[Record]:
    """Documents of data.dedup_against, read like any source and cleaned the same basic way."""
    from lmforge.data import clean

    for unit in reference_units(cfg):
        for item in read_unit(unit):
            if not item.reason:
                text = clean.normalize_whitespace(clean.normalize_unicode(item.text, cfg.normalize))
                yield {"id": item.id, "text": text}


class _UniqueIds:
    """Ids must be unique for duplicate_of and the splits; repeated ids get '#2', '#3', ...
    Holds a 128-bit hash of every id (24 bytes each) and the count of each repeated one."""

    def __init__(self) -> None:
        self.seen = KeyIndex()
        self.repeats: dict[str, int] = {}

    def __call__(self, rec: Record) -> Record:
        base = str(rec["id"])
        key = key128(base)
        if self.seen.get(key) is None:
            self.seen[key] = 1
            return rec
        n = self.repeats[base] = self.repeats.get(base, 1) + 1
        rec["id"] = f"{base}#{n}"
        return rec


class _Rejects:
    """Rejected records on disk; written out sorted by (rule, id) at the end."""

    def __init__(self, path: Path) -> None:
        self.spool = Spool(path)
        self.order: list[tuple[str, str, int]] = []

    def add(self, rec: Record) -> None:
        rec.pop("seq", None)
        self.order.append((rec.get("rule", ""), str(rec.get("id")), self.spool.append(rec)))

    def sorted(self) -> Iterator[Record]:
        self.order.sort()
        for _, _, at in self.order:
            yield self.spool.read(at)


class Decisions:
    """Phase 2's outcome for every spooled document (row i = the i-th record of the spool), as
    columns: its cluster's kept member, its split, and why it was dropped, if it was."""

    KEPT, NEAR, CONTAMINATED = -1, -2, -3  # fate codes; 0.. index `shared`: (rule, reason) of many records

    def __init__(self, rows: Rows, near: NearDedupConfig) -> None:
        n = len(rows)
        self.rows, self.near = rows, near
        self.cluster = np.arange(n, dtype=np.int64)  # the kept member of the document's cluster
        self.split = np.full(n, -1, dtype=np.int8)  # index into SPLITS
        self.fate = np.full(n, self.KEPT, dtype=np.int16)
        self.other = np.full(n, -1, dtype=np.int64)  # duplicate_of, for NEAR and CONTAMINATED
        self.similarity = np.full(n, np.nan)
        self.shared: list[tuple[str, str]] = []

    def drop(self, which: np.ndarray, rule: str, reason: str) -> None:
        self.fate[which] = len(self.shared)
        self.shared.append((rule, reason))

    def alive(self) -> np.ndarray:
        return np.flatnonzero(self.fate == self.KEPT)

    def fields(self, i: int, own_id: str) -> dict[str, Any]:
        """The fields document i gets in data/ (in the order they are added to the record)."""
        k = int(self.cluster[i])
        out: dict[str, Any] = {"cluster": own_id if k == i else self.rows.ids[k]}
        fate = int(self.fate[i])
        if fate == self.KEPT:
            out["split"] = SPLITS[self.split[i]]
        elif fate == self.NEAR:
            sim = float(self.similarity[i])
            out.update(rule="near_duplicate", reason=dedup.near_reason(out["cluster"], sim, self.near),
                       duplicate_of=out["cluster"], similarity=round(sim, 4))
        elif fate == self.CONTAMINATED:
            sim, split, other = float(self.similarity[i]), SPLITS[self.split[i]], self.rows.ids[int(self.other[i])]
            out.update(split=split, rule="split_contamination", reason=dedup.contamination_reason(split, other, sim),
                       duplicate_of=other, similarity=round(sim, 4))
        else:
            rule, reason = self.shared[fate]
            out.update(rule=rule, reason=reason)
        return out


def _add_row(rows: Rows, rec: Record, at: int, keep: str) -> None:
    """What phase 2 decides on for one document: no text, its sizes and where it lies in the spool."""
    rows.add(rec, at, quality.quality_score(rec["text"]) if keep == "quality" else None)


def run_phase2(records: Callable[[], Iterable[Record]], cfg: DataConfig, spool: Spool, rejects: _Rejects,
               folder: Path) -> tuple[Decisions, dict[str, Any]]:
    """Corpus-wide steps, in order, on records that come in input order (`records()` is called
    twice when boilerplate lines are counted first). A record dropped by a per-record step goes
    to `rejects` at once; the others go to `spool` with a row in columns (data/columns.py), and
    the rest of the steps decide on the rows. Returns the decisions on every spooled record and
    per-step info for the ledger."""
    info: dict[str, Any] = {"funnel": []}
    per_record: list[tuple[str, Any]] = []
    if cfg.boilerplate_min_docs > 0:
        lines = dedup.Boilerplate(cfg.boilerplate_min_docs, cfg.min_chars)
        for rec in records():
            lines.count(rec["text"])
        lines.freeze()
        per_record.append(("boilerplate lines", lines))
    if cfg.dedup != "none":
        per_record.append(("exact dedup", dedup.ExactDedup(str(folder))))
    if cfg.dedup_against:
        per_record.append(("reference dedup", dedup.ReferenceDedup(_reference_records(cfg), cfg.near, cfg.seed,
                                                                   str(folder))))
    index = dedup._index(cfg.near, cfg.seed, str(folder)) if cfg.dedup == "near" else None
    removed: Counter[str] = Counter()
    rows = Rows(str(folder))
    seen = 0
    t = time.time()
    for rec in records():
        seen += 1
        dropped = False
        for name, rule in per_record:
            rec, dropped = rule.apply(rec)
            if dropped:
                removed[name] += 1
                rejects.add(rec)
                break
        if dropped:
            continue
        rec["tokens"] = count_tokens(rec["text"])
        if index is not None:
            index.add(rec["text"])
        _add_row(rows, rec, spool.append(rec), cfg.near.keep)
    hashed = time.time() - t
    left = seen
    for name, _ in per_record:
        left -= removed[name]
        info["funnel"].append({"step": name, "documents": left, "removed": removed[name]})
    out = Decisions(rows, cfg.near)

    def step(name: str, before: int) -> None:
        now = len(out.alive())
        info["funnel"].append({"step": name, "documents": now, "removed": before - now})

    pairs: dict[tuple[int, int], float] = {}
    if index is not None:
        t = time.time()
        rank = {"longest": rows.column("chars").__getitem__,
                "quality": rows.column("quality").__getitem__}.get(cfg.near.keep)
        out.cluster, out.similarity, stats = dedup.near_keepers(index, rank, cfg.near)
        removed_near = ~np.isnan(out.similarity)
        out.fate[removed_near] = Decisions.NEAR
        out.other[removed_near] = out.cluster[removed_near]
        pairs = stats.pop("pairs")
        info["near_dedup"] = {**stats, "seconds": round(time.time() - t + hashed, 3),
                              "threshold": cfg.near.threshold, "num_perm": cfg.near.num_perm}
        step("near dedup", len(rows))
    weights = {name: spec.weight for name, spec in source_specs(cfg)}
    weights.update({f"shakespeare:{a}": cfg.corpus_weight for a in cfg.authors})
    budgets = {name: spec.max_tokens for name, spec in source_specs(cfg)}
    alive = out.alive()
    source_of = rows.column("source")
    _, cut, why = mix_columns(rows.sources.values, source_of[alive], rows.column("tokens")[alive], weights,
                              budgets, cfg.seed)
    for name, (rule, reason) in why.items():
        cut_here = alive[cut]
        out.drop(cut_here[source_of[cut_here] == rows.sources.values.index(name)], rule, reason)
    step("mixing", len(alive))
    if cfg.max_docs is not None:
        alive = out.alive()
        out.drop(alive[cfg.max_docs:], "max_docs", f"beyond data.max_docs={cfg.max_docs}")
        step("max_docs", len(alive))
    alive = out.alive()
    if not len(alive):
        raise LmforgeError("no documents survived cleaning: every input record was rejected",
                           "data/.work/rejected/ holds what the per-document rules rejected, one folder per rule")
    stratify = {"none": None, "source": rows.sources, "label": rows.labels}[cfg.split_stratify]
    strata = np.zeros(len(alive), dtype=np.int64) if stratify is None else \
        rows.column(cfg.split_stratify)[alive].astype(np.int64)
    names = [""] if stratify is None else [str(v) for v in stratify.values]
    groups = out.cluster[alive] if cfg.split_group == "cluster" else None
    out.split[alive] = assign_splits(strata, names, groups, cfg)
    bad = dedup.contaminated(out.split, pairs)
    for held, (other, sim) in bad.items():
        out.fate[held], out.other[held], out.similarity[held] = Decisions.CONTAMINATED, other, sim
    step("split contamination", len(alive))
    return out, info


def _counts_in(work: Path) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for path in sorted((work / "counts").glob("*.json")):
        for src, c in json.loads(path.read_text(encoding="utf-8")).items():
            t = total.setdefault(src, {"in": 0, "characters": 0})
            for k, v in c.items():
                t[k] = t.get(k, 0) + v
    return total


def _writable(folder: Path) -> None:
    """Stop with a clear error when the run folder cannot be written (before any work)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise LmforgeError(f"cannot write the data stage's output to {folder}: {exc.strerror or exc}",
                           "choose a run folder you can write to (--run PATH), or fix its permissions") from None


def _write_outputs(run: RunDir, spool: Spool, decisions: Decisions, rejects: _Rejects, ledger: LedgerBuilder) -> None:
    """Read the spool back in order, apply each row's decision, and write the splits and rejected/."""
    at_column = decisions.rows.column("at")
    with contextlib.ExitStack() as stack:
        out = {}
        for name in ("train", "val", "test"):
            raw = stack.enter_context(atomic_open(run.split_file(name), "wb"))
            out[name] = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0))
        i = -1
        for i, (at, rec) in enumerate(spool):
            assert at == at_column[i], "a phase 2 row lost its place in the spool"
            rec.update(decisions.fields(i, rec["id"]))
            rec.pop("seq", None)
            if "rule" in rec:
                rejects.add(rec)
                continue
            ledger.add_kept(rec)
            out[rec["split"]].write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
        assert i + 1 == len(at_column), "the spool and phase 2's rows differ in length"
    run.rejected.mkdir(parents=True, exist_ok=True)

    def counted(records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            ledger.add_rejected(rec)
            yield rec

    write_jsonl_gz(run.rejected / "rejected.jsonl.gz", counted(rejects.sorted()))


def run_data(run: RunDir, cfg: DataConfig) -> dict[str, Any]:
    """Run the data stage into `run`. Returns the ledger."""
    started = time.time()
    plan = check_ready(cfg)
    units = resolve_units(cfg)
    if not units:
        raise LmforgeError("the configured sources hold no files", "check data.paths / data.sources")
    _writable(run.data)
    if cfg.executor == "slurm":  # submits and raises StagePending until the job's tasks have all finished
        work, phase1_seconds = executors.slurm_phase1(lambda w: _pipeline(units, cfg, plan, w), units, cfg,
                                                      run.data / ".slurm", f"lmforge data {run.root}")
    else:
        work = run.data / ".work"
        shutil.rmtree(work, ignore_errors=True)
        t = time.time()
        run_phase1(units, cfg, plan, work)
        phase1_seconds = time.time() - t
    counts = _counts_in(work)
    ids = _UniqueIds()
    phase2 = run.data / ".phase2"
    shutil.rmtree(phase2, ignore_errors=True)
    spool, rejects = Spool(phase2 / "kept.jsonl"), _Rejects(phase2 / "rejected.jsonl")
    try:
        t = time.time()
        decisions, info = run_phase2(lambda: (ids(_record(r)) for r in phase1_records(work / "kept", ordered=True)),
                                cfg, spool, rejects, phase2)
        for raw in phase1_records(work / "rejected"):
            rec = _record(raw)
            rec.setdefault("rule", "unknown")
            rejects.add(ids(rec))
        ledger = LedgerBuilder()
        _write_outputs(run, spool, decisions, rejects, ledger)
        info["seconds"] = {"phase1_datatrove": round(phase1_seconds, 3), "phase2": round(time.time() - t, 3)}
        info["plan"] = plan
        out = ledger.build(counts, info)
    finally:
        spool.close()
        rejects.spool.close()
        shutil.rmtree(phase2, ignore_errors=True)
    out["seconds"]["total"] = round(time.time() - started, 3)
    if not out["balanced"]:  # a bug, never a user error: refuse to go on
        raise RuntimeError(f"ledger does not balance: in {out['in']} != kept {out['kept']} + "
                           f"rejected {out['rejected']}")
    atomic_write_json(run.ledger, out)
    shutil.rmtree(run.data / (".slurm" if cfg.executor == "slurm" else ".work"), ignore_errors=True)
    return out
