"""Loader cost per batch, as a fraction of one training step of the default model.

The token stream is a memory-mapped uint16 file of the default corpus's size (1.86M tokens;
the values are random ids, which a loader's cost does not depend on). Timed per batch
(batch 16 x block 128, the default preset's shape):

- nanoGPT's get_batch, the peer: a fresh np.memmap every batch, random starts from torch.randint,
  one torch.from_numpy(...astype(int64)) per row, torch.stack (as in nanoGPT's train.py);
- lmforge RandomWindows.next(), EpochWindows.next(), and RandomWindows.next_with_mask();
- one training step of the default preset's model (forward, loss, backward, clip, AdamW step).

Loaders alternate in blocks of 50 batches; medians over all batches. The step is the median of
--steps steps after 3 warm-up steps.

    .venv/bin/python bench/tokens_loader.py --batches 1000 --steps 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.config.load import load_config
from lmforge.models.registry import build_model
from lmforge.tokens.loader import EpochWindows, RandomWindows

TOKENS = 1_859_212  # the default corpus packed with the default tokenizer (bench/tokens_pack.py)


def nanogpt_get_batch(path: Path, block: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.memmap(path, dtype=np.uint16, mode="r")  # nanoGPT re-opens it every batch (avoids a memory leak)
    ix = torch.randint(len(data) - block, (batch,), generator=gen)
    x = torch.stack([torch.from_numpy(data[i: i + block].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(data[i + 1: i + 1 + block].astype(np.int64)) for i in ix])
    return x, y


def time_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config()
    block, batch, vocab = cfg.model.block_size, cfg.train.batch_size, cfg.tokenizer.vocab_size
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"shape: batch {batch} x block {block}; model {cfg.model.n_layer}x{cfg.model.n_head}x{cfg.model.n_embd}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        np.random.default_rng(0).integers(0, vocab, TOKENS, dtype=np.uint16).tofile(path)
        data = np.memmap(path, dtype=np.uint16, mode="r")
        doc_starts = np.arange(0, TOKENS, 44_000)  # ~42 documents, like the corpus
        rw = RandomWindows(data, block, batch, seed=0, doc_starts=doc_starts)
        ew = EpochWindows(data, block, batch, seed=0)
        gen = torch.Generator().manual_seed(0)
        loaders: dict[str, Callable[[], object]] = {
            "nanoGPT get_batch (peer)": lambda: nanogpt_get_batch(path, block, batch, gen),
            "RandomWindows.next": rw.next,
            "EpochWindows.next": ew.next,
            "RandomWindows.next_with_mask": rw.next_with_mask,
        }
        times: dict[str, list[float]] = {k: [] for k in loaders}
        for _ in range(max(1, args.batches // 50)):
            for name, fn in loaders.items():
                times[name] += time_calls(fn, 50)

        torch.manual_seed(0)
        model = build_model(cfg.model, vocab)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        x, y = rw.next()

        def step() -> None:
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        time_calls(step, 3)
        step_s = statistics.median(time_calls(step, args.steps))
    print(f"training step: median {step_s * 1e3:.1f} ms over {args.steps} steps; load average after {os.getloadavg()}")
    print("| loader | median µs per batch | p90 µs | share of a training step |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med, p90 = statistics.median(ts), float(np.percentile(ts, 90))
        print(f"| {name} | {med * 1e6:.0f} | {p90 * 1e6:.0f} | {med / step_s:.3%} |")


if __name__ == "__main__":
    main()
