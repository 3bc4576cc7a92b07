"""What `runtime.keep_freed_memory` saves: lmforge's fp32 step with glibc's malloc settings as they
are against the settings lmforge makes, in alternating fresh processes, in one run.

The shape is nanoGPT's CPU recipe (4 layers, 4 heads, width 128, context 64, batch 12, fp32) on the
built-in corpus, char-level, the same as bench/fp32_vs_nanogpt.py. Each round runs one process
with glibc's defaults and one with lmforge's settings (the order alternates from round to round);
each reports its median step time and its minor page faults per step. Printed: the medians over
rounds, the per-round ratios and their median.

  .venv/bin/python bench/cpu_allocator.py [--rounds 9] [--steps 120] [--skip 20] [--out FILE]
Emulate a CPU without AVX-512/bf16: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fp32_vs_nanogpt import cpu_line, lmforge_round, prepare_tokens

MODES = ("glibc", "keep")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--skip", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    print(cpu_line())
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        root = prepare_tokens(Path(tmp))
        for r in range(args.rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                rows[mode].append(lmforge_round(root, args.steps, args.skip, glibc_malloc=mode == "glibc"))
            print(f"round {r + 1}: " + ", ".join(
                f"{m} {rows[m][-1]['step_s'] * 1e3:.1f} ms/step {rows[m][-1]['faults_per_step']:.0f} faults/step"
                for m in MODES), flush=True)
    ratios = [g["step_s"] / k["step_s"] for g, k in zip(rows["glibc"], rows["keep"])]
    med = {m: {key: statistics.median(r[key] for r in rows[m]) for key in ("step_s", "faults_per_step")}
           for m in MODES}
    for m in MODES:
        print(f"{m}: median {med[m]['step_s'] * 1e3:.1f} ms/step, {med[m]['faults_per_step']:.0f} faults/step")
    print(f"glibc / keep: median of round ratios {statistics.median(ratios):.3f} "
          f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_line(), "torch": torch.__version__, "rounds": rows,
                                        "median": med, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
