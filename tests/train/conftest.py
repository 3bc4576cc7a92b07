"""Fixtures for the train tests: a small synthetic token run (tests/helpers/runs.py) and one thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.rundir import RunDir
from tests.helpers.runs import make_tokens


@pytest.fixture
def tiny_run(tmp_path: Path) -> RunDir:
    return make_tokens(tmp_path / "run")


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two threads
    per process oversubscribe it badly; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
