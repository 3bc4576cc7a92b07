"""Training-step throughput of lmforge's GPT against Hugging Face's GPT2LMHeadModel at equal shape.

One step = forward, cross-entropy and backward (what the issue measures: the model, not the
optimizer); `--with-optimizer` adds the same foreach AdamW step to every system; `--dtype bfloat16`
runs every system's forward under the same bf16 autocast (CPU), fp32 by default. Systems run
alternately, `--rounds` rounds of `--iters` steps each after a warm-up; ms/iter is the median over
rounds [min-max].
Usage: .venv/bin/python bench/models_gpt_vs_hf.py [--threads N] [--rounds R] [--iters I] [--with-optimizer]
       [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import transformers

from lmforge.config.schema import ModelConfig
from lmforge.models.hf import hf_config
from lmforge.models.registry import build_model

SHAPES = {"nanoGPT CPU 4x4x128 ctx64 b12": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch": 12},
          "6x6x384 ctx256 b8": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "batch": 8}}
VOCAB = 84  # the built-in corpus, char-level


def systems(shape: dict) -> dict[str, torch.nn.Module]:
    keys = {k: v for k, v in shape.items() if k != "batch"}
    ours = build_model(ModelConfig(family="gpt", **keys), VOCAB)
    ours_like_hf = build_model(ModelConfig(family="gpt", bias=True, activation="gelu_tanh", **keys), VOCAB)
    hf_cfg = hf_config(ModelConfig(family="gpt", bias=True, activation="gelu_tanh", **keys), VOCAB)
    hf_cfg.resid_pdrop = hf_cfg.embd_pdrop = hf_cfg.attn_pdrop = 0.0
    hf = transformers.GPT2LMHeadModel(hf_cfg)
    return {"lmforge GPT (exact GELU, no bias)": ours, "lmforge GPT (tanh GELU + bias, as GPT-2)": ours_like_hf,
            "HF GPT2LMHeadModel": hf}


def step_fn(model: torch.nn.Module, is_hf: bool, with_optimizer: bool, dtype: str = "float32"):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = model(x).logits if is_hf else model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if with_optimizer:
            opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--shapes", default="all")
    ap.add_argument("--with-optimizer", action="store_true", help="time the AdamW step too")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16: every system under the same CPU bf16 autocast")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}")
    for name, shape in SHAPES.items():
        if args.shapes != "all" and args.shapes not in name:
            continue
        torch.manual_seed(0)
        models = systems(shape)
        steps = {k: step_fn(m, k.startswith("HF"), args.with_optimizer, args.dtype) for k, m in models.items()}
        x = torch.randint(0, VOCAB, (shape["batch"], shape["block_size"]))
        y = torch.randint(0, VOCAB, (shape["batch"], shape["block_size"]))
        for s in steps.values():
            for _ in range(3):
                s(x, y)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for k, s in steps.items():  # alternate, so drift hits every system alike
                t = time.perf_counter()
                for _ in range(args.iters):
                    s(x, y)
                times[k].append((time.perf_counter() - t) / args.iters * 1000)
        hf_med = statistics.median(times["HF GPT2LMHeadModel"])
        what = ("forward+backward+AdamW" if args.with_optimizer else "forward+backward") + f", {args.dtype}"
        print(f"\n{name}  (tokens/step {shape['batch'] * shape['block_size']}; {what})")
        print("| system | ms/iter median [min-max] | tokens/s | speed vs HF |")
        print("|---|---|---|---|")
        for k, ts in times.items():
            med = statistics.median(ts)
            tps = shape["batch"] * shape["block_size"] / med * 1000
            print(f"| {k} | {med:.1f} [{min(ts):.1f}-{max(ts):.1f}] | {tps:,.0f} | {hf_med / med:.2f}x |")
    print(f"\nload avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
