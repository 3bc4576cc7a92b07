"""Grid vs random vs TPE vs TPE with Hyperband pruning, at the full grid's compute, over seeds:
how much compute each search needs to reach the best validation loss the full grid finds.

Runs `lmforge compare search` (lmforge/compare/search.py: 4 keys - LR, width, warmup, weight
decay - 36 grid points, 60-step trials of a char-level 2-layer GPT on the built-in corpus) and
writes its table, curves and figure, plus the CPU line and versions, to bench/results/.

Usage (from the repository root):

    .venv/bin/python bench/tune_search.py [--seeds 3] [--first-seed 0] [--methods grid,tpe+hyperband]
                                          [--name tune_search] [--out runs/bench-tune-search]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import optuna
import torch

from lmforge.compare.search import METHODS, run_compare_search, search_config, table
from lmforge.console import set_quiet
from lmforge.rundir import RunDir

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_line() -> str:
    """The CPU model and its vector flags, as /proc/cpuinfo gives them."""
    model, flags = platform.processor(), []
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
                break
    return f"{model}; flags {' '.join(flags)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS), help="grid is the yardstick: keep it")
    parser.add_argument("--name", default="tune_search", help="bench/results/NAME.json and NAME.png")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-tune-search"))
    args = parser.parse_args()
    set_quiet(True)  # one line per search, not per trial
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    record = run_compare_search(RunDir(args.out), search_config(None, []), seeds, args.methods.split(","))
    record["cpu"] = cpu_line()
    record["versions"] = {"optuna": optuna.__version__, "torch": torch.__version__,
                          "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    shutil.copyfile(args.out / "compare" / "search.png", RESULTS / f"{args.name}.png")
    print(table(record))
    print(f"cpu: {record['cpu']}; {record['versions']}; wall {record['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
