"""Wall time of the course book: `lmforge compare all --size SIZE` into a fresh folder, with the CPU
model, flags, core count and the load average before and after (the machine may be shared), and
the seconds of each comparison from the book's book.json.

    python bench/course_book.py --size tiny
    python bench/course_book.py --size small --out /tmp/book-small
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def cpu_line() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in flags if f.startswith(("avx", "fma", "amx"))]
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(wanted)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(f"/tmp/lmforge-book-{args.size}")
    if out.exists():
        shutil.rmtree(out)  # a fresh book: nothing resumed
    print(cpu_line())
    print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lmforge", "compare", "all", "--size", args.size, "-o", str(out)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    print(f"load average after: {os.getloadavg()}")
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    book = json.loads((out / "book.json").read_text())
    for name, rec in book["comparisons"].items():
        print(f"  {name:<14} {rec.get('status'):<8} {rec.get('seconds', '-')} s  {rec.get('why', '')}")
    print(f"compare all --size {args.size}: {wall:.0f} s wall")


if __name__ == "__main__":
    main()
