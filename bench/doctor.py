"""The doctor's scenario suite, in full: every broken and healthy training of
lmforge.compare.problems, each trained with the doctor suggesting, repairing in its ranked order and
repairing in random order; prints tables 14 and 15 and writes them with the figures.

    PYTHONPATH=src .venv/bin/python bench/doctor.py [--out runs/bench-doctor] [--workers 2] [--quick]

The same as `lmforge compare problems`; this script adds the machine line and copies the result
JSON (without the per-run curves) to bench/results/doctor.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from lmforge.compare.problems import compare_problems


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    shown = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    return f"cpu: {model}; flags: {shown}; torch {torch.__version__}; python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/bench-doctor"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(cpu())
    result = compare_problems(args.out, quick=args.quick, workers=args.workers)
    print(result["table"])
    print(f"{result['seconds']:.0f} s with {args.workers} workers")
    slim = {k: v for k, v in result.items() if k != "runs"}
    slim["machine"] = cpu()
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/doctor.json").write_text(json.dumps(slim, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
