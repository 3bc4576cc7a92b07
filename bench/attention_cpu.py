"""Causal attention forward+backward on CPU: PyTorch's SDPA (flash kernel) against lmforge's explicit
form (models/common.py), in bf16 and fp32, at the context lengths that decide EXPLICIT_MAX_LEN.

Systems alternate round by round; each figure is the best of `--rounds` rounds, each round the
median of `--reps` calls (this VM's speed drifts, so the minimum is the steadier statistic).
  .venv/bin/python bench/attention_cpu.py [--rounds 5] [--reps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmforge.models.common import EXPLICIT_MAX_LEN, _explicit_attention

SHAPES = [(12, 4, 64, 32), (16, 4, 128, 32), (8, 6, 256, 64), (4, 6, 512, 64), (2, 6, 1024, 64)]
Attn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _explicit_attention(q, k, v, None, 0.0)


def one_round(fn: Attn, shape: tuple[int, ...], dtype: torch.dtype, reps: int) -> float:
    q, k, v = (torch.randn(*shape, dtype=dtype, requires_grad=True) for _ in range(3))
    fn(q, k, v).float().sum().backward()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(q, k, v).float().sum().backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}, EXPLICIT_MAX_LEN {EXPLICIT_MAX_LEN}")
    print("| batch×heads×T×head_dim | dtype | SDPA ms | explicit ms | explicit speed-up |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        for dtype in (torch.bfloat16, torch.float32):
            best = {"sdpa": float("inf"), "explicit": float("inf")}
            for _ in range(args.rounds):
                for name, fn in (("sdpa", sdpa), ("explicit", explicit)):
                    best[name] = min(best[name], one_round(fn, shape, dtype, args.reps))
            print(f"| {'×'.join(map(str, shape))} | {str(dtype).removeprefix('torch.')} | {best['sdpa']:.2f} | "
                  f"{best['explicit']:.2f} | {best['sdpa'] / best['explicit']:.2f}× |", flush=True)
    print(f"load avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
