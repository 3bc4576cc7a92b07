"""A study shared through a real PostgreSQL server that the test starts (Debian's `postgresql`
package, installed with apt-get where missing). Skipped, with the reason, only where no server
can be had."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from lmforge.tune.storage import finished, open_storage
from lmforge.tune.study import run_tune
from tests.helpers.tune import tune_config, tune_run

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin() -> Path | None:
    """The newest installed server's bin folder (Debian keeps one per major version)."""
    versions = sorted(PG_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)) if PG_ROOT.is_dir() else []
    return versions[-1].parent if versions else None


def install_postgres() -> str | None:
    """apt-get install postgresql; the reason it failed, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine to install PostgreSQL"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
        if proc.returncode:
            return f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway server on a free loopback port, trusting local connections; its URL."""
    if pg_bin() is None:
        why = install_postgres()
        if why or pg_bin() is None:
            pytest.skip(f"PostgreSQL server not available: {why or 'installed, but no initdb found'}")
    bin_dir = pg_bin()
    folder = tmp_path_factory.mktemp("pg")
    data = folder / "data"
    # the server refuses to run as root: run it as the package's `postgres` user then
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and no runuser to start PostgreSQL as the postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        folder.chmod(0o755)
        for parent in folder.parents:  # the postgres user must reach the data folder
            if str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
                parent.chmod(parent.stat().st_mode | 0o111)
    port = free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120, check=False)

    init = run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "lmforge", "--no-sync")
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    if start.returncode:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        made = run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "lmforge", "studies")
        assert made.returncode == 0, made.stderr
        yield f"postgresql://lmforge@127.0.0.1:{port}/studies"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")


def test_a_study_in_postgres_is_shared(tmp_path: Path, postgres: str):
    cfg = tune_config(sampler="tpe", pruner="median", trials=3, storage=postgres, study="shared")
    first = tune_run(tmp_path / "machine-a", cfg)
    run_tune(first, cfg, stages=False)
    # a second "machine" (its own run folder and tokens) joins the same study and adds its trials
    more = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"trials": 5})})
    second = tune_run(tmp_path / "machine-b", more)
    summary = run_tune(second, more, stages=False)
    study = optuna.load_study(study_name="shared", storage=open_storage(second, more))
    assert finished(study) == 5 and summary["trials"] == 5
    assert not (second.root / "tune" / "journal.log").exists()
    assert (second.root / "tune" / "best.yaml").is_file()
    # --fresh drops the database's study of that name and starts anew
    again = run_tune(second, cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"trials": 2})}), fresh=True,
                     stages=False)
    assert again["trials"] == 2
