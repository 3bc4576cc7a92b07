"""Fault injection: `lmforge run --preset smoke` killed at seeded moments in every stage, with
SIGKILL (the OOM killer, a lost node) and SIGTERM (Slurm, Kubernetes, `docker stop`), then run
again; what the run ends with must be what an uninterrupted run makes.

A moment is a stage and a fraction of that stage's duration in the uninterrupted run: the kill
lands that long after the victim prints `STAGE: running`. The signal goes to the victim's whole
process group, as a scheduler's does. The rerun is the same `lmforge run` command; when the kill
hit training, the rerun first continues it with `lmforge train RUN --resume` (what the SIGTERM
message says), so the resume path is exercised too.

Byte-identical (the outputs that must not depend on whether a run was interrupted): the data
splits and rejected documents, the tokenizer, every token file, the newest checkpoint's weights
(model.safetensors, and its step); equal as values: eval.json, the ledger and tokens/meta.json
without their timings (the ledger's `seconds`), and every logged loss, LR and gradient norm in
metrics.jsonl. Not compared: timestamps and speeds, events.jsonl (an interrupted run records
the interruption and the resume), which older checkpoints are kept (a SIGTERM adds one off the
checkpoint interval), and the report's HTML (it shows timings; it must exist).

The default suite runs one chain of four kills (one run killed four times in four stages, then
finished); `-m slow` runs 20 independent kills, four in each stage, each followed by its rerun.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lmforge.train import checkpoint as ckpt

LMFORGE = [sys.executable, "-m", "lmforge"]
STAGES = ("data", "tokenize", "train", "eval", "report")
# the smoke preset, shrunk: every stage runs and writes all it writes, in well under a minute
FAST = ["data.max_docs=6", "tokenizer.vocab_size=300", "model.n_layer=1", "model.n_embd=32", "model.block_size=32",
        "train.batch_size=8", "train.steps=30", "train.warmup_steps=3", "train.checkpoint_interval=10",
        "train.eval_interval=15", "train.eval_batches=2", "train.log_interval=5", "train.compile_loss=off",
        "eval.max_tokens=1500", "eval.samples=1", "eval.sample_tokens=10", "eval.task_items=10",
        "eval.bootstrap_rounds=50", "monitor.console=lines", "monitor.peak_flops=1e11", "monitor.stats_interval=0"]
SEED = 20240611
TIMING = ("seconds", "elapsed_s", "tokens_per_s", "mfu", "eta_s", "time")


@dataclass(frozen=True)
class Kill:
    stage: str
    fraction: float  # of the stage's duration in the uninterrupted run
    sig: signal.Signals


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def _run_cmd(run: Path) -> list[str]:
    return [*LMFORGE, "run", "--preset", "smoke", "-o", str(run), *FAST]


def _finish(run: Path) -> None:
    proc = subprocess.run(_run_cmd(run), env=_env(), capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _kill_during(cmd: list[str], kill: Kill, durations: dict[str, float]) -> tuple[bool, int]:
    """Start `cmd`, signal its process group `kill.fraction` of the stage's reference duration
    after it prints `STAGE: running`. Returns (whether the signal was sent, the exit status)."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(f"{kill.stage}: running"):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = False
    try:
        while not started.wait(0.05):
            if proc.poll() is not None:
                break
        if started.is_set():
            time.sleep(kill.fraction * durations[kill.stage])
            if proc.poll() is None:
                os.killpg(proc.pid, kill.sig)
                sent = True
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    return sent, code


def _interruptions(run: Path) -> list[dict]:
    """The `interrupted` events the run has recorded so far."""
    events = run / "events.jsonl"
    lines = events.read_text().splitlines() if events.is_file() else []
    return [e for e in map(json.loads, lines) if e["kind"] == "interrupted"]


def _check_exit(kill: Kill, sent: bool, code: int, new_events: list[dict]) -> None:
    """A SIGTERM inside the training loop is handled (exit 143, one `interrupted` event); one that
    lands outside it (building the model, after the last save, another stage) ends the process as
    SIGTERM does by default. A SIGKILL always ends it at once."""
    if not sent:
        return
    if kill.sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        return
    assert code in (143, -signal.SIGTERM), code
    assert [e["signal"] for e in new_events] == (["SIGTERM"] if code == 143 else [])


def _resume_training(run: Path) -> None:
    """`lmforge train RUN --resume`, as the message of an interrupted training says."""
    if ckpt.list_checkpoints(run / "checkpoints"):
        proc = subprocess.run([*LMFORGE, "train", str(run), "--resume"], env=_env(), capture_output=True,
                              text=True, check=False, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]


def _rerun_after(run: Path, kill: Kill) -> None:
    """What a user (or a requeued job) does: continue an interrupted training, then run again."""
    if kill.stage == "train":
        _resume_training(run)
    _finish(run)


def _without_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def final_outputs(run: Path) -> dict[str, Any]:
    """What an interruption must not change (see the module's docstring)."""
    out: dict[str, Any] = {}
    files = [*sorted((run / "data").rglob("*.jsonl.gz")), run / "tokenizer" / "tokenizer.json",
             *sorted((run / "tokens").glob("*.bin")), *sorted((run / "tokens").glob("*.npy"))]
    for path in files:
        out[str(path.relative_to(run))] = path.read_bytes()
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    out["newest checkpoint"] = newest.name
    out["newest weights"] = (newest / "model.safetensors").read_bytes()
    for rel in ("eval.json", "data/ledger.json", "tokens/meta.json"):
        out[rel] = _without_timing(json.loads((run / rel).read_text()))
    out["metrics"] = [_without_timing(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert (run / "report" / "index.html").is_file()
    return out


def _assert_same(reference: dict[str, Any], run: Path, what: str) -> None:
    got = final_outputs(run)
    assert got.keys() == reference.keys(), what
    for key, value in reference.items():
        assert got[key] == value, f"{key} differs from the uninterrupted run after {what}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, float]]:
    """The uninterrupted run's outputs and each stage's duration."""
    run = tmp_path_factory.mktemp("reference") / "run"
    _finish(run)
    durations = {s: json.loads((run / ".stages" / f"{s}.json").read_text())["seconds"] for s in STAGES}
    return final_outputs(run), durations


def seeded_kills(per_stage: int, seed: int = SEED) -> list[Kill]:
    """`per_stage` moments in each stage, spread over it (one in each equal slice, placed at
    random within the slice), each with SIGKILL or SIGTERM at random."""
    rng = random.Random(seed)
    kills = []
    for stage in STAGES:
        for i in range(per_stage):
            kills.append(Kill(stage, (i + rng.random()) / per_stage,
                              rng.choice([signal.SIGKILL, signal.SIGTERM])))
    return kills


def test_a_run_killed_in_four_stages_ends_as_an_uninterrupted_one(tmp_path: Path, reference) -> None:
    expected, durations = reference
    run = tmp_path / "run"
    chain = [Kill("data", 0.5, signal.SIGKILL), Kill("train", 0.5, signal.SIGTERM),
             Kill("eval", 0.3, signal.SIGKILL), Kill("report", 0.2, signal.SIGTERM)]
    hits = 0
    for kill in chain:  # each kill's rerun is the next victim; the last one is finished
        before = len(_interruptions(run))
        sent, code = _kill_during(_run_cmd(run), kill, durations)
        hits += sent
        _check_exit(kill, sent, code, _interruptions(run)[before:])
        if kill.stage == "train":
            _resume_training(run)
    assert hits >= 3, "the kills came too late to interrupt anything"
    _finish(run)
    _assert_same(expected, run, "four kills")


@pytest.mark.slow
@pytest.mark.parametrize("kill", seeded_kills(4), ids=lambda k: f"{k.stage}-{k.fraction:.2f}-{k.sig.name}")
def test_every_seeded_kill_then_rerun_ends_as_an_uninterrupted_run(tmp_path: Path, reference, kill: Kill) -> None:
    expected, durations = reference
    run = tmp_path / "run"
    sent, code = _kill_during(_run_cmd(run), kill, durations)
    _check_exit(kill, sent, code, _interruptions(run))
    _rerun_after(run, kill)
    _assert_same(expected, run, f"{kill.sig.name} in {kill.stage} at {kill.fraction:.0%}")
