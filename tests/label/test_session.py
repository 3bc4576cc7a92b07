"""The label session driven by key presses through prompt_toolkit's own pipe input: labels,
skip, undo and notes are saved as they happen, and a new session resumes where one stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lmforge.errors import LmforgeError
from lmforge.label.session import Session, build_app, label_keys
from lmforge.label.store import read_log

RECORDS = [{"id": f"r{i}", "text": f"text number {i}", "author": "a" if i % 2 else "b"} for i in range(6)]


def drive(log: Path, keys: str) -> Session:
    session = Session(RECORDS, label_keys(["war", "love"]), log, "ana")
    with create_pipe_input() as inp:
        inp.send_text(keys)
        build_app(session, input=inp, output=DummyOutput()).run()
    return session


def test_keys_label_skip_undo_and_note_and_a_second_session_resumes(tmp_path: Path) -> None:
    log = tmp_path / "labels" / "human-ana.jsonl"
    # r0 -> war, r1 -> love, r2 skipped, undo (r2 back), r2 -> love, note on r3, then quit
    drive(log, "12su2nhard one\rq")
    state = read_log(log)
    assert {k: v.label for k, v in state.labels.items()} == {"r0": "war", "r1": "love", "r2": "love"}
    assert state.skipped == set() and state.notes == {"r3": "hard one"}
    assert all(lab.source == "human" and lab.by == "ana" and lab.at for lab in state.labels.values())
    # interrupted: a new session starts at r3 and keeps what was answered
    session = drive(log, "s1q")
    state = read_log(log)
    assert state.skipped == {"r3"} and state.labels["r4"].label == "war" and len(state.labels) == 4
    assert session.current()["id"] == "r5"


def test_a_torn_last_line_loses_only_that_answer(tmp_path: Path) -> None:
    log = tmp_path / "human-ana.jsonl"
    drive(log, "12q")
    with open(log, "a") as fh:
        fh.write('{"id": "r2", "lab')  # a crash mid-write
    session = drive(log, "2q")
    assert {k: v.label for k, v in read_log(log).labels.items()} == {"r0": "war", "r1": "love", "r2": "love"}
    assert session.current()["id"] == "r3"


def test_screen_shows_metadata_and_keys(tmp_path: Path) -> None:
    session = Session(RECORDS, label_keys(["war", "love"]), tmp_path / "l.jsonl", "ana")
    screen = session.screen()
    assert "record 1 of 6" in screen and "author: b" in screen and "[1] war" in screen and "[s] skip" in screen


@pytest.mark.parametrize(("keys", "message"), [
    ([("1", "war"), ("12", "love")], "not one character"),
    ([("s", "war"), ("2", "love")], "taken by the action 'skip'"),
    ([("1", "war"), ("1", "love")], "given to two labels: 'war' and 'love'"),
    ([("1", "war")], "no key for label"),
    ([("1", "war"), ("2", "love"), ("3", "peace")], "not a label"),
])
def test_a_key_already_taken_is_refused(keys: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(LmforgeError, match=message):
        label_keys(["war", "love"], keys)
