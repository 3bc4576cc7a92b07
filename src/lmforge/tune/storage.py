"""Where a study lives: Optuna's journal file in RUN/tune/ (workers on one machine), or a
database at an RDB URL (workers on many machines). Opening it checks that it answers, so an
unreachable database is a clear error before any stage or trial runs.

A study killed mid-way resumes: in the journal file its unfinished trials are failed and their
values queued again when the next `lmforge tune` starts; in a database each trial beats a
heartbeat, and a trial whose heartbeat stopped is failed and retried by whichever worker notices.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json
from lmforge.tune.trial import OUTCOMES

JOURNAL = "journal.log"
OWNER = "owner.json"
HEARTBEAT_S = 30  # a database trial silent for GRACE_S is taken as dead (Optuna's heartbeat)
GRACE_S = 120


def tune_dir(run: RunDir) -> Path:
    return run.root / "tune"


def describe(run: RunDir, cfg: Config) -> str:
    """The storage as a user would name it (never with a password)."""
    if cfg.tune.storage is None:
        return str(tune_dir(run) / JOURNAL)
    from sqlalchemy.engine import make_url

    try:
        return make_url(cfg.tune.storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by open_storage
        return "the storage URL"


def open_storage(run: RunDir, cfg: Config) -> optuna.storages.BaseStorage:
    """The study's storage, checked to answer."""
    if cfg.tune.storage is None:
        folder = tune_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    url = cfg.tune.storage
    where = describe(run, cfg)
    if "://" not in url:
        raise LmforgeError(f"tune.storage={url!r} is not a database URL",
                           "use e.g. postgresql://user@host:5432/db, or leave tune.storage unset for a journal "
                           "file in RUN/tune/")
    connect: dict[str, Any] = {"connect_timeout": 10} if url.startswith(("postgresql", "mysql")) else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
            return RDBStorage(url, engine_kwargs={"connect_args": connect} if connect else None,
                              heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
    except ImportError as exc:
        raise LmforgeError(f"tune.storage {where}: its database driver is not installed ({exc})",
                           "for PostgreSQL: pip install 'lmforge[tune-rdb]' (psycopg)") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LmforgeError(f"tune.storage {where} cannot be reached: {first}",
                           "check the host, port, database name and credentials (try `psql URL`), or leave "
                           "tune.storage unset to keep the study in RUN/tune/") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(run: RunDir) -> None:
    """One `lmforge tune` drives a run's journal study at a time (its workers are its own)."""
    path = tune_dir(run) / OWNER
    if path.is_file():
        try:
            pid = int(json.loads(path.read_text())["pid"])
        except (ValueError, KeyError, json.JSONDecodeError):
            pid = -1
        if pid != os.getpid() and pid > 0 and _alive(pid):
            raise LmforgeError(f"a study is running in {run.root} (pid {pid})",
                               f"wait for it (`lmforge watch {run.root}`), or run more workers against it "
                               "with tune.storage set to a database")
    atomic_write_json(path, {"pid": os.getpid()})


def release(run: RunDir) -> None:
    (tune_dir(run) / OWNER).unlink(missing_ok=True)


def outcome(trial: FrozenTrial) -> str:
    """complete, pruned, diverged or failed (the trial.py outcomes) for a trial that ended; waiting
    for one queued, running for one under way; interrupted for one a stopped study left unfinished
    (queued again)."""
    ended = trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    if ended and "outcome" in trial.user_attrs and not trial.user_attrs.get("requeued"):
        return str(trial.user_attrs["outcome"])
    if trial.state == TrialState.WAITING:
        return "waiting"  # queued (enqueue_trial, or a retry), not started
    return "running" if trial.state == TrialState.RUNNING else "interrupted"


def requeue_unfinished(study: optuna.Study) -> int:
    """Trials a stopped study left unfinished (still RUNNING, or failed by Ctrl-C): fail them,
    marked `requeued`, and queue their values again so the resumed study trains them first. Only
    for a study this process owns (a journal file under claim), where nothing else can be running.
    Optuna has no public call to end another process's trial, hence the storage and trial id."""
    storage = study._storage
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if outcome(trial) not in ("running", "interrupted") or trial.user_attrs.get("requeued"):
            continue
        storage.set_trial_user_attr(trial._trial_id, "requeued", True)
        if trial.state == TrialState.RUNNING:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        count += 1
    return count


def finished(study: optuna.Study) -> int:
    """Trials that reached an outcome; interrupted ones, whose values are trained again, do not count."""
    return sum(1 for t in study.get_trials(deepcopy=False) if outcome(t) in OUTCOMES)
