"""`lmforge tune`: check the space, run the data and tokenize stages once, then trials against one
Optuna study, in this process or in `tune.workers` processes that share the study's storage."""

from __future__ import annotations

import json
import logging
import math
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import optuna

from lmforge.config.schema import Config
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.tokens.store import META, read_meta
from lmforge.tune.objective import build_metric, check_metric, direction
from lmforge.tune.results import write_results, write_trials_csv
from lmforge.tune.samplers import build_pruner, build_sampler
from lmforge.tune.space import check_space, grid_size
from lmforge.tune.storage import (
    claim,
    describe,
    finished,
    open_storage,
    release,
    requeue_unfinished,
    tune_dir,
)
from lmforge.tune.trial import run_trial


def study_name(cfg: Config) -> str:
    return cfg.tune.study or cfg.name


def space_record(cfg: Config) -> dict[str, Any]:
    return {k: v.model_dump(mode="json") for k, v in cfg.tune.space.items()}


def open_study(run: RunDir, cfg: Config, worker: int = 0) -> optuna.Study:
    """The study, made on first use; a study of that name made with another space is refused."""
    storage = open_storage(run, cfg)
    sampler = build_sampler(cfg.model_copy(update={"tune": cfg.tune.model_copy(
        update={"seed": cfg.tune.seed + worker})}))  # every worker draws its own random numbers
    way = direction(cfg)
    study = optuna.create_study(storage=storage, study_name=study_name(cfg), sampler=sampler,
                                pruner=build_pruner(cfg), direction=way, load_if_exists=True)
    mine = space_record(cfg)
    theirs = study.user_attrs.get("space")
    if theirs is None:
        study.set_user_attr("space", mine)
        study.set_user_attr("metric", cfg.tune.metric)
    elif (theirs != mine or study.user_attrs.get("metric") != cfg.tune.metric
          or study.direction.name.lower() != way):
        raise LmforgeError(f"study '{study.study_name}' in {describe(run, cfg)} was made with another "
                           "search space, metric or direction", "name a new study with tune.study=NAME, or start "
                           "afresh with `lmforge tune RUN --fresh` (deletes RUN/tune/)")
    return study


def worker_threads(cfg: Config) -> int | None:
    """With several workers on one machine, each trains on its share of the cores."""
    if cfg.tune.workers == 1 or cfg.train.threads:
        return None
    return max(1, (os.cpu_count() or 1) // cfg.tune.workers)


def optimize(run: RunDir, cfg: Config, worker: int = 0) -> None:
    """Run trials until the study holds tune.trials finished ones (or the grid is done)."""
    optuna.logging.set_verbosity(logging.WARNING)
    study = open_study(run, cfg, worker)
    metric = build_metric(run, cfg)
    uniform = math.log(read_meta(run.tokens)["vocab_size"])
    target = cfg.tune.trials

    def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_trials_csv(run, study)
        if finished(study) >= target:
            study.stop()

    if finished(study) >= target:
        return
    study.optimize(lambda t: run_trial(t, run, cfg, metric, uniform, worker_threads(cfg)),
                   callbacks=[stop_when_done], catch=())


def steps_spent(study: optuna.Study) -> int:
    """Training steps of every trial of the study: the compute a search spent."""
    return sum(int(t.user_attrs.get("steps", 0)) for t in study.get_trials(deepcopy=False))


def run_budgeted(run: RunDir, cfg: Config, budget_steps: int) -> optuna.Study:
    """An in-memory study in this process that runs trials until they have trained `budget_steps`
    steps in all (or the grid is done): searches compared at equal compute (compare search)."""
    optuna.logging.set_verbosity(logging.WARNING)
    check_space(cfg)
    check_metric(cfg)
    # a fixed name: Hyperband puts a trial in a bracket by a hash of the study's name and the trial's
    # number, and an in-memory study's default name is random, so the search would not repeat
    study = optuna.create_study(study_name=study_name(cfg), sampler=build_sampler(cfg), pruner=build_pruner(cfg),
                                direction=direction(cfg))
    metric = build_metric(run, cfg)
    uniform = math.log(read_meta(run.tokens)["vocab_size"])

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if steps_spent(study) >= budget_steps:
            study.stop()

    study.optimize(lambda t: run_trial(t, run, cfg, metric, uniform), callbacks=[stop_at_budget], catch=())
    return study


def _worker_main(root: str, cfg_json: dict[str, Any], worker: int) -> None:
    """A worker process: its own trials against the shared study."""
    optimize(RunDir(Path(root)), Config.model_validate(cfg_json), worker)


def run_workers(run: RunDir, cfg: Config) -> None:
    """tune.workers spawned processes; the first that fails stops the rest and is reported."""
    ctx = get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(str(run.root), cfg.model_dump(mode="json"), i), daemon=False)
             for i in range(cfg.tune.workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    failed = [i for i, p in enumerate(procs) if p.exitcode]
    if failed:
        raise LmforgeError(f"tune: worker(s) {failed} stopped with an error (exit codes "
                           f"{[procs[i].exitcode for i in failed]})", "their output above says why; rerun "
                           "`lmforge tune` to resume the study")


def prepare(run: RunDir, cfg: Config) -> None:
    """Data and tokenize through the pipeline (skipped when unchanged): once for the whole study."""
    from lmforge.pipeline import run_stage, write_config  # here: worker processes never need the flow

    write_config(run, cfg)
    for stage in ("data", "tokenize"):
        run_stage(run, cfg, stage)
    run.require(run.tokens / META, "tokenize")
    val_tokens = read_meta(run.tokens)["splits"].get("val", {}).get("tokens", 0)
    if val_tokens <= cfg.model.block_size:
        raise LmforgeError(f"tune needs a validation split longer than model.block_size={cfg.model.block_size} "
                           f"tokens (it has {val_tokens})", "raise data.val_fraction or lower model.block_size")


def run_tune(run: RunDir, cfg: Config, fresh: bool = False, stages: bool = True) -> dict[str, Any]:
    """The whole search: every check first, then data and tokenize, then the trials; writes
    RUN/tune/ (trials.csv, best.yaml, summary.json, figures, tb/). `stages` off skips the data
    and tokenize stages (a run whose tokens were written another way, as in the tests)."""
    optuna.logging.set_verbosity(logging.WARNING)
    check_space(cfg)
    check_metric(cfg)
    if cfg.tune.sampler == "grid":
        console.print(f"tune: the grid has {grid_size(cfg.tune.space)} points")
    if fresh:
        import shutil

        shutil.rmtree(tune_dir(run), ignore_errors=True)
    storage = open_storage(run, cfg)  # an unreachable database stops here, before data and tokenize
    if fresh and cfg.tune.storage is not None:
        names = {s.study_name for s in storage.get_all_studies()}
        if study_name(cfg) in names:
            optuna.delete_study(study_name=study_name(cfg), storage=storage)
    if stages:
        prepare(run, cfg)
    local = cfg.tune.storage is None
    if local:
        claim(run)
    try:
        study = open_study(run, cfg)
        if local:
            again = requeue_unfinished(study)
            if again:
                console.print(f"tune: resuming study '{study.study_name}': {again} unfinished trial(s) queued again")
        done = finished(study)
        show(("tune", "bold cyan"), f": study '{study.study_name}' in {describe(run, cfg)}: {done} of "
             f"{cfg.tune.trials} trials done; sampler {cfg.tune.sampler}, pruner {cfg.tune.pruner}, "
             f"{cfg.tune.workers} worker(s)")
        if cfg.tune.workers == 1:
            optimize(run, cfg)
        else:
            run_workers(run, cfg)
        summary = write_results(run, cfg, study)
        from lmforge.report.build import run_report  # here, like the pipeline: not in worker processes

        run_report(run, cfg.report.title)  # the run report shows the study
        trials = tune_dir(run) / "trials"
        if trials.is_dir() and not any(trials.iterdir()):
            trials.rmdir()
    finally:
        if local:
            release(run)
    run.event("tune", f"study {summary['study']}: {summary['trials']} trials, best "
              f"{summary['best']['value'] if summary['best'] else None}", **{k: summary[k] for k in
                                                                            ("outcomes", "steps", "best")})
    return summary


def load_summary(run: RunDir) -> dict[str, Any] | None:
    path = tune_dir(run) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None
