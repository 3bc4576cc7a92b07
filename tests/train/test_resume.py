"""Exact resume: a run killed with SIGKILL and resumed ends bit-identical to one never stopped."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train import checkpoint as ckpt
from lmforge.train.stage import build_trainer
from tests.helpers.runs import make_tokens, tiny_config
from tests.helpers.worker import launch

# dropout: the RNG must be restored too; micro-batches: accumulation state must not leak
OVERRIDES = ("model.dropout=0.1", "train.micro_batch_size=4")
# truncated BPTT: the hidden state carried between windows must come back too (no accumulation here)
LSTM = ("model.family=lstm", "model.dropout=0.1")


def _train(run: Path, kill_at: int | str = 0, resume: bool = False, *overrides: str,
           base: tuple[str, ...] = OVERRIDES) -> int:
    return launch(run, *base, *overrides, kill_at=kill_at, resume=resume)


def _losses(run: Path) -> list[tuple[int, float]]:
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [(r["step"], r["loss"] if r["kind"] == "train" else r["val_loss"]) for r in lines]


def _final(run: Path) -> dict:
    return load_file(str(ckpt.list_checkpoints(run / "checkpoints")[-1] / "model.safetensors"))


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert value.equal(b[name]), f"{name} differs after resume"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted 20-step run (checkpoints every 5 steps)."""
    ref = make_tokens(tmp_path_factory.mktemp("ref") / "run").root
    assert _train(ref) == 0
    return ref


def test_sigkill_then_resume_is_bit_identical(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "killed").root
    assert _train(run, 13) == -signal.SIGKILL  # between checkpoints 10 and 15
    assert _train(run, 0, True) == 0
    _assert_same_weights(_final(reference), _final(run))
    assert _losses(reference) == _losses(run)


def test_corrupt_latest_checkpoint_falls_back(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "run").root
    assert _train(run, 17) == -signal.SIGKILL
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert newest.name == "step-15"
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated write
    assert "checksum" in (ckpt.verify(newest) or "")
    warnings: list[str] = []
    assert ckpt.latest_valid(run / "checkpoints", warn=warnings.append).name == "step-10"
    assert "step-15" in warnings[0]
    assert _train(run, 0, True) == 0
    _assert_same_weights(_final(reference), _final(run))


def test_resume_with_another_model_shape_is_refused(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    cfg = tiny_config(*OVERRIDES, "model.n_embd=48")
    with pytest.raises(LmforgeError, match="does not fit this model"):
        build_trainer(RunDir(run), cfg, resume=True, show_progress=False)


def test_ctrl_c_saves_a_checkpoint_and_stops_cleanly(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "run").root
    assert _train(run, "int:8") == 0
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert newest.name == "step-8" and ckpt.verify(newest) is None
    assert _train(run, 0, True) == 0
    _assert_same_weights(_final(reference), _final(run))


def test_sigterm_saves_at_the_next_step_and_resume_loses_no_step(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "run").root
    # handled: the worker's fit returns (the CLI then exits 143); a second SIGTERM arrives while
    # the checkpoint is being saved (torchrun forwarding the scheduler's) and changes nothing
    assert _train(run, "term2:8") == 0
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert newest.name == "step-8" and ckpt.verify(newest) is None  # not step-5: steps 6-8 are kept
    assert _train(run, 0, True) == 0
    _assert_same_weights(_final(reference), _final(run))
    assert _losses(reference) == _losses(run)


@pytest.fixture(scope="module")
def lstm_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted 20-step LSTM run with truncated BPTT."""
    ref = make_tokens(tmp_path_factory.mktemp("lstm") / "run").root
    assert _train(ref, base=LSTM) == 0
    return ref


def test_lstm_sigkill_then_resume_carries_the_hidden_state(tmp_path: Path, lstm_reference: Path) -> None:
    run = make_tokens(tmp_path / "killed").root
    assert _train(run, 13, base=LSTM) == -signal.SIGKILL  # after the eval and checkpoint at step 10
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    carried = load_file(str(newest / ckpt.CARRIED_FILE))
    assert set(carried) == {"layer.0.h", "layer.0.c", "layer.1.h", "layer.1.c"}
    assert all(t.abs().sum() > 0 for t in carried.values())  # a real state, not zeros
    assert _train(run, 0, True, base=LSTM) == 0
    _assert_same_weights(_final(lstm_reference), _final(run))
    assert _losses(lstm_reference) == _losses(run)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")
def test_checkpoint_files_are_synced_before_the_rename_and_the_folder_after(
        tmp_path: Path, synced: list[str]) -> None:
    import torch

    folder = tmp_path / "checkpoints"
    ckpt.save_checkpoint(folder, 3, {"w": torch.ones(2)}, {"state": {}, "param_groups": []}, {},
                         {"torch": torch.get_rng_state()}, keep=2)
    staging = str(ckpt.staging_dir(folder, 3))
    before = {Path(p).name for p in synced if p.startswith(staging + "/")}
    assert {"model.safetensors", "optimizer.pt", "rng.safetensors", "state.json"} <= before
    assert staging in synced and synced[-1] == str(folder)  # the staging folder's entries, then the rename
    assert synced.index(staging) < synced.index(str(folder))
