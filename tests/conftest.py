"""Shared test setup: a small thread count keeps tests fair on a 2-core machine; fixtures used by
more than one test folder. Helpers live in tests/helpers/, not here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.rundir import RunDir
from tests.helpers.documents import make_docs, write_run

torch.set_num_threads(2)


@pytest.fixture
def small_run(tmp_path: Path) -> RunDir:
    """30 train, 4 val, 4 test documents of synthetic verse, from two sources (tokens and compare tests)."""
    docs = make_docs(38)
    return write_run(tmp_path / "run", {"train": docs[:30], "val": docs[30:34], "test": docs[34:]})
