"""`lmforge label` in a real pseudo-terminal: keys typed into it label documents, the log
survives the process, and a second session resumes after the answered ones."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.label.store import read_log
from tests.helpers.documents import make_docs, write_run

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def session(run: Path, keys: list[str]) -> str:
    """Run `lmforge label` on a pty, type each key once the screen has settled, return the output."""
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "TERM": "xterm",
           "COLUMNS": "100", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "label", str(run), "--labeler", "ana",
                             "--keys", "w=war,l=love"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    out = b""

    def read_for(seconds: float) -> None:
        nonlocal out
        end = time.time() + seconds
        while time.time() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    return

    deadline = time.time() + 60
    while b"record" not in out and time.time() < deadline:  # the first screen
        read_for(0.5)
    for key in keys:
        os.write(master, key.encode())
        read_for(0.6)
    proc.wait(timeout=60)
    read_for(0.5)
    os.close(master)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))  # no escape codes


def test_typed_keys_label_and_a_new_session_resumes(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", {"train": make_docs(4)})
    screen = session(run.root, ["w", "l", "q"])
    assert "record 1 of 4" in screen and "[w]" in screen and "[s]" in screen and "2 labelled" in screen
    log = run.root / "labels" / "human-ana.jsonl"
    assert {k: v.label for k, v in read_log(log).labels.items()} == {"d0": "war", "d1": "love"}
    screen = session(run.root, ["w", "q"])
    assert "record 3 of 4" in screen  # resumed after the two answered
    assert {k: v.label for k, v in read_log(log).labels.items()} == {"d0": "war", "d1": "love", "d2": "war"}
