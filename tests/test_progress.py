"""Progress without a terminal: plain lines while a run works with its output sent to a file,
NO_COLOR honoured, --quiet keeping only errors and the final line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lmforge import console as con

LMFORGE = [sys.executable, "-m", "lmforge"]
# a train line carries all four: step/total, loss, tokens/s and ETA
TRAIN_LINE = re.compile(r"^train: step \d[\d,]*/\d[\d,]* \(\d+%\), loss \d+\.\d+, .*\d tokens/s, ETA \d+:\d\d:\d\d$",
                        re.MULTILINE)
ESCAPE = "\x1b"
TINY = ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32", "train.batch_size=8",
        "train.warmup_steps=2", "train.eval_interval=20", "train.eval_batches=2", "train.log_interval=5",
        "train.checkpoint_interval=1000", "train.threads=1", "train.device=cpu", "monitor.tensorboard=false",
        "monitor.stats_interval=0", "monitor.peak_flops=1e11"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", con.QUIET_ENV)}
    return {**env, "COLUMNS": "120", **extra}


def _token_run(root: Path, vocab: int = 64, n: int = 20_000) -> Path:
    """tokens/ as the tokenize stage leaves them (a noisy repeating stream): `lmforge train` can
    start at once, without the data and tokenize stages."""
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, vocab, 97), n // 97 + 1)[:n]
    (root / "tokens").mkdir(parents=True)
    cut = int(n * 0.9)
    stream[:cut].astype(np.uint16).tofile(root / "tokens" / "train.bin")
    stream[cut:].astype(np.uint16).tofile(root / "tokens" / "val.bin")
    meta = {"dtype": "uint16", "vocab_size": vocab,
            "splits": {"train": {"tokens": cut}, "val": {"tokens": n - cut}}}
    (root / "tokens" / "meta.json").write_text(json.dumps(meta))
    return root


def test_run_to_a_file_prints_training_progress_while_it_runs(tmp_path):
    """The user's case: `lmforge run > log 2>&1` used to print nothing between `train: running`
    and `train: done`. The log is read while the process still runs."""
    log = tmp_path / "run.log"
    args = [*LMFORGE, "run", "--preset", "smoke", "-o", str(tmp_path / "run"), "data.max_docs=4",
            "train.steps=30", "train.batch_size=8", "train.threads=1", "train.log_interval=5",
            "train.eval_interval=15", "train.eval_batches=2",
            "eval.max_tokens=500", "eval.bootstrap_rounds=0", "eval.samples=0", "eval.tasks=[]",
            "monitor.tensorboard=false", "monitor.stats_interval=0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_env(NO_COLOR="1"))
        try:
            seen_while_running = None
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                found = TRAIN_LINE.search(log.read_text(errors="replace"))
                if found and proc.poll() is None:  # eval and report still follow, so it is running
                    seen_while_running = found.group(0)
                    break
                time.sleep(0.2)
            assert proc.wait(timeout=300) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert seen_while_running, f"no progress line appeared while the run was going:\n{text}"
    lines = TRAIN_LINE.findall(text)
    assert len(lines) >= 3 and "step 30/30 (100%)" in lines[-1], text
    assert ESCAPE not in text, "NO_COLOR output (and any output to a file) holds no escape codes"
    assert text.rstrip().endswith("index.html"), text
    # every number of a train line is one metrics.jsonl holds
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = next(r for r in reversed(rows) if r["kind"] == "train")
    assert f"loss {last['loss']:.4f}" in lines[-1] and f"{last['tokens_per_s']:,.0f} tokens/s" in lines[-1]


def test_quiet_prints_only_the_final_line(tmp_path):
    run = _token_run(tmp_path / "run")
    proc = subprocess.run([*LMFORGE, "train", str(run), "--preset", "smoke", "--quiet", "train.steps=20", *TINY],
                          check=False, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    out = (proc.stdout + proc.stderr).strip()
    assert re.fullmatch(r"train: done in \d+\.\ds", out), out
    assert (run / "metrics.jsonl").is_file()  # quiet, not idle: the files are written as always


def test_quiet_still_prints_errors():
    proc = subprocess.run([*LMFORGE, "eval", "/nonexistent/run", "-q"], check=False, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 2 and "error: run directory not found" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_no_color_on_a_terminal_writes_no_escape_codes():
    """On a terminal rich styles the output; NO_COLOR=1 must leave it plain (bold and dim too)."""
    import pty

    def on_terminal(env: dict[str, str]) -> bytes:
        leader, follower = pty.openpty()
        proc = subprocess.Popen([*LMFORGE, "eval", "/nonexistent/run"], stdout=follower, stderr=follower,
                                env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=120)
        os.close(leader)
        return b"".join(chunks)

    styled = on_terminal(_env(TERM="xterm-256color"))
    plain = on_terminal(_env(TERM="xterm-256color", NO_COLOR="1"))
    assert b"run directory not found" in styled and b"\x1b[" in styled  # the check is not vacuous
    assert b"run directory not found" in plain and b"\x1b" not in plain


# ---------------------------------------------------------------- in-process: the pacing rules


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(con.time, "monotonic", c)
    monkeypatch.setattr(con, "_TICKER_LINE", [-float("inf")])
    return c


@pytest.fixture
def printed(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(con, "plain", lines.append)
    return lines


def test_pace_every_tenth_or_every_30s(clock):
    pace = con.Pace(1000)
    due = []
    for done in range(0, 1001, 25):
        clock.now += 0.1
        due.append(pace.due(done))
    assert sum(due) == 10  # 100, 200, ... 1000
    pace = con.Pace(1000)
    clock.now += 31
    assert pace.due(1)  # slow work: 30 s without a tenth still gets a line
    assert not pace.due(2)


def test_ticker_waits_then_keeps_a_gap(clock, printed):
    quick = con.Ticker("eval: scoring", 100, "tokens")
    for _ in range(100):
        clock.now += 0.01  # one second in all: under the delay, so silent
        quick.advance()
    assert printed == []
    slow = con.Ticker("data", None, "documents read")
    for _ in range(100):
        clock.now += 1.0
        slow.advance()
    assert printed[0].startswith("data: 3 documents read, 0:00:03 elapsed")  # first line once 3 s have passed
    assert len(printed) == 4  # then every 30 s: 3, 33, 63, 93
    con._TICKER_LINE[0] = clock.now  # as if another loop had just printed
    second = con.Ticker("eval: scoring test", 10, "tokens")
    clock.now += 4
    second.advance(5)
    assert len(printed) == 4  # past its own delay, but another ticker's line came under 5 s ago
    clock.now += 1.5
    second.advance(1)
    assert printed[-1] == "eval: scoring test: 6/10 tokens (60%), 0:00:05 elapsed"


def test_line_printer_numbers_and_final_line(clock, printed):
    lp = con.LinePrinter()
    lp.start(0, 100)
    for step in range(5, 101, 5):
        clock.now += 0.5
        lp.update({"step": step, "loss": 3.0 - step / 100, "tokens_per_s": 12345.6, "eta_s": 65.0}, 100)
        if step == 50:
            lp.update_eval({"val_loss": 2.75}, 2.75)
    assert len(printed) == 10
    assert printed[0] == "train: step 10/100 (10%), loss 2.9000, 12,346 tokens/s, ETA 0:01:05"
    assert "val loss 2.7500" in printed[-1]
    lp.update({"step": 102, "loss": 1.0, "tokens_per_s": 1.0, "eta_s": 0.0}, 200)
    lp.stop(102)
    assert printed[-1].startswith("train: step 102/200 (51%)")  # a stop between lines still shows where


def test_make_panel_without_a_terminal(monkeypatch):
    monkeypatch.setattr(con.console, "quiet", False)
    monkeypatch.setattr(con, "live_display_works", lambda: False)
    for mode in ("auto", "panel", "bar", "lines"):
        assert isinstance(con.make_panel(mode, "t"), con.LinePrinter)
    assert con.make_panel("none", "t") is None
    monkeypatch.setattr(con.console, "quiet", True)
    assert con.make_panel("auto", "t") is None
