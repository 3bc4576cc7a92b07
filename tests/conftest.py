"""Shared test setup: a small thread count keeps tests fair on a 2-core machine; fixtures used by
more than one test folder. Helpers live in tests/helpers/, not here."""

from __future__ import annotations

import os
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


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync is called on, in order (read from /proc: Linux only)."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls
