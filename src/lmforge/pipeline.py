"""The flow: which stages, in which order, skipped when their identity is unchanged."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import Any

from lmforge.augment.stage import output as augment_output
from lmforge.augment.stage import run_augment
from lmforge.config.load import dump_config
from lmforge.config.schema import Config, MonitorConfig
from lmforge.console import show
from lmforge.corpora import shakespeare
from lmforge.data.sources import input_files
from lmforge.data.stage import run_data
from lmforge.doctor import build_callbacks as doctor_callbacks
from lmforge.errors import LmforgeError
from lmforge.evaluate import paraphrase  # noqa: F401  (registers the paraphrase augmentation's model)
from lmforge.evaluate.stage import run_eval
from lmforge.label.stage import output as label_output
from lmforge.label.stage import run_label
from lmforge.monitor import build_callbacks as monitor_callbacks
from lmforge.monitor.control import stale_hint, trainer_alive
from lmforge.report.build import run_report
from lmforge.rundir import RunDir, atomic_open, atomic_write_text, file_stamp, identity, run_of
from lmforge.tokens.pack import run_tokenize
from lmforge.train.stage import run_train


def build_callbacks(run: RunDir, cfg: Config, model: Any, resume_step: int = 0,
                    show_progress: bool = True) -> list[Any]:
    """What training gets from the layers above it: monitoring, then the doctor (which reads what
    the monitor has just logged)."""
    return (monitor_callbacks(run, cfg, model, resume_step, show_progress)
            + doctor_callbacks(run, cfg, model, resume_step, show_progress))


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...]
    output: Callable[[RunDir], Path]
    fn: Callable[[RunDir, Config, dict[str, Any]], Any]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("data", ("data",), (), lambda r: r.ledger, lambda r, c, o: run_data(r, c.data)),
    Stage("label", ("label",), ("data",), label_output,
          lambda r, c, o: run_label(r, c.label, functions=o.get("functions"))),
    Stage("augment", ("augment",), ("data", "label"), augment_output,
          lambda r, c, o: run_augment(r, c.augment, r.documents("train", before="augment"))),
    Stage("tokenize", ("tokenizer",), ("data",), lambda r: r.tokens / "meta.json",
          lambda r, c, o: run_tokenize(r, c.tokenizer, c.model.vocab_size)),
    Stage("train", ("model", "train"), ("tokenize",), lambda r: r.checkpoints,
          lambda r, c, o: run_train(r, c, resume=o.get("resume", False), callbacks=build_callbacks)),
    Stage("eval", ("eval",), ("train",), lambda r: r.eval,
          lambda r, c, o: run_eval(r, c, callbacks=build_callbacks)),
    Stage("report", ("report",), ("data", "tokenize", "train", "eval"), lambda r: r.report / "index.html",
          lambda r, c, o: run_report(r, c.report.title, c.report.lang)),
]}
# label and augment are optional: the flow runs them only when configured (flow())
OPTIONAL = ("label", "augment")
ORDER = [name for name in STAGES if name not in OPTIONAL]


def configured(cfg: Config, name: str) -> bool:
    """Whether an optional stage has work: rules to apply, operations to run."""
    return bool(cfg.label.rules) if name == "label" else bool(cfg.augment.operations) if name == "augment" else True


def flow(cfg: Config) -> list[str]:
    """The stages `lmforge run` runs, in order: the optional ones only when configured."""
    return [name for name in STAGES if name not in OPTIONAL or configured(cfg, name)]

RUNNER_KEYS = ("executor", "ray", "slurm")  # data keys left out of the data stage's identity
# monitor keys that change what training produces (when it stops, the LR, the final weights); the
# rest of `monitor` (sinks, console, statistics, live control) only observes, so it is left out
TRAIN_MONITOR_KEYS = ("early_stop", "plateau", "average")


def external_inputs(cfg: Config, stage: str) -> list[Path]:
    """Files outside the run that a stage reads by path: the user's data files, a pretrained
    tokenizer, a HF folder's weights, the paraphrase model's weights."""
    if stage == "data":
        return input_files(cfg.data)
    if stage == "tokenize" and cfg.tokenizer.kind == "pretrained" and cfg.tokenizer.path:
        path = Path(cfg.tokenizer.path)
        return [path / "tokenizer.json" if path.is_dir() else path]
    if stage == "train" and cfg.model.init_from:
        folder = Path(cfg.model.init_from)
        if run_of(folder) is None:  # a Hugging Face folder
            return [folder / "config.json", *sorted(folder.glob("model*.safetensors*"))]
        return _weights(folder)
    if stage == "augment" and cfg.augment.paraphrase.model and any(
            op.name == "paraphrase" for op in cfg.augment.operations):
        return _weights(Path(cfg.augment.paraphrase.model))
    return []


def _weights(folder: Path) -> list[Path]:
    """The weights an lmforge run (all its checkpoints) or one checkpoint folder holds."""
    source = run_of(folder)
    if source is not None and folder == source.root:
        return sorted(source.checkpoints.glob("step-*/model.safetensors"))
    return [folder / "model.safetensors"]


def _stamp(path: Path) -> str:
    """A changed outside file re-runs the stage, told by size and time without hashing gigabytes."""
    stamp = file_stamp(path)
    return f"{path}:missing" if stamp is None else f"{path.resolve()}:{stamp[0]}:{stamp[1]}"


def stage_identity(run: RunDir, cfg: Config, stage: Stage) -> str:
    """Hash of the stage's config sections, the identities of the stages it reads, and the
    size and time of the outside files it reads."""
    extra = [f"{shakespeare.PACKAGE}=={shakespeare.VERSION}"] if stage.name == "data" else []
    extra += [_stamp(p) for p in external_inputs(cfg, stage.name)]
    sections = [cfg.section(s) for s in stage.sections]
    if stage.name == "data":  # who runs phase 1 (local, Ray, Slurm) does not change what it makes
        sections = [{k: v for k, v in sections[0].items() if k not in RUNNER_KEYS}]
    if stage.name == "train" and cfg.train.time_budget is not None:
        # the budget decides the step count: a run that recorded what it measured (budget_steps)
        # is the same stage as the one that measured it
        sections[1] = {k: v for k, v in sections[1].items() if k not in ("steps", "budget_steps")}
    if stage.name == "tokenize":  # tokenize reads the newest documents: labelled, augmented
        extra += [f"{n}={run.stage_identity(n)}" for n in OPTIONAL if configured(cfg, n)]
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
                           f"`lmforge ctl {quote(str(run.root))} stop`, or use another folder; "
                           + stale_hint(run))


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
    reads = stage.upstream + (OPTIONAL if stage.name == "tokenize" else ())  # records exist only when configured
    for name in reads:
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
        show((f"{name}: unchanged (identity {ident}), skipped — use --force to rerun", "dim"))
        return False
    show((name, "bold cyan"), ": running" + (f" ({reran} ran again since)" if reran else ""))
    run.invalidate(name)
    start = time.time()
    summary = stage.fn(run, cfg, opts)
    seconds = time.time() - start
    run.mark_done(name, ident, seconds, summary if isinstance(summary, dict) else {"output": str(summary)})
    show((name, "green"), f": done in {seconds:.1f}s")
    return True


def run_all(run: RunDir, cfg: Config, force: bool = False, stages: list[str] | None = None) -> dict[str, bool]:
    """The whole flow, in order; each stage is skipped when unchanged."""
    write_config(run, cfg)
    for name in OPTIONAL:  # an optional stage turned off: tokenize must stop reading its output
        if not configured(cfg, name):
            run.invalidate(name)
    return {name: run_stage(run, cfg, name, force) for name in (stages or flow(cfg))}


@contextmanager
def kept_if_untouched(run: RunDir, name: str) -> Iterator[None]:
    """A stage command writes its config into config.yaml before it runs. If `train` then fails
    without touching checkpoints/ (a refused override: batch split, device, optimizer...), put
    config.yaml and the stage's record back, so eval, generate, export and --resume still read
    the config that made the checkpoints, not the refused one. Likewise `eval` without touching
    eval.json (a refused --cv K, a bad task file): the config keeps describing eval.json, and a
    refused option is not read again by the next plain `lmforge eval`. Only these two: train
    touches checkpoints/ before anything else it writes, and eval writes eval.json last."""
    if name not in ("train", "eval"):
        yield
        return
    output = STAGES[name].output(run)
    record = run.stages / f"{name}.json"
    kept = {p: p.read_bytes() for p in (run.config, record) if p.is_file()}
    before = file_stamp(output)
    try:
        yield
    except BaseException:
        if kept and file_stamp(output) == before:
            for path, data in kept.items():
                with atomic_open(path, "wb") as fh:
                    fh.write(data)
        raise


def run_stage_command(run: RunDir, cfg: Config, name: str, force: bool = False, **opts: Any) -> bool:
    """One stage as `lmforge STAGE RUN` runs it: write the config, run the stage, and put the
    config back if the stage was refused before it touched its output."""
    with kept_if_untouched(run, name):
        write_config(run, cfg)
        return run_stage(run, cfg, name, force=force, **opts)
