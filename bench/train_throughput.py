"""Training throughput: lmforge's loop against a nanoGPT-equivalent reference, side by side.

nanoGPT cannot be downloaded here, so `NanoGPT` below is a faithful re-implementation of
nanoGPT's model.py (commit 3adf61e: LayerNorm with optional bias, one c_attn projection, SDPA
causal attention, exact GELU, tied embeddings, GPT-2 init) and of the body of its train.py loop
(torch.randint windows from a memmap, forward with loss, backward, clip 1.0, AdamW step with
foreach on CPU, zero_grad(set_to_none=True)). It is written from that code, not imported.

Systems run alternately, round by round, on the same machine, so drift hits all of them alike;
each figure is the median over rounds of the per-round median ms/step. Compare ratios.

  .venv/bin/python bench/train_throughput.py [--rounds 3] [--steps 30] [--shapes small,big,default]
      [--tokens RUN/tokens] [--curve 300] [--out bench/results/train_throughput.json]
      [--systems nanogpt,hf_gpt2,lmforge_fp32,lmforge_bf16,lmforge_bf16_compile,lmforge_bf16_sdpa,
                 lmforge_bf16_eagerloss,lmforge_bf16_compiledloss,lmforge_bf16_compile_eagerloss]
  --shapes also takes `vocab` (GPT-2's 50304-token vocabulary on a small model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config.schema import ModelConfig, TrainConfig
from lmforge.models import common
from lmforge.models.loss import LossFn
from lmforge.models.registry import build_model
from lmforge.tokens.loader import RandomWindows
from lmforge.train.loop import Trainer
from lmforge.train.optim import build_optimizer

# ---------------------------------------------------------------- the nanoGPT reference


class _Attn(nn.Module):
    def __init__(self, d: int, h: int, bias: bool) -> None:
        super().__init__()
        self.c_attn, self.c_proj, self.h = nn.Linear(d, 3 * d, bias=bias), nn.Linear(d, d, bias=bias), h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class _Block(nn.Module):
    def __init__(self, d: int, h: int, bias: bool) -> None:
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(d, bias=bias), _Attn(d, h, bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.c_fc, self.gelu, self.c_proj = nn.Linear(d, 4 * d, bias=bias), nn.GELU(), nn.Linear(4 * d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    def __init__(self, vocab: int, block: int, n_layer: int, n_head: int, d: int, bias: bool = False) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h = nn.ModuleList(_Block(d, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d, bias=bias)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1), dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def nanogpt_optimizer(model: nn.Module, lr: float, wd: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))  # fused only on CUDA in nanoGPT


def nanogpt_batch(data: np.ndarray, block: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(data) - block, (batch,))
    x = torch.stack([torch.from_numpy(data[i:i + block].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + block].astype(np.int64)) for i in ix])
    return x, y


# ---------------------------------------------------------------- systems


@dataclass(frozen=True)
class Shape:
    name: str
    n_layer: int
    n_head: int
    d: int
    block: int
    batch: int
    vocab: int


SHAPES = {
    "small": Shape("small (nanoGPT CPU: 4x4x128, ctx 64, batch 12)", 4, 4, 128, 64, 12, 84),
    "big": Shape("big (6x6x384, ctx 256, batch 8)", 6, 6, 384, 256, 8, 84),
    "default": Shape("default preset (4x4x128, ctx 128, batch 16, vocab 2048)", 4, 4, 128, 128, 16, 2048),
    # GPT-2's padded vocabulary on a small model: the logits and the loss dominate the step
    "vocab": Shape("GPT-2 vocabulary (4x4x128, ctx 128, batch 8, vocab 50304)", 4, 4, 128, 128, 8, 50304),
}


class NanoSystem:
    def __init__(self, shape: Shape, data: np.ndarray, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = NanoGPT(shape.vocab, shape.block, shape.n_layer, shape.n_head, shape.d)
        self.opt = nanogpt_optimizer(self.model, 1e-3, 0.1)
        self.data, self.shape = data, shape

    def step(self) -> float:
        x, y = nanogpt_batch(self.data, self.shape.block, self.shape.batch)
        loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()


class HFSystem(NanoSystem):
    """Hugging Face's GPT2LMHeadModel (GPT-2's tanh GELU and biases) in the same plain loop:
    the "HF plain loop" of the reference baselines, against which nanoGPT measured ~1.3x."""

    def __init__(self, shape: Shape, data: np.ndarray, seed: int = 0) -> None:
        import transformers

        torch.manual_seed(seed)
        hf_cfg = transformers.GPT2Config(vocab_size=shape.vocab, n_positions=shape.block, n_embd=shape.d,
                                         n_layer=shape.n_layer, n_head=shape.n_head, resid_pdrop=0.0,
                                         embd_pdrop=0.0, attn_pdrop=0.0)
        self.model = _HFLoss(transformers.GPT2LMHeadModel(hf_cfg))
        self.opt = nanogpt_optimizer(self.model, 1e-3, 0.1)
        self.data, self.shape = data, shape


class _HFLoss(nn.Module):
    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.hf(idx).logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class LmforgeSystem:
    def __init__(self, shape: Shape, data: np.ndarray, dtype: str, fused: str = "auto", seed: int = 0,
                 compile_: bool = False) -> None:
        mcfg = ModelConfig(n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.d, block_size=shape.block)
        self.cfg = TrainConfig(steps=10**9, batch_size=shape.batch, lr=1e-3, min_lr=1e-3, warmup_steps=0,
                               schedule="constant", dtype=dtype, fused=fused, device="cpu", compile=compile_)
        torch.manual_seed(seed)
        model = build_model(mcfg, shape.vocab)
        loader = RandomWindows(data, shape.block, shape.batch, seed)
        wrapped = torch.compile(model) if compile_ else model  # as distributed.wrap_model does
        self.trainer = Trainer(wrapped, build_optimizer(model, self.cfg), loader, self.cfg, None,
                               Path("/nonexistent"))
        self.trainer.model.train()

    sdpa_only = False  # True: PyTorch's SDPA kernel even where lmforge would use its explicit attention

    def step(self) -> float:
        limit = common.EXPLICIT_MAX_LEN
        common.EXPLICIT_MAX_LEN = 0 if self.sdpa_only else limit
        try:
            loss, _ = self.trainer.train_step()
        finally:
            common.EXPLICIT_MAX_LEN = limit
        self.trainer.step += 1
        return loss


def make_system(name: str, shape: Shape, data: np.ndarray) -> NanoSystem | LmforgeSystem:
    if name == "nanogpt":
        return NanoSystem(shape, data)
    if name == "hf_gpt2":
        return HFSystem(shape, data)
    variants = {"lmforge_fp32": ("float32", "auto"), "lmforge_fp32_foreach": ("float32", "foreach"),
                "lmforge_bf16": ("bfloat16", "auto"), "lmforge_bf16_foreach": ("bfloat16", "foreach"),
                "lmforge_bf16_compile": ("bfloat16", "auto"), "lmforge_bf16_sdpa": ("bfloat16", "auto"),
                "lmforge_bf16_compile_eagerloss": ("bfloat16", "auto"), "lmforge_bf16_eagerloss": ("bfloat16", "auto"),
                "lmforge_bf16_compiledloss": ("bfloat16", "auto")}
    dtype, fused = variants[name]
    system = LmforgeSystem(shape, data, dtype, fused, compile_="_compile" in name)
    system.sdpa_only = name.endswith("_sdpa")
    if name.endswith("_eagerloss"):  # the loss left eager, as before train.compile_loss
        system.trainer.loss_fn = LossFn("off", compile_model=False)
    if name.endswith("_compiledloss"):  # the loss compiled whatever the vocabulary
        system.trainer.loss_fn = LossFn("on", compile_model=False)
    return system


# ---------------------------------------------------------------- measuring


def matmul_peak(n: int = 2048, dtype: torch.dtype = torch.float32, reps: int = 5) -> float:
    """Measured torch.mm FLOP/s at n x n (the denominator of MFU, as the reference baselines use)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def flops_per_token(shape: Shape) -> float:
    """nanoGPT's estimate: 6N + 12 L H Q T, N without position embeddings."""
    d, L = shape.d, shape.n_layer
    n = shape.vocab * d + L * (12 * d * d) + (2 * L + 1) * d  # tied embedding, blocks, norms (no bias)
    return 6 * n + 12 * L * shape.n_head * (d // shape.n_head) * shape.block


def time_steps(system: object, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        system.step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        system.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def load_data(tokens: str | None, vocab: int) -> np.ndarray:
    if tokens:
        meta = json.loads((Path(tokens) / "meta.json").read_text())
        data = np.memmap(Path(tokens) / "train.bin", dtype=np.dtype(meta["dtype"]), mode="r")
        if meta["vocab_size"] <= vocab:
            return data
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab, 2_000_000).astype(np.uint16)


def loss_curves(shape: Shape, data: np.ndarray, steps: int) -> dict[str, list[float]]:
    """fp32 and bf16 loss curves of lmforge from the same weights and batches."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        sys_ = LmforgeSystem(shape, data, dtype)
        out[dtype] = [sys_.step() for _ in range(steps)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per system per round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--shapes", default="small,big,default")
    ap.add_argument("--systems", default="nanogpt,lmforge_fp32,lmforge_bf16")
    ap.add_argument("--tokens", default=None, help="a run's tokens/ folder (char-level for small/big)")
    ap.add_argument("--curve", type=int, default=0, help="also compare fp32/bf16 loss over this many steps")
    ap.add_argument("--out", default="bench/results/train_throughput.json")
    args = ap.parse_args()

    threads = torch.get_num_threads()
    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.uname().machine,
            "cpus": os.cpu_count(), "threads": threads, "command": " ".join(sys.argv)}
    print(json.dumps(info))
    peaks32 = [matmul_peak()]
    peak16 = matmul_peak(dtype=torch.bfloat16)
    results: dict[str, dict] = {}
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        if args.tokens and shape.vocab < 1000:  # char-level shapes take the run's own vocabulary
            meta = json.loads((Path(args.tokens) / "meta.json").read_text())
            shape = dataclasses.replace(shape, vocab=int(meta["vocab_size"]))
        data = load_data(args.tokens if shape.vocab < 1000 else None, shape.vocab)
        names = args.systems.split(",")
        systems = {n: make_system(n, shape, data) for n in names}
        per_round: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            peaks32.append(matmul_peak())  # the peak too is measured every round; the best one counts
            for n in names:
                per_round[n].append(time_steps(systems[n], args.steps, args.warmup if r == 0 else 1))
            print(f"[{key}] round {r + 1}: " + ", ".join(f"{n} {per_round[n][-1]:.1f} ms" for n in names), flush=True)
        peak32 = max(peaks32)
        print(f"measured torch.mm peak (n=2048, {threads} threads, best of {len(peaks32)}): fp32 "
              f"{peak32 / 1e9:.0f} GFLOP/s; bf16 {peak16 / 1e9:.0f} GFLOP/s")
        fpt = flops_per_token(shape)
        tokens = shape.batch * shape.block
        base = statistics.median(per_round[names[0]])
        rows = {}
        for n in names:
            ms = statistics.median(per_round[n])
            tps = tokens / (ms / 1000)
            rows[n] = {"ms": ms, "min_ms": min(per_round[n]), "max_ms": max(per_round[n]), "tokens_per_s": tps,
                       "mfu_fp32_peak": tps * fpt / peak32, "speedup_vs_first": base / ms}
        results[key] = {"shape": shape.name, "flops_per_token": fpt, "systems": rows}
        print(f"\n{shape.name}: {fpt / 1e6:.2f} MFLOP/token")
        print(f"{'system':24s} {'ms/step':>18s} {'tokens/s':>10s} {'MFU*':>6s} {'speed-up':>9s}")
        for n, row in rows.items():
            print(f"{n:24s} {row['ms']:7.1f} [{row['min_ms']:.1f}-{row['max_ms']:.1f}] {row['tokens_per_s']:10,.0f} "
                  f"{row['mfu_fp32_peak']:6.0%} {row['speedup_vs_first']:8.2f}x")
        if args.curve:
            curves = loss_curves(shape, data, args.curve)
            tail = max(1, args.curve // 10)
            f32, b16 = (float(np.mean(curves[d][-tail:])) for d in ("float32", "bfloat16"))
            noise = float(np.std(np.diff(curves["float32"][-tail * 2:])) / math.sqrt(2))
            results[key]["curve"] = {"steps": args.curve, "fp32_final": f32, "bf16_final": b16,
                                     "step_noise_std": noise}
            print(f"loss after {args.curve} steps (mean of last {tail}): fp32 {f32:.4f}, bf16 {b16:.4f} "
                  f"(step-to-step noise std {noise:.4f})")
        print()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "peak_fp32": max(peaks32), "peak_bf16": peak16, "results": results}, indent=2))
    print(f"written: {out}  (*MFU against the measured fp32 torch.mm rate)")


if __name__ == "__main__":
    main()
