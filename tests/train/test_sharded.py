"""Sharded (DCP) checkpoints: exact resume in one process, FSDP on 2 processes resumed on 1,
and the safety of reading DCP's pickled metadata."""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model
from lmforge.train import checkpoint as ckpt
from lmforge.train import sharded
from tests.helpers.runs import make_tokens, newest_weights, tiny_config, train_losses
from tests.helpers.worker import launch

SHARDED = "train.checkpoint_format=sharded"
STEPS = ("train.steps=10",)


def _train(run: Path, *overrides: str, **how: object) -> int:
    return launch(run, *STEPS, *overrides, **how)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten uninterrupted steps in one process, full-format checkpoints."""
    run = make_tokens(tmp_path_factory.mktemp("ref") / "run").root
    assert _train(run) == 0
    return run


def test_sharded_sigkill_resume_is_bit_identical(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "run").root
    assert _train(run, SHARDED, kill_at=7) == -signal.SIGKILL
    latest = ckpt.latest_valid(run / "checkpoints")
    assert latest.name == "step-5" and sharded.is_sharded(latest)
    assert not (latest / "model.safetensors").exists()
    assert ckpt.verify(latest) is None  # every shard and the metadata are checksummed
    assert _train(run, SHARDED, resume=True) == 0
    ref, got = newest_weights(reference), newest_weights(run)
    assert set(ref) <= set(got)  # the shards also name the tied head, which safetensors drops
    for name, value in ref.items():
        assert value.equal(got[name]), f"{name} differs after a sharded resume"
    assert train_losses(run) == train_losses(reference)


def test_fsdp_sharded_two_processes_resume_on_one(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "fsdp").root
    assert _train(run, SHARDED, "train.distributed=fsdp", procs=2, kill_at=7) != 0
    latest = ckpt.latest_valid(run / "checkpoints")
    assert latest.name == "step-5"
    assert len(list(latest.glob("*.distcp"))) == 2  # one shard file per process
    assert _train(run, SHARDED, resume=True) == 0  # one process re-splits the shards
    assert train_losses(run) == pytest.approx(train_losses(reference), rel=1e-5)
    ref, got = newest_weights(reference), newest_weights(run)
    for name, value in ref.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5, msg=name)
    model = build_model(tiny_config().model, 32)
    ckpt.load_weights(latest, model)  # what eval, export and generate call: works on shards too
    torch.testing.assert_close(model.state_dict()["ln_f.weight"], ckpt.read_weights(latest)["ln_f.weight"])


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/lmforge-should-not-exist",))


def test_foreign_pickle_in_metadata_is_refused(tmp_path: Path) -> None:
    (tmp_path / sharded.METADATA).write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(LmforgeError, match="posix.system|os.system"):
        sharded.read_metadata(tmp_path)
    assert not Path("/tmp/lmforge-should-not-exist").exists()
    with pytest.raises(LmforgeError, match="DCP metadata"):
        sharded.load(tmp_path, {}, None)


def _protocol4_call(module: str, dotted_name: str, arg: str) -> bytes:
    """A pickle that calls `module`.`dotted_name`(arg): protocol 4's STACK_GLOBAL resolves a
    dotted name as an attribute path, which is how an allowed module can reach any callable."""
    def text(s: str) -> bytes:
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE
    return b"\x80\x04" + text(module) + text(dotted_name) + b"\x93" + text(arg) + b"\x85R."


@pytest.mark.parametrize("dotted", ["os.system", "torch.os.system"])
def test_dotted_name_under_an_allowed_module_is_refused(tmp_path: Path, dotted: str) -> None:
    marker = tmp_path / "ran"
    payload = _protocol4_call("torch.distributed.checkpoint.metadata", dotted, f"touch {marker}")
    probe = pickle.loads(_protocol4_call("torch.distributed.checkpoint.metadata", dotted, "true"))
    assert probe == 0, "the crafted pickle must really reach os.system (else this test proves nothing)"
    (tmp_path / sharded.METADATA).write_bytes(payload)
    with pytest.raises(LmforgeError, match="not a DCP metadata file"):
        sharded.read_metadata(tmp_path)
    with pytest.raises(LmforgeError, match="not a DCP metadata file"):
        sharded.load(tmp_path, {}, None)
    assert not marker.exists()


def test_sharded_checkpoint_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    small = build_model(tiny_config().model, 32)
    sharded.save(tmp_path, small.state_dict(), {})
    wide = build_model(tiny_config("model.n_embd=64").model, 32)
    with pytest.raises(LmforgeError, match=r"does not fit this model.*\(32, 32\) vs model \(32, 64\)"):
        ckpt.load_weights(tmp_path, wide)


def test_sharded_one_process_resumes_on_two(tmp_path: Path, reference: Path) -> None:
    run = make_tokens(tmp_path / "grow").root
    assert _train(run, SHARDED, kill_at=7) == -signal.SIGKILL
    assert _train(run, SHARDED, "train.distributed=fsdp", procs=2, resume=True) == 0
    assert train_losses(run) == pytest.approx(train_losses(reference), rel=1e-5)
    assert len(list(ckpt.list_checkpoints(run / "checkpoints")[-1].glob("*.distcp"))) == 2


CALLED: list[str] = []


def _side_effect() -> str:
    CALLED.append("ran")
    return "ran"


class _CodeInOptimizerState:
    def __reduce__(self) -> tuple:
        return (_side_effect, ())


def test_foreign_pickle_in_shard_bytes_is_refused(tmp_path: Path) -> None:
    """DCP stores non-tensor state (optimizer settings) as torch.save pickles in the shard files
    and loads them with weights_only=False: a checkpoint from elsewhere must not run code."""
    sharded.save(tmp_path, {"w": torch.zeros(2)}, {"blob": _CodeInOptimizerState()})
    CALLED.clear()
    with pytest.raises(LmforgeError, match="_side_effect"):
        sharded.load(tmp_path, {"w": torch.empty(2)}, {"blob": None})
    assert CALLED == []


def test_plain_values_in_shard_bytes_still_load(tmp_path: Path) -> None:
    sharded.save(tmp_path, {"w": torch.ones(2)}, {"lr": 0.5, "betas": (0.9, 0.95), "name": "adamw"})
    model, optim = {"w": torch.empty(2)}, {"lr": None, "betas": None, "name": None}
    sharded.load(tmp_path, model, optim)
    assert optim == {"lr": 0.5, "betas": (0.9, 0.95), "name": "adamw"}
    assert torch.equal(model["w"], torch.ones(2))
