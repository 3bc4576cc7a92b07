"""DDP and FSDP2 on CPU with gloo and 2 processes: the same loss as one process at equal global
batch (within float tolerance), and an FSDP checkpoint that resumes on one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.train import checkpoint as ckpt
from tests.helpers.runs import make_tokens, newest_weights, train_losses
from tests.helpers.worker import launch

STEPS = ("train.steps=10",)


def _run(run: Path, *overrides: str, **how: object) -> int:
    return launch(run, *STEPS, *overrides, **how)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_tokens(tmp_path_factory.mktemp("single") / "run").root
    assert _run(run) == 0
    return run


def _assert_close_runs(a: Path, b: Path) -> None:
    assert train_losses(a) == pytest.approx(train_losses(b), rel=1e-5)
    wa, wb = newest_weights(a), newest_weights(b)
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


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path, single: Path) -> None:
    run = make_tokens(tmp_path / "ddp").root
    # only rank 0 gets SIGTERM after step 7; rank 1 must stop with it, or the save would hang
    assert _run(run, procs=2, kill_at="term:7") == 0
    newest = ckpt.latest_valid(run / "checkpoints")
    assert newest.name == "step-7"
    assert json.loads((newest / "state.json").read_text())["world_size"] == 2
    assert _run(run, resume=True) == 0
    _assert_close_runs(single, run)
