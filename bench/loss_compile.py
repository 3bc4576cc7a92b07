"""Eager against compiled loss, by vocabulary size: what train.compile_loss=auto weighs (the time
saved per logit element against the time to compile).

One bf16 forward+backward of the default preset's model shape (4x4x128, ctx 128, batch 16), eager,
with the loss eager (lm_loss) or compiled (torch.compile(lm_loss)), alternately, for each vocabulary
size; the compile time is measured with an empty inductor cache (a fresh folder per size).

  .venv/bin/python bench/loss_compile.py [--vocabs 84,2048,4096,8192,16384,50304] [--steps 6]

The first vocabulary's first call also pays inductor's one-time start-up: that is the cold
compile a run pays; later sizes show a warm process's compile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from lmforge.config.schema import ModelConfig
from lmforge.models.loss import lm_loss
from lmforge.models.registry import build_model
from lmforge.runtime import autocast


def step_ms(model: torch.nn.Module, loss_fn: object, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    with autocast(torch.device("cpu"), "bfloat16"):
        logits = model(x)
    loss_fn(logits, y, "sum").backward()
    model.zero_grad(set_to_none=True)
    return (time.perf_counter() - t) * 1000


def measure(vocab: int, steps: int) -> dict[str, float]:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"inductor-{vocab}-")
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=128), vocab)
    x, y = torch.randint(0, vocab, (16, 128)), torch.randint(0, vocab, (16, 128))
    compiled = torch.compile(lm_loss)
    compile_s = step_ms(model, compiled, x, y) / 1000  # the first call compiles forward and backward
    step_ms(model, lm_loss, x, y)
    eager, fused = [], []
    for _ in range(steps):  # alternate, so drift hits both alike
        eager.append(step_ms(model, lm_loss, x, y))
        fused.append(step_ms(model, compiled, x, y))
    e, c = statistics.median(eager), statistics.median(fused)
    saved_ns = (e - c) * 1e6 / y.numel() / vocab
    return {"vocab": vocab, "eager_ms": e, "compiled_ms": c, "speedup": e / c, "first_call_s": compile_s,
            "saved_ns_per_element": saved_ns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocabs", default="84,2048,4096,8192,16384,50304")
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    print(json.dumps({"python": platform.python_version(), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "cpus": os.cpu_count()}))
    print(f"{'vocab':>7s} {'eager ms':>9s} {'compiled ms':>12s} {'speed-up':>9s} {'first call s':>13s} "
          f"{'saved ns/element':>17s}")
    for v in (int(s) for s in args.vocabs.split(",")):
        r = measure(v, args.steps)
        print(f"{v:7d} {r['eager_ms']:9.1f} {r['compiled_ms']:12.1f} {r['speedup']:8.2f}x {r['first_call_s']:13.1f} "
              f"{r['saved_ns_per_element']:17.2f}", flush=True)


if __name__ == "__main__":
    main()
