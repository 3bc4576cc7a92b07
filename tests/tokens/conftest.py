"""Fixtures for the tokens tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.rundir import RunDir

from .corpus import make_docs, write_run


@pytest.fixture
def small_run(tmp_path: Path) -> RunDir:
    """30 train, 4 val, 4 test documents of synthetic verse, from two sources."""
    docs = make_docs(38)
    return write_run(tmp_path / "run", {"train": docs[:30], "val": docs[30:34], "test": docs[34:]})
