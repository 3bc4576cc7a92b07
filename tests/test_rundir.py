"""Run directory: atomic writes leave no partial file, identities are stable, stage records."""

from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.rundir import (
    RunDir,
    append_jsonl,
    atomic_open,
    atomic_write_json,
    identity,
    read_jsonl,
    read_jsonl_gz,
    write_jsonl_gz,
)


def test_atomic_write_failure_keeps_old_content(tmp_path: Path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary left behind


def test_jsonl_gz_round_trip(tmp_path: Path):
    recs = [{"id": i, "text": f"doc {i} é"} for i in range(5)]
    assert write_jsonl_gz(tmp_path / "x.jsonl.gz", recs) == 5
    assert list(read_jsonl_gz(tmp_path / "x.jsonl.gz")) == recs


def test_jsonl_log_survives_a_line_torn_by_a_crash(tmp_path: Path):
    """A SIGKILL mid-append leaves a partial last line: readers skip it, and the next append
    (a resumed run) starts a new line instead of gluing its record onto the torn one."""
    log = tmp_path / "events.jsonl"
    append_jsonl(log, {"step": 1})
    with open(log, "a") as fh:
        fh.write('{"step": 2, "kind": "tr')  # the crash
    assert read_jsonl(log) == [{"step": 1}]
    append_jsonl(log, {"step": 3})
    assert read_jsonl(log) == [{"step": 1}, {"step": 3}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_identity_is_stable_and_sensitive():
    assert identity({"a": 1, "b": 2}) == identity({"b": 2, "a": 1})
    assert identity({"a": 1}) != identity({"a": 2})


def test_stage_records(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.create()
    assert run.stage_identity("data") is None
    run.mark_done("data", "abc", 1.5, {"kept": 3})
    assert run.stage_identity("data") == "abc"
    run.invalidate("data")
    assert run.stage_identity("data") is None


def test_unwritable_run_dir_is_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LmforgeError, match="cannot write the run directory"):
        RunDir(blocker / "run").create()


def test_require_names_the_missing_stage(tmp_path: Path):
    run = RunDir(tmp_path)
    with pytest.raises(LmforgeError, match=r"lmforge tokenize"):
        run.require(run.tokens / "meta.json", "tokenize")


def test_atomic_json(tmp_path: Path):
    atomic_write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert (tmp_path / "a" / "b.json").read_text().startswith("{")


def test_clear_temp_removes_only_what_killed_writers_left(tmp_path: Path) -> None:
    from lmforge.rundir import clear_temp

    (tmp_path / ".train.bin.x1.tmp").write_bytes(b"partial")
    (tmp_path / ".step-40.tmp").mkdir()
    (tmp_path / ".step-40.tmp" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "step-20").mkdir()
    (tmp_path / "train.bin").write_bytes(b"done")
    clear_temp(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-20", "train.bin"]



@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")
def test_atomic_write_syncs_the_file_then_its_folder(tmp_path: Path, synced: list[str]) -> None:
    target = tmp_path / "sub" / "eval.json"
    atomic_write_json(target, {"a": 1})
    assert synced[-1] == str(target.parent)  # the rename itself survives a power loss
    assert any(Path(p).name.startswith(".eval.json.") for p in synced[:-1])  # the text, before the rename
