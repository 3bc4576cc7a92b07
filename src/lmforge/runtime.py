"""The ground floor under every stage that computes: which device, which precision, how many
threads, and whether torch.compile can generate kernels here."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import shutil
from pathlib import Path

import torch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


@functools.cache
def has_fast_bf16(device_type: str) -> bool:
    """Whether bf16 matmuls are native here: on a CPU without avx512_bf16 or AMX they are emulated
    and slower than fp32, so `dtype: auto` keeps fp32 there (a 2-core avx512_bf16 machine measured
    ~2.2x the fp32 matmul rate in bf16). A CPU held to AVX2 by ATEN_CPU_CAPABILITY or
    ONEDNN_MAX_CPU_ISA (how a machine without bf16 is emulated) counts as one without."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not ("avx512_bf16" in flags or "amx_bf16" in flags):
        return False
    capped_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if capped_isa and not capped_isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10", "ALL", "DEFAULT")):
        return False
    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or GPU; fp16 autocast on GPU (pair it with a GradScaler);
    `auto` is bf16 where the hardware computes it natively, else none."""
    if dtype == "auto":
        dtype = "bfloat16" if has_fast_bf16(device.type) else "float32"
    if dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if dtype == "float16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def can_compile(device: torch.device) -> bool:
    """Whether torch.compile can generate kernels here: a C++ compiler on CPU, Triton on CUDA."""
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    if device.type == "cpu":
        return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)
    return False


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed heap memory for reuse instead of giving it back to the kernel.

    A CPU training step frees and re-allocates the same activation buffers every step. glibc's
    defaults serve blocks over 128 KiB with mmap and trim the heap top once 128 KiB lie free, so
    those buffers come back as fresh pages the kernel must fault in and zero: about 1,000 page
    faults a step at a 4-layer, width-128 model, about one once this is set. (PyTorch's performance
    tuning guide swaps in jemalloc or tcmalloc for the same reason; this needs no preload.) mmap
    only from 32 MiB, glibc's own cap on its adaptive threshold; trim only when 1 GiB lies free.
    Does nothing off glibc; True if it took."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def setup_threads(threads: int) -> None:
    """Use `threads` CPU threads; 0 leaves PyTorch's default (every core)."""
    if threads:
        torch.set_num_threads(threads)
