"""Tiny real studies end to end: every sampler, pruning, divergence, best.yaml, two workers on one
journal file, and a study killed mid-way that resumes."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from lmforge.config.load import load_config
from lmforge.rundir import RunDir
from lmforge.train.stage import run_train
from lmforge.tune.storage import finished, open_storage
from lmforge.tune.study import open_study, run_tune
from lmforge.tune.watch import render
from tests.helpers.runs import VOCAB
from tests.helpers.tune import tune_config, tune_run

ROOT = Path(__file__).resolve().parents[2]


def rows(run: RunDir) -> list[dict[str, str]]:
    with open(run.root / "tune" / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "gp", "cmaes", "qmc"])
def test_each_sampler_runs_a_tiny_study(tmp_path: Path, sampler: str):
    space = {"train.lr": {"float": [1e-3, 3e-2], "log": True}, "model.n_embd": {"int": [16, 32], "step": 16}}
    cfg = tune_config(space, "train.steps=20", sampler=sampler, pruner="none", trials=4, startup_trials=2)
    run = tune_run(tmp_path / "run", cfg)
    summary = run_tune(run, cfg, stages=False)
    table = rows(run)
    assert [r["state"] for r in table] == ["complete"] * 4
    assert all(int(r["steps"]) == 20 and float(r["seconds"]) > 0 for r in table)
    values = [float(r["value"]) for r in table]
    assert all(math.isfinite(v) and v < math.log(VOCAB) for v in values)  # every trial learned something
    assert summary["best"]["value"] == pytest.approx(min(values))
    if sampler == "grid":  # 3 LRs x 2 widths: four distinct grid points
        assert len({(r["train.lr"], r["model.n_embd"]) for r in table}) == 4
        assert {float(r["train.lr"]) for r in table} <= {1e-3, 5.47723e-3, 3e-2}


def test_pruner_stops_a_bad_trial(tmp_path: Path):
    cfg = tune_config(pruner="median", trials=3, startup_trials=2)
    run = tune_run(tmp_path / "run", cfg)
    study = open_study(run, cfg)
    for lr in (1e-2, 2e-2, 1e-4):  # two good trials, then one that learns slowly
        study.enqueue_trial({"train.lr": lr})
    run_tune(run, cfg, stages=False)
    table = rows(run)
    assert [r["state"] for r in table] == ["complete", "complete", "pruned"]
    assert int(table[2]["steps"]) == 10  # stopped at its first evaluation, of 30 steps
    assert float(table[2]["value"]) > max(float(r["value"]) for r in table[:2])
    trial = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg)).trials[2]
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [10]


def test_a_diverging_trial_is_recorded_as_diverged(tmp_path: Path):
    cfg = tune_config({"train.lr": {"choice": [1e-2, 8.0]}}, "train.grad_clip=0", "train.warmup_steps=0",
                      sampler="grid", pruner="none", trials=2)
    run = tune_run(tmp_path / "run", cfg)
    summary = run_tune(run, cfg, stages=False)
    by_lr = {float(r["train.lr"]): r for r in rows(run)}
    assert by_lr[1e-2]["state"] == "complete"
    assert by_lr[8.0]["state"] == "diverged" and int(by_lr[8.0]["steps"]) < 30
    assert "above 1.1 x its start" in by_lr[8.0]["reason"] or "NaN" in by_lr[8.0]["reason"]
    assert summary["outcomes"]["diverged"] == 1 and summary["outcomes"]["pruned"] == 0
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg))
    bad = next(t for t in study.trials if t.params["train.lr"] == 8.0)
    # kept as PRUNED with the metric of guessing uniformly, so TPE ranks it below every finished trial
    assert bad.state == TrialState.PRUNED and list(bad.intermediate_values.values())[-1] == pytest.approx(
        math.log(VOCAB))


def test_best_yaml_is_a_config_that_trains(tmp_path: Path):
    cfg = tune_config({"train.lr": {"float": [1e-3, 3e-2], "log": True},
                       "train.optimizer": {"choice": ["adamw", "sgd"]},
                       "train.momentum": {"float": [0.8, 0.95], "when": {"train.optimizer": "sgd"}}},
                      sampler="random", pruner="none", trials=3)
    run = tune_run(tmp_path / "run", cfg)
    summary = run_tune(run, cfg, stages=False)
    best = load_config(run.root / "tune" / "best.yaml")
    for key, value in summary["best"]["params"].items():
        section, name = key.split(".")
        assert getattr(getattr(best, section), name) == value
    assert best.model == cfg.model and best.data == cfg.data
    result = run_train(run, best, show_progress=False)
    assert result["step"] == 30 and result["val_loss"] == pytest.approx(summary["best"]["value"], rel=1e-4)
    figures = {p.name for p in (run.root / "tune").glob("*.png")}
    assert {"history.png", "parallel.png", "intermediate.png"} <= figures
    assert len(list((run.root / "tune" / "tb").glob("trial-*/events.out.tfevents.*"))) == 3
    # what `lmforge watch RUN` shows: counts, the best trial, the trials
    shown = Console(record=True, width=200)
    shown.print(render(optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg)), 3))
    text = shown.export_text()
    assert "3 trials of 3 (3 complete)" in text and f"best: trial {summary['best']['trial']}" in text


def test_two_worker_processes_share_one_journal_study(tmp_path: Path):
    cfg = tune_config(sampler="tpe", pruner="median", trials=4, workers=2)
    run = tune_run(tmp_path / "run", cfg)
    summary = run_tune(run, cfg, stages=False)
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg))
    assert finished(study) >= 4 and summary["trials"] == len(study.trials)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2 and all(str(os.getpid()) not in w.split(":")[1] for w in workers)
    assert {r["state"] for r in rows(run)} <= {"complete", "pruned"}


CHILD = """
import sys
from lmforge.config.schema import Config
from lmforge.rundir import RunDir
from lmforge.tune.study import run_tune
cfg = Config.model_validate_json(open(sys.argv[2]).read())
run_tune(RunDir(sys.argv[1]), cfg, stages=False)
"""


def test_a_study_killed_mid_way_resumes(tmp_path: Path):
    cfg = tune_config(None, "train.steps=100", "train.eval_interval=50", sampler="random", pruner="none", trials=4)
    run = tune_run(tmp_path / "run", cfg)
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run.root), str(tmp_path / "cfg.json")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    killed_running = None
    try:
        while time.time() < deadline and child.poll() is None:
            journal = run.root / "tune" / "journal.log"
            if journal.is_file():
                trials = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg)).trials
                running = [t for t in trials if t.state == TrialState.RUNNING and t.params]
                if any(t.state == TrialState.COMPLETE for t in trials) and running:
                    os.kill(child.pid, signal.SIGKILL)  # as a lost machine or the OOM killer would
                    killed_running = running[0]
                    break
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert killed_running is not None, "the study ended before it could be killed mid-trial"
    before = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg)).trials
    done_before = {t.number: t.value for t in before if "outcome" in t.user_attrs}

    summary = run_tune(run, cfg, stages=False)
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(run, cfg))
    assert finished(study) == 4 and summary["outcomes"]["complete"] == 4
    for number, value in done_before.items():  # what finished before the kill was kept, not retrained
        assert study.trials[number].value == value
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == killed_running.number]
    assert len(retry) == 1 and retry[0].params == killed_running.params and retry[0].state == TrialState.COMPLETE
    assert study.trials[killed_running.number].state == TrialState.FAIL
    assert [r["state"] for r in rows(run)].count("interrupted") == 1



def test_bits_per_byte_is_the_validation_loss_in_bits_per_byte_of_text(tmp_path: Path):
    from tests.helpers.runs import doc_run_config, make_doc_run

    run = make_doc_run(tmp_path / "run")  # char tokens: 300 one-byte characters and an EOS per document
    values = {}
    for metric in ("val_loss", "bits_per_byte"):
        cfg = doc_run_config().model_copy(deep=True)
        cfg.train.steps, cfg.train.eval_interval = 6, 3
        cfg.tune = cfg.tune.model_validate({"space": {"train.lr": {"choice": [1e-2]}}, "trials": 1, "metric": metric,
                                            "pruner": "none", "study": metric})
        values[metric] = run_tune(run, cfg, stages=False)["best"]["value"]
    assert values["bits_per_byte"] == pytest.approx(values["val_loss"] / math.log(2) * 301 / 300, rel=1e-6)
