"""`train.dtype: auto` follows the hardware: bf16 autocast only where bf16 is native."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from lmforge.config.load import load_config
from lmforge.runtime import autocast, has_fast_bf16


def test_auto_matches_the_cpu_flags(monkeypatch):
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    has_fast_bf16.cache_clear()
    flags = Path("/proc/cpuinfo").read_text()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert has_fast_bf16("cpu") == (native and torch.backends.cpu.get_cpu_capability().startswith("AVX512"))
    with autocast(torch.device("cpu"), "auto"):
        y = torch.ones(4, 4) @ torch.ones(4, 4)
    assert y.dtype == (torch.bfloat16 if has_fast_bf16("cpu") else torch.float32)


def test_default_preset_uses_auto_and_float32_stays_float32():
    assert load_config(preset="default").train.dtype == "auto"
    with autocast(torch.device("cpu"), "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_an_emulated_avx2_cpu_trains_in_float32():
    """How a CPU without bf16 is emulated on one that has it: both variables must take effect, or
    `dtype: auto` would keep bf16 and the emulated figures would describe the wrong path."""
    probe = ("import torch; from lmforge.runtime import has_fast_bf16; "
             "print(torch.backends.cpu.get_cpu_capability(), has_fast_bf16('cpu'))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AVX2", "False"]


def test_keeping_freed_memory_stops_the_page_faults_of_repeated_buffers():
    """A training step allocates its activations, frees them all, and allocates them again; with
    glibc's defaults the freed heap top is trimmed and every step faults its pages in anew, with
    `keep_freed_memory` they are reused."""
    probe = ("import resource, sys, torch; from lmforge.runtime import keep_freed_memory\n"
             "took = keep_freed_memory() if sys.argv[1] == 'keep' else False\n"
             "def step():  # sixteen 1 MiB activations, all freed at the end\n"
             "    kept = [torch.ones(1 << 18) for _ in range(16)]\n"
             "    return sum(float(t.sum()) for t in kept)\n"
             "def faults():\n"
             "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "for _ in range(3): step()\n"
             "before = faults()\n"
             "for _ in range(20): step()\n"
             "print(took, faults() - before)")
    counts = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True)
        took, n = out.stdout.split()
        counts[mode] = (took, int(n))
    assert counts["keep"][0] == "True"
    assert counts["default"][1] > 20 * 1000  # most of each step's 4,096 pages faulted in again
    assert counts["keep"][1] < 500
