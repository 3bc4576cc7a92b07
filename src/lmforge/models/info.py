"""What a model costs before it runs: parameters, FLOPs per token, memory for a batch, and MFU.

FLOPs per token (forward + backward) follow PaLM (Chowdhery et al. 2022, appendix B), as nanoGPT
does: 6 per weight that multiplies each token, plus 12·L·d·T for attention scores and values at
context T. Memory is an estimate, not a measurement: fp32 weights, gradients and AdamW's two
moments (16 bytes per parameter), plus the activations our blocks save for backward, counted
per token from the code (docs/models.md shows the counts).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.models.registry import count_parameters


def matmul_params(model: nn.Module) -> int:
    """Weights used in a multiply for every token: matrices and conv kernels, the output head
    included (tied or not), embedding lookups excluded (a lookup is not a multiply)."""
    seen: set[int] = set()
    total = 0
    head = getattr(model, "head", None)
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen or p.ndim < 2:
            continue
        if "emb" in name and not (head is not None and p is head.weight):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def flops_per_token(model: nn.Module, cfg: ModelConfig, context: int | None = None) -> int:
    """Training FLOPs per token (forward + backward)."""
    t = context or cfg.block_size
    attention = 12 * cfg.n_layer * cfg.n_embd * t if cfg.family in ("gpt", "llama") else 0
    return 6 * matmul_params(model) + attention


def activation_elements_per_token(cfg: ModelConfig, vocab_size: int, context: int) -> float:
    """Elements saved for backward per token, counted from our blocks (fp32 training, no recompute)."""
    d, m, L = cfg.n_embd, cfg.mlp_dim, cfg.n_layer
    if cfg.family == "gpt":
        # ln in/out ×2, qkv 3d, attention out and its reshape 2d, mlp in/out of GELU 2m, softmax H·T
        per_layer = 9 * d + 2 * m + cfg.n_head * context
    elif cfg.family == "llama":
        kv = cfg.kv_heads * (d // cfg.n_head)
        # norms 4d, q and rotated q 2d, k/v and rotated k 3kv, attention out 2d, gate/up/silu/product 4m
        per_layer = 8 * d + 3 * kv + 4 * m + cfg.n_head * context
    elif cfg.family == "lstm":
        per_layer = 8 * d  # input, 4 gates, cell, tanh(cell), hidden
    elif cfg.family == "gru":
        per_layer = 6 * d  # input, 3 gates, candidate, hidden
    else:  # cnn: norm in/out, padded input, conv out 2d, GLU out, projection
        per_layer = 7 * d
    if cfg.dropout > 0:
        per_layer += 2 * d  # dropout masks (stored as bytes by PyTorch; counted as elements: an upper bound)
    return L * per_layer + d + 2 * vocab_size  # final norm; logits and their softmax in the loss


def memory_estimate(model: nn.Module, cfg: ModelConfig, vocab_size: int, batch: int,
                    context: int | None = None) -> dict[str, int]:
    """Bytes for fp32 AdamW training of one batch of `batch` sequences."""
    t = context or cfg.block_size
    n = count_parameters(model)["total"]
    act = int(activation_elements_per_token(cfg, vocab_size, t) * batch * t * 4)
    return {"weights": 4 * n, "gradients": 4 * n, "optimizer": 8 * n, "activations": act,
            "total": 16 * n + act}


def measure_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The fp32 matmul rate of this machine (median of `repeats`), the MFU denominator (a 2-core
    avx512_bf16 machine measured 184 GFLOP/s with 2 threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * n ** 3 / times[len(times) // 2] / 1e9


def model_info(model: nn.Module, cfg: ModelConfig, vocab_size: int, batch: int,
               tokens_per_s: float | None = None, peak_gflops: float | None = None) -> dict[str, Any]:
    """Everything `lmforge model info` prints, as plain data."""
    info: dict[str, Any] = {"family": cfg.family, "vocab_size": vocab_size, "batch": batch,
                            "context": cfg.block_size, "params": count_parameters(model),
                            "matmul_params": matmul_params(model),
                            "flops_per_token": flops_per_token(model, cfg),
                            "memory_bytes": memory_estimate(model, cfg, vocab_size, batch)}
    if hasattr(model, "receptive_field"):
        info["receptive_field"] = model.receptive_field
    if tokens_per_s:
        peak = peak_gflops or measure_peak_gflops()
        info["throughput"] = {"tokens_per_s": tokens_per_s, "peak_gflops": peak,
                              "achieved_gflops": tokens_per_s * info["flops_per_token"] / 1e9,
                              "mfu": tokens_per_s * info["flops_per_token"] / (peak * 1e9)}
    return info
