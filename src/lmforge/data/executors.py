"""Who runs phase 1 of the data stage: datatrove's local, Ray or Slurm executor (`data.executor`).

Local and Ray run the tasks and return when they are done. Slurm cannot be waited on cleanly from
a login node (datatrove's SlurmPipelineExecutor writes an sbatch script, submits a job array and
returns), so `slurm_phase1` submits, records the job, and raises `StagePending`; running the stage
again finds datatrove's completion markers (logs/completions/NNNNN) and hands the shards to phase 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lmforge.config.schema import DataConfig
from lmforge.console import kept_on_stderr
from lmforge.data.sources import Unit
from lmforge.errors import LmforgeError, StagePending
from lmforge.rundir import atomic_write_json


class InDir:
    """First step of a cluster pipeline: work in the submitting directory, so relative input paths (and
    the document ids made from them) mean what they meant there. Needs a filesystem shared at that path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, data: Iterable[Any] | None, rank: int = 0, world_size: int = 1) -> Iterable[Any] | None:
        os.chdir(self.path)
        return data

    def __repr__(self) -> str:
        return f"InDir({self.path!r})"


def task_count(cfg: DataConfig, units: list[Unit]) -> int:
    """datatrove tasks: data.tasks, but never more than there are input units."""
    return max(1, min(cfg.tasks, len(units)))


def check_executor(cfg: DataConfig) -> None:
    """What the chosen executor needs on this machine; raised before any work starts."""
    if cfg.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise LmforgeError("data.executor=ray needs ray, which is not installed",
                               "pip install 'lmforge[cluster]' (or use data.executor=local)") from None
    if cfg.executor == "slurm" and shutil.which("sbatch") is None:
        raise LmforgeError("data.executor=slurm needs Slurm's sbatch on PATH, and it is not there",
                           "run `lmforge data` on the cluster's login node, or use data.executor=local|ray")


def incomplete_ranks(logs: Path, tasks: int) -> list[int]:
    """Tasks without datatrove's completion marker (logs/completions/NNNNN)."""
    return [r for r in range(tasks) if not (logs / "completions" / f"{r:05d}").is_file()]


def build_executor(pipeline: list[Any], cfg: DataConfig, tasks: int, logs: Path, skip_completed: bool = False) -> Any:
    """datatrove's executor for data.executor, with the settings of data.ray / data.slurm."""
    workers = min(cfg.workers, tasks)
    if cfg.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                     skip_completed=skip_completed)
    cluster_pipeline = [InDir(os.getcwd()), *pipeline]
    if cfg.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(cluster_pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                   skip_completed=skip_completed, cpus_per_task=cfg.ray.cpus_per_task,
                                   mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb)
    from datatrove.executor import SlurmPipelineExecutor

    s = cfg.slurm
    assert s.partition, "DataConfig checks that slurm has a partition"
    env = s.env_command
    if env is None and sys.prefix != sys.base_prefix:
        env = f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    return SlurmPipelineExecutor(cluster_pipeline, tasks=tasks, time=s.time, partition=s.partition,
                                 cpus_per_task=s.cpus_per_task, mem_per_cpu_gb=s.mem_per_cpu_gb, workers=workers,
                                 job_name=s.job_name, qos=s.qos or "", env_command=env,
                                 sbatch_args=dict(s.sbatch_args), logging_dir=str(logs),
                                 skip_completed=skip_completed)


def run_local_or_ray(executor: Any, cfg: DataConfig, logs: Path, tasks: int) -> None:
    """Run the tasks and wait for them. Ray joins data.ray.address (a Ray already started in this process is
    used as is; one started here is shut down after). Raises when any task did not finish."""
    log = io.StringIO()
    try:
        # datatrove's own log lines are swallowed; lmforge's progress lines still reach stderr
        with kept_on_stderr(), contextlib.redirect_stderr(log):
            if cfg.executor == "ray":
                import ray

                started = not ray.is_initialized()
                if started:
                    ray.init(address=cfg.ray.address, log_to_driver=False)
                try:
                    executor.run()
                finally:
                    if started:
                        ray.shutdown()
            else:
                executor.run()
    except Exception as exc:
        raise RuntimeError(f"the datatrove pipeline failed; its logs are in {logs}") from exc
    missing = incomplete_ranks(logs, tasks)
    if missing:  # datatrove's Ray executor logs failed tasks instead of raising
        raise RuntimeError(f"datatrove tasks {missing} did not finish; their logs are in {logs / 'logs'}")


def _submission_key(cfg: DataConfig, units: list[Unit]) -> str:
    """Config and inputs of a submission: a rerun with other ones must not reuse its shards."""
    blob = json.dumps([cfg.model_dump(mode="json"), os.getcwd(), [asdict(u) for u in units]], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _job_queued(job_id: str) -> bool | None:
    """Whether Slurm still lists the job (pending or running); None when squeue cannot tell."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # squeue exits 1 with "Invalid job id" once a job has left the queue
        return False if "invalid job id" in out.stderr.lower() else None
    return bool(out.stdout.strip())


def _submit(pipeline: list[Any], cfg: DataConfig, tasks: int, work: Path, resubmit: bool) -> str:
    executor = build_executor(pipeline, cfg, tasks, work / "logs", skip_completed=True)
    log = io.StringIO()
    try:
        with contextlib.redirect_stderr(log):
            executor.run()
    except subprocess.CalledProcessError as exc:
        raise LmforgeError(f"sbatch refused the job (exit {exc.returncode})",
                           f"the script is {work / 'logs' / 'launch_script.slurm'}; check data.slurm.*") from None
    job_id = str(executor.job_id)
    atomic_write_json(work / "submission.json", {"job_id": job_id, "tasks": tasks, "submitted": time.time(),
                                                 "resubmitted": resubmit})
    return job_id


def slurm_phase1(pipeline_for: Any, units: list[Unit], cfg: DataConfig, root: Path, again: str) -> tuple[Path, float]:
    """Phase 1 on Slurm. Returns (work folder, seconds from submission to the last task's end) once every task
    has its completion marker; otherwise submits (or resubmits the unfinished tasks of a job that has left the
    queue) and raises StagePending. `pipeline_for(work)` builds the pipeline; `again` is the command to rerun."""
    tasks = task_count(cfg, units)
    work = (root / _submission_key(cfg, units)).resolve()
    record = work / "submission.json"
    if record.is_file():
        sub = json.loads(record.read_text(encoding="utf-8"))
        missing = incomplete_ranks(work / "logs", tasks)
        if not missing:
            last = max((work / "logs" / "completions").iterdir(), key=lambda p: p.stat().st_mtime)
            return work, max(0.0, last.stat().st_mtime - sub["submitted"])
        job = sub["job_id"]
        queued = _job_queued(job)
        if queued is not False:
            unsure = "" if queued else (f"; squeue could not say whether job {job} still runs: if it has ended, "
                                        f"remove {work} and rerun to submit phase 1 afresh")
            raise StagePending(f"phase 1 is on Slurm as job {job}: {tasks - len(missing)}/{tasks} tasks done",
                               f"run `{again}` again when it has finished (squeue -j {job}); task logs are in "
                               f"{work / 'logs' / 'logs'}{unsure}")
        new = _submit(pipeline_for(work), cfg, tasks, work, resubmit=True)
        raise StagePending(f"Slurm job {job} ended with {len(missing)}/{tasks} tasks unfinished; resubmitted them "
                           f"as job {new}", f"why they failed: {work / 'logs' / 'logs'}; run `{again}` again when "
                           f"job {new} has finished (squeue -j {new})")
    stale = [json.loads((p / "submission.json").read_text(encoding="utf-8"))["job_id"]
             for p in root.glob("*/") if (p / "submission.json").is_file()] if root.is_dir() else []
    shutil.rmtree(root, ignore_errors=True)
    work.mkdir(parents=True)
    job = _submit(pipeline_for(work), cfg, tasks, work, resubmit=False)
    note = (f" (data config or inputs changed since job(s) {', '.join(stale)}: their output was discarded; "
            f"scancel them if they still run)") if stale else ""
    raise StagePending(f"phase 1 submitted to Slurm as job {job}: {tasks} task{'s' * (tasks != 1)} on partition "
                       f"{cfg.slurm.partition}{note}",
                       f"run `{again}` again when it has finished (squeue -j {job}) to run phase 2")
