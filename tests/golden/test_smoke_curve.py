"""The golden loss curve (tests/golden/smoke_curve.py): the smoke preset's first training losses,
regenerated here, match the checked-in ones within ATOL, and a 10% change of the learning rate
does not. If a change to training is intended, `make golden` rewrites smoke_losses.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lmforge.config.load import load_config
from lmforge.rundir import RunDir
from tests.golden import smoke_curve as golden


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The smoke preset's data and tokenize stages, once for the module."""
    run, _ = golden.prepare(tmp_path_factory.mktemp("golden") / "prepared")
    return run


def trained(tokens: RunDir, root: Path, *overrides: str) -> list[float]:
    shutil.copytree(tokens.root, root)
    cfg = load_config(None, golden.PRESET, [*golden.OVERRIDES, *overrides])
    return golden.train(RunDir(root), cfg)


def test_the_golden_file_describes_this_curve() -> None:
    doc = golden.load_golden()
    assert doc["preset"] == golden.PRESET and doc["overrides"] == list(golden.OVERRIDES), \
        "smoke_curve.py runs another configuration than the one recorded: run `make golden`"
    assert doc["steps"] == golden.STEPS == len(doc["losses"])
    assert all(isinstance(x, float) for x in doc["losses"])
    assert doc["losses"][-1] < doc["losses"][0] - 0.5  # the curve shows learning


def test_smoke_losses_match_the_golden_curve(tokens: RunDir, tmp_path: Path) -> None:
    got = trained(tokens, tmp_path / "run")
    doc = golden.load_golden()
    made = {k: doc.get(k) for k in ("torch", "cpu", "aten_cpu_capability", "libraries")}
    here = {k: v for k, v in golden.machine().items() if k in made}
    assert golden.within(got, doc["losses"]), (
        f"the training losses moved from the golden curve:\n{golden.report(got, doc['losses'])}\n"
        f"golden made with {json.dumps(made)}\nthis run: {json.dumps(here)}\n"
        "if the change is intended, run `make golden` and commit tests/golden/smoke_losses.json")


def test_a_ten_percent_lr_change_leaves_the_tolerance(tokens: RunDir, tmp_path: Path) -> None:
    """The tolerance is tight enough to see a small real change (lr 3e-3 -> 3.3e-3)."""
    want = golden.load_golden()["losses"]
    got = trained(tokens, tmp_path / "run", "train.lr=3.3e-3")
    assert not golden.within(got, want)
    assert max(golden.differences(got, want)) > 10 * golden.ATOL
