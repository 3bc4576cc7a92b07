"""The flow: which stages, in which order, skipped when their identity is unchanged."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import Any

from lmforge.config.load import dump_config
from lmforge.config.schema import Config, MonitorConfig
from lmforge.console import console
from lmforge.corpora import shakespeare
from lmforge.data.sources import input_files
from lmforge.data.stage import run_data
from lmforge.errors import LmforgeError
from lmforge.evaluate.stage import run_eval
from lmforge.monitor.control import trainer_alive
from lmforge.report.build import run_report
from lmforge.rundir import RunDir, atomic_write_text, identity
from lmforge.tokens.pack import run_tokenize
from lmforge.train.stage import run_train


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...]
    output: Callable[[RunDir], Path]
    fn: Callable[[RunDir, Config, dict[str, Any]], Any]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("data", ("data",), (), lambda r: r.ledger, lambda r, c, o: run_data(r, c.data)),
    Stage("tokenize", ("tokenizer",), ("data",), lambda r: r.tokens / "meta.json",
          lambda r, c, o: run_tokenize(r, c.tokenizer, c.model.vocab_size)),
    Stage("train", ("model", "train"), ("tokenize",), lambda r: r.checkpoints,
          lambda r, c, o: run_train(r, c, resume=o.get("resume", False))),
    Stage("eval", ("eval",), ("train",), lambda r: r.eval, lambda r, c, o: run_eval(r, c)),
    Stage("report", ("report",), ("data", "tokenize", "train", "eval"), lambda r: r.report / "index.html",
          lambda r, c, o: run_report(r, c.report.title)),
]}
ORDER = list(STAGES)
RUNNER_KEYS = ("executor", "ray", "slurm")  # data keys left out of the data stage's identity
# monitor keys that change what training produces (when it stops, the LR, the final weights); the
# rest of `monitor` (sinks, console, statistics, live control) only observes, so it is left out
TRAIN_MONITOR_KEYS = ("early_stop", "plateau", "average")


def external_inputs(cfg: Config, stage: str) -> list[Path]:
    """Files outside the run that a stage reads by path: the user's data files, a pretrained
    tokenizer, a HF folder's weights."""
    if stage == "data":
        return input_files(cfg.data)
    if stage == "tokenize" and cfg.tokenizer.kind == "pretrained" and cfg.tokenizer.path:
        path = Path(cfg.tokenizer.path)
        return [path / "tokenizer.json" if path.is_dir() else path]
    if stage == "train" and cfg.model.init_from:
        folder = Path(cfg.model.init_from)
        return [folder / "config.json", *sorted(folder.glob("model*.safetensors*"))]
    return []


def _stamp(path: Path) -> str:
    """Size and modification time: a changed file re-runs the stage without hashing gigabytes."""
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def stage_identity(run: RunDir, cfg: Config, stage: Stage) -> str:
    """Hash of the stage's config sections, the identities of the stages it reads, and the
    size and time of the outside files it reads."""
    extra = [f"{shakespeare.PACKAGE}=={shakespeare.VERSION}"] if stage.name == "data" else []
    extra += [_stamp(p) for p in external_inputs(cfg, stage.name)]
    sections = [cfg.section(s) for s in stage.sections]
    if stage.name == "data":  # who runs phase 1 (local, Ray, Slurm) does not change what it makes
        sections = [{k: v for k, v in sections[0].items() if k not in RUNNER_KEYS}]
    if stage.name == "train":  # only non-default values count, so runs that use none keep their identity
        monitor, default = cfg.section("monitor"), MonitorConfig().model_dump(mode="json")
        changed = {k: monitor[k] for k in TRAIN_MONITOR_KEYS if monitor[k] != default[k]}
        if changed:
            extra.append("monitor=" + json.dumps(changed, sort_keys=True))
    return identity(stage.name, sections, [run.stage_identity(u) for u in stage.upstream], extra)


def refuse_if_training(run: RunDir) -> None:
    """Stop before touching a run whose training is live in another process: a second command
    would delete its checkpoints, interleave metrics.jsonl and leave stage records that describe
    neither training (so eval and report are then skipped on checkpoints they never saw)."""
    info = trainer_alive(run)
    if info is not None and int(info["pid"]) != os.getpid():
        raise LmforgeError(f"a training is running in {run.root} (pid {info['pid']})",
                           f"wait for it to end (`lmforge watch {quote(str(run.root))}`), stop it with "
                           f"`lmforge ctl {quote(str(run.root))} stop`, or use another folder")


def write_config(run: RunDir, cfg: Config) -> None:
    """Claim the run folder (refused while another process trains in it) and write config.yaml."""
    refuse_if_training(run)
    run.create()
    atomic_write_text(run.config, dump_config(cfg))


def upstream_reran(run: RunDir, stage: Stage) -> str | None:
    """The first stage this one reads that finished after it: rerun with --force or --resume (a
    training stopped by `ctl stop` and resumed) keeps its identity but changes its outputs, so the
    readers' identities alone would leave eval.json and the report describing the old ones."""
    own = (run.stage_record(stage.name) or {}).get("finished_ns")
    if own is None:  # never ran (or a record from before finished_ns): nothing to compare
        return None
    for name in stage.upstream:
        if (run.stage_record(name) or {}).get("finished_ns", 0) > own:
            return name
    return None


def run_stage(run: RunDir, cfg: Config, name: str, force: bool = False, **opts: Any) -> bool:
    """Run one stage unless its identity is unchanged and its output exists. Returns whether it ran."""
    stage = STAGES[name]
    ident = stage_identity(run, cfg, stage)
    resume = opts.get("resume", False)
    reran = upstream_reran(run, stage)
    if not force and not resume and run.stage_identity(name) == ident and stage.output(run).exists() and not reran:
        console.print(f"[dim]{name}: unchanged (identity {ident}), skipped — use --force to rerun")
        return False
    console.print(f"[bold cyan]{name}[/]: running" + (f" ({reran} ran again since)" if reran else ""))
    run.invalidate(name)
    start = time.time()
    summary = stage.fn(run, cfg, opts)
    seconds = time.time() - start
    run.mark_done(name, ident, seconds, summary if isinstance(summary, dict) else {"output": str(summary)})
    console.print(f"[green]{name}[/]: done in {seconds:.1f}s")
    return True


def run_all(run: RunDir, cfg: Config, force: bool = False, stages: list[str] | None = None) -> dict[str, bool]:
    """The whole flow, in order; each stage is skipped when unchanged."""
    write_config(run, cfg)
    return {name: run_stage(run, cfg, name, force) for name in (stages or ORDER)}
