"""The foundation benchmark: the `default` preset end to end — wall time per stage and test bits per byte.

Usage: python bench/default_run.py [--repeats N] [--preset NAME]
Peer figure (measured earlier on this kind of machine, not re-run here):
nanoGPT's CPU recipe on this corpus reaches 2.70 bits/char after 2,000 steps (~85 s of training)
and 2.39 after 5,500 steps (~230 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def one_run(preset: str, out: Path) -> dict:
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "lmforge", "run", "--preset", preset, "-o", str(out), "--force"],
                          check=False, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    stages = {p.stem: json.loads(p.read_text())["seconds"] for p in (out / ".stages").glob("*.json")}
    ev = json.loads((out / "eval.json").read_text())
    return {"wall_s": wall, "stages": stages, "test_bpb": ev["splits"]["test"]["bits_per_byte"],
            "test_ci95": ev["splits"]["test"]["bits_per_byte_ci95"], "val_bpb": ev["splits"]["val"]["bits_per_byte"],
            "untrained_bpb": ev["untrained"]["val"]["bits_per_byte"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    with open("/proc/loadavg") as fh:
        print(f"load average before: {fh.read().split()[:3]}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            r = one_run(args.preset, Path(tmp) / f"run{i}")
            runs.append(r)
            print(json.dumps(r))
    print(f"median wall {statistics.median(r['wall_s'] for r in runs):.1f} s; "
          f"median test bpb {statistics.median(r['test_bpb'] for r in runs):.4f} over {len(runs)} run(s)")


if __name__ == "__main__":
    main()
