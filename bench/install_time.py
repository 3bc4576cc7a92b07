"""How long `make install` takes from a fresh clone, for two revisions of the Makefile, alternated.

`make run` on a new machine is the install plus the run, so the install is part of the five minutes
the README promises. Each repeat clones the repository at each revision into a temporary folder and
times `make install` there (pip's own cache stays warm, as it is on the second try of a user).

Usage (from the repository root):

    python bench/install_time.py --rev A --rev B [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def install_seconds(rev: str) -> float:
    """Wall seconds of `make install` in a fresh clone at `rev`."""
    with tempfile.TemporaryDirectory(prefix="lmforge-install-") as tmp:
        subprocess.run(["git", "clone", "-q", str(ROOT), tmp], check=True)
        subprocess.run(["git", "-C", tmp, "checkout", "-q", rev], check=True)
        start = time.perf_counter()
        subprocess.run(["make", "-C", tmp, "install"], check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", required=True, help="a git revision (give two or more)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    print(f"cpu: {model}, {os.cpu_count()} cores; python {platform.python_version()}")
    times: dict[str, list[float]] = {rev: [] for rev in args.rev}
    for repeat in range(args.repeats):
        for rev in args.rev:
            times[rev].append(install_seconds(rev))
            print(f"repeat {repeat + 1}: {rev}: {times[rev][-1]:.1f} s", flush=True)
    for rev, seconds in times.items():
        print(f"{rev}: median {statistics.median(seconds):.1f} s ({', '.join(f'{s:.1f}' for s in seconds)})")


if __name__ == "__main__":
    main()
