"""data.executor: Ray for real on a local Ray instance (slow); Slurm through its sbatch script, run by hand.

No Slurm cluster is reachable from the tests. The Slurm test puts stand-ins for the scheduler's
commands on PATH (sbatch records the script and answers a job id, squeue answers "queued" or not,
srun and scontrol run on this machine) and then plays the scheduler: it runs the very sbatch script
datatrove wrote, once per array index, with bash. The pipeline, completion markers and phase 2 are
the real ones; only queueing, placement and srun's process launch are not exercised.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.config.load import load_config
from lmforge.config.schema import DataConfig
from lmforge.data.stage import run_data
from lmforge.errors import LmforgeError, StagePending
from lmforge.rundir import RunDir, read_jsonl_gz
from tests.helpers.texts import make_inputs

OPTS: dict = {"min_chars": 100, "val_fraction": 0.1, "test_fraction": 0.1}


def outputs(run_dir: RunDir) -> dict[str, list]:
    """Kept documents per split and rejections, as comparable lists."""
    out: dict[str, list] = {s: sorted((r["id"], r["text"]) for r in read_jsonl_gz(run_dir.split_file(s)))
                            for s in ("train", "val", "test")}
    out["rejected"] = sorted((r["id"], r["rule"]) for r in read_jsonl_gz(run_dir.rejected / "rejected.jsonl.gz"))
    return out


def ledger_core(ledger: dict) -> dict:
    """The ledger without timings."""
    core = {k: v for k, v in ledger.items() if k != "seconds"}
    core["near_dedup"] = {k: v for k, v in core.get("near_dedup", {}).items() if k != "seconds"}
    return core


def local_result(tmp_path: Path, sources: list) -> tuple[dict, dict]:
    run_dir = RunDir(tmp_path / "local")
    ledger = run_data(run_dir, DataConfig(corpus="none", sources=sources, tasks=2, workers=2, **OPTS))
    return ledger_core(ledger), outputs(run_dir)


def test_slurm_without_partition_is_a_config_error() -> None:
    with pytest.raises(LmforgeError, match="data.executor=slurm needs data.slurm.partition"):
        load_config(None, None, ["data.executor=slurm"])
    cfg = load_config(None, None, ["data.executor=slurm", "data.slurm.partition=cpu", "data.slurm.time=2:00:00"])
    assert (cfg.data.slurm.partition, cfg.data.slurm.time) == ("cpu", "2:00:00")


def test_slurm_without_sbatch_stops_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    sources = make_inputs(tmp_path / "in")
    cfg = DataConfig(corpus="none", sources=sources, executor="slurm", slurm={"partition": "cpu"}, **OPTS)
    with pytest.raises(LmforgeError, match="needs Slurm's sbatch on PATH"):
        run_data(RunDir(tmp_path / "run"), cfg)
    assert not (tmp_path / "run" / "data").exists()


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def fake_slurm(bin_dir: Path) -> Path:
    """Stand-ins for Slurm's commands. Returns the folder where sbatch keeps what it was given."""
    bin_dir.mkdir(parents=True)
    spool = bin_dir / "spool"
    spool.mkdir()
    _script(bin_dir / "sbatch", f"""n=$(( $(ls {spool} | grep -c '^job_') + 1 ))
cp "${{@: -1}}" {spool}/job_$n.sh
echo "$@" > {spool}/args_$n
echo "Submitted batch job $n"
""")
    # queued while the file 'queued' exists; afterwards squeue says the id is unknown, as Slurm does
    _script(bin_dir / "squeue", f"""if [ -f {spool}/queued ]; then echo "$3"; else
echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; fi
""")
    _script(bin_dir / "scontrol", 'echo "$(hostname)"\n')
    _script(bin_dir / "srun", 'while [[ "$1" == -* ]]; do [[ "$1" == -n ]] && shift; shift; done; exec "$@"\n')
    return spool


def play_scheduler(script: Path, array_ids: list[int], path: str) -> None:
    """Run the sbatch script as Slurm would run array tasks of it (on this machine)."""
    for i in array_ids:
        env = {**os.environ, "PATH": path, "SLURM_ARRAY_TASK_ID": str(i), "SLURM_NODELIST": "localhost",
               "SLURM_JOB_ID": "1"}
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=300)


def test_slurm_script_submission_and_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = make_inputs(tmp_path / "in")
    want_ledger, want = local_result(tmp_path, sources)
    spool = fake_slurm(tmp_path / "bin")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    monkeypatch.setenv("PATH", path)
    run_dir = RunDir(tmp_path / "slurm")
    cfg = DataConfig(corpus="none", sources=sources, tasks=2, workers=2, executor="slurm", **OPTS,
                     slurm={"partition": "cpu", "time": "0:20:00", "cpus_per_task": 2, "mem_per_cpu_gb": 3,
                            "sbatch_args": {"account": "lm"}})

    with pytest.raises(StagePending, match="submitted to Slurm as job 1: 2 tasks on partition cpu"):
        run_data(run_dir, cfg)
    script = (spool / "job_1.sh").read_text()
    for line in ("--partition=cpu", "--time=0:20:00", "--cpus-per-task=2", "--mem-per-cpu=3G", "--account=lm",
                 "--array=0-1%2", "--job-name=lmforge-data"):
        assert f"#SBATCH {line}\n" in script
    assert "--qos" not in script and "launch_pickled_pipeline" in script
    assert "bin/activate" in script  # the tests run in a venv: the job activates it
    (work,) = (run_dir.data / ".slurm").iterdir()
    assert (work / "logs" / "launch_script.slurm").read_text() == script
    assert not run_dir.ledger.exists()

    (spool / "queued").touch()  # still in the queue: no second submission
    with pytest.raises(StagePending, match="on Slurm as job 1: 0/2 tasks done"):
        run_data(run_dir, cfg)
    assert not (spool / "job_3.sh").exists()  # job 2 is datatrove's merge-stats job

    play_scheduler(work / "logs" / "launch_script.slurm", [0], path)  # only task 0 runs, then the job ends
    (spool / "queued").unlink()
    with pytest.raises(StagePending, match="job 1 ended with 1/2 tasks unfinished; resubmitted them as job 3"):
        run_data(run_dir, cfg)
    assert json.loads((work / "logs" / "ranks_to_run.json").read_text()) == [1]

    play_scheduler(work / "logs" / "launch_script.slurm", [0], path)  # array index 0 of job 3 is rank 1
    ledger = run_data(run_dir, cfg)
    assert ledger_core(ledger) == want_ledger
    assert outputs(run_dir) == want
    assert not (run_dir.data / ".slurm").exists()


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'lmforge[cluster]'")
    sources = make_inputs(tmp_path / "in")
    want_ledger, want = local_result(tmp_path, sources)
    ray.init(num_cpus=2, log_to_driver=False)
    try:
        run_dir = RunDir(tmp_path / "ray")
        t = time.time()
        cfg = DataConfig(corpus="none", sources=sources, tasks=2, workers=2, executor="ray", **OPTS)
        ledger = run_data(run_dir, cfg)
        print(f"ray data stage: {time.time() - t:.1f}s")
    finally:
        ray.shutdown()
    assert ledger_core(ledger) == want_ledger
    assert outputs(run_dir) == want
    assert len(list((run_dir.data).glob(".work"))) == 0


def test_ray_not_installed_stops_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the package
    cfg = DataConfig(corpus="none", sources=make_inputs(tmp_path / "in"), executor="ray", **OPTS)
    with pytest.raises(LmforgeError, match="data.executor=ray needs ray") as info:
        run_data(RunDir(tmp_path / "run"), cfg)
    assert "lmforge[cluster]" in str(info.value)
    assert not (tmp_path / "run" / "data").exists()


def test_executor_settings_leave_the_data_identity_alone(tmp_path: Path) -> None:
    from lmforge.pipeline import STAGES, stage_identity

    run_dir = RunDir(tmp_path / "run")
    local = load_config(None, None, [])
    slurm = load_config(None, None, ["data.executor=slurm", "data.slurm.partition=cpu", "data.ray.cpus_per_task=4"])
    other = load_config(None, None, ["data.min_chars=5"])
    ident = [stage_identity(run_dir, c, STAGES["data"]) for c in (local, slurm, other)]
    assert ident[0] == ident[1] != ident[2]
