"""The search space is checked before any stage or trial runs: unknown keys, impossible ranges,
conditions on keys outside the space and unreachable storage are clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from lmforge.config.load import load_config
from lmforge.config.schema import ParamSpec
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.tune.space import candidate_values, check_space, suggest
from lmforge.tune.study import run_tune
from tests.helpers.tune import tune_config


def refused(tmp_path: Path, space: dict, **tune: object) -> str:
    """run_tune's error on an empty folder: raised before data, tokenize or any trial touch it."""
    run = RunDir(tmp_path / "run")
    with pytest.raises(LmforgeError) as err:
        run_tune(run, tune_config(space, **tune))
    assert not (run.root / "data").exists() and not (run.root / "tune" / "trials.csv").exists()
    return str(err.value)


def test_unknown_key_names_the_nearest(tmp_path: Path):
    msg = refused(tmp_path, {"train.lrr": {"float": [1e-4, 1e-2]}})
    assert "unknown key 'train.lrr'" in msg and "did you mean 'train.lr'" in msg


def test_section_and_fixed_keys_are_refused(tmp_path: Path):
    assert "is a section" in refused(tmp_path, {"monitor.plateau": {"choice": [1]}})
    assert "cannot vary between trials" in refused(tmp_path, {"tokenizer.vocab_size": {"int": [256, 512]}})


def test_range_outside_the_schema(tmp_path: Path):
    msg = refused(tmp_path, {"train.lr": {"float": [1e-3, 20.0]}})
    assert "train.lr=20.0 is not a valid value" in msg and "less than or equal to 10" in msg


def test_choice_outside_the_schema(tmp_path: Path):
    assert "'rmsprop' is not a valid value" in refused(tmp_path, {"train.optimizer": {"choice": ["adamw", "rmsprop"]}})


def test_condition_on_a_key_outside_the_space(tmp_path: Path):
    msg = refused(tmp_path, {"train.momentum": {"float": [0.8, 0.99], "when": {"train.optimizer": "sgd"}}})
    assert "condition on 'train.optimizer', which is not in the space" in msg


def test_condition_on_a_value_the_key_never_takes(tmp_path: Path):
    msg = refused(tmp_path, {"train.optimizer": {"choice": ["adamw", "lion"]},
                             "train.momentum": {"float": [0.8, 0.99], "when": {"train.optimizer": "sgd"}}})
    assert "takes only ['adamw', 'lion']" in msg


def test_unreachable_database(tmp_path: Path):
    pytest.importorskip("psycopg", reason="reaching a PostgreSQL server needs its driver, psycopg (the dev and "
                                          "tune-rdb extras); without it the run stops at the driver check, "
                                          "tested in test_missing_database_driver_is_named")
    # port 1 on loopback: nothing listens, so the connection is refused at once
    msg = refused(tmp_path, {"train.lr": {"float": [1e-4, 1e-2]}}, storage="postgresql://nobody@127.0.0.1:1/none")
    assert "cannot be reached" in msg and "127.0.0.1:1" in msg


def test_storage_that_is_not_a_url(tmp_path: Path):
    assert "database URL" in refused(tmp_path, {"train.lr": {"float": [1e-4, 1e-2]}}, storage="runs/x.db")


def test_missing_database_driver_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for driver in ("psycopg", "psycopg2"):  # a None entry makes `import psycopg` fail, as on a machine without it
        monkeypatch.setitem(sys.modules, driver, None)
    msg = refused(tmp_path, {"train.lr": {"float": [1e-4, 1e-2]}}, storage="postgresql://nobody@127.0.0.1:1/none")
    assert "database driver is not installed" in msg and "lmforge[tune-rdb]" in msg


def test_impossible_range_in_a_file_names_its_line(tmp_path: Path):
    path = tmp_path / "tune.yaml"
    path.write_text("tune:\n  space:\n    train.lr: {float: [1.0e-2, 1.0e-4], log: true}\n")
    with pytest.raises(LmforgeError) as err:
        load_config(path)
    assert f"{path}:3" in str(err.value) and "impossible range [0.01, 0.0001]" in str(err.value)
    path.write_text("tune:\n  space:\n    train.lr: {float: [0.0, 1.0e-2], log: true}\n")
    with pytest.raises(LmforgeError, match="log scale needs low > 0"):
        load_config(path)


def test_short_form_round_trips_through_the_schema():
    spec = ParamSpec.model_validate({"int": [2, 8], "step": 2})
    assert spec.kind == "int" and spec.range == [2, 8] and candidate_values(spec) == [2, 4, 6, 8]
    assert ParamSpec.model_validate(spec.model_dump(mode="json")) == spec
    assert candidate_values(ParamSpec.model_validate({"float": [1e-4, 1e-2], "log": True})) == [1e-4, 1e-3, 1e-2]
    with pytest.raises(ValueError, match="exactly one of"):
        ParamSpec.model_validate({"float": [0, 1], "int": [0, 1]})


def test_a_conditional_key_is_sampled_only_when_its_condition_holds():
    cfg = tune_config({"train.optimizer": {"choice": ["adamw", "sgd"]},
                       "train.momentum": {"float": [0.8, 0.99], "when": {"train.optimizer": "sgd"}}})
    check_space(cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, cfg.tune.space)
        seen.append(values)
        study.tell(trial, 0.0)
    assert all(("train.momentum" in v) == (v["train.optimizer"] == "sgd") for v in seen)
    assert {v["train.optimizer"] for v in seen} == {"adamw", "sgd"}


def test_the_command_prints_the_error_without_a_traceback(tmp_path: Path):
    import subprocess
    import sys

    bad = tmp_path / "search.yaml"
    bad.write_text("tune:\n  space:\n    model.n_layr: {int: [1, 3]}\n")
    proc = subprocess.run([sys.executable, "-m", "lmforge", "tune", str(tmp_path / "run"), str(bad)],
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out
    assert "unknown key 'model.n_layr'" in out and "did you mean 'model.n_layer'" in out
    assert not (tmp_path / "run" / "data").exists()


def test_a_database_storage_is_announced_without_its_password():
    from lmforge.config.load import outside_effects

    cfg = tune_config(storage="postgresql://tuner:s3cret@db.example:5432/studies")
    lines = outside_effects(cfg, ("tune",))
    assert lines == [("tune.storage='postgresql://tuner:***@db.example:5432/studies': a database URL: the study's "
                      "trials, values and config keys are stored there")]
    assert outside_effects(tune_config(), ("tune",)) == []  # the journal file in RUN/tune/ stays local
