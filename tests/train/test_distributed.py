"""DDP and FSDP2 on CPU with gloo and 2 processes: the same loss as one process at equal global
batch (within float tolerance), and an FSDP checkpoint that resumes on one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmforge.train import checkpoint as ckpt

from .conftest import make_tokens

WORKER = Path(__file__).parent / "_worker.py"
STEPS = ("train.steps=10",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(run: Path, *overrides: str, procs: int = 1, kill_at: int = 0, resume: bool = False) -> int:
    args = [str(WORKER), str(run), str(kill_at), "1" if resume else "0", *STEPS, *overrides]
    if procs > 1:
        args = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port()), *args]
    proc = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, timeout=300)
    if proc.returncode and not kill_at:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.returncode


def _losses(run: Path) -> list[float]:
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [r["loss"] for r in lines if r["kind"] == "train"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    """The newest checkpoint's weights, full or sharded format."""
    return ckpt.read_weights(ckpt.list_checkpoints(run / "checkpoints")[-1])


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_tokens(tmp_path_factory.mktemp("single") / "run").root
    assert _run(run) == 0
    return run


def _assert_close_runs(a: Path, b: Path) -> None:
    assert _losses(a) == pytest.approx(_losses(b), rel=1e-5)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name, value in wa.items():
        torch.testing.assert_close(value, wb[name], rtol=1e-4, atol=1e-5, msg=name)


def test_ddp_two_processes_match_one(tmp_path: Path, single: Path) -> None:
    run = make_tokens(tmp_path / "ddp").root
    assert _run(run, procs=2) == 0
    _assert_close_runs(single, run)


def test_fsdp_with_accumulation_matches_and_resumes_on_one_process(tmp_path: Path, single: Path) -> None:
    run = make_tokens(tmp_path / "fsdp").root
    # 8 sequences = 2 processes x 2 micro-batches x 2; killed after step 7 (checkpoint at 5)
    assert _run(run, "train.distributed=fsdp", "train.micro_batch_size=2", procs=2, kill_at=7) != 0
    assert ckpt.latest_valid(run / "checkpoints").name == "step-5"
    state = json.loads((ckpt.latest_valid(run / "checkpoints") / "state.json").read_text())
    assert state["world_size"] == 2
    assert _run(run, resume=True) == 0  # continue on one process, whole batches
    _assert_close_runs(single, run)
