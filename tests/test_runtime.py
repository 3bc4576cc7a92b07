"""`train.dtype: auto` follows the hardware: bf16 autocast only where bf16 is native."""

from pathlib import Path

import torch

from lmforge.config.load import load_config
from lmforge.runtime import autocast, has_fast_bf16


def test_auto_matches_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text()
    assert has_fast_bf16("cpu") == ("avx512_bf16" in flags or "amx_bf16" in flags)
    with autocast(torch.device("cpu"), "auto"):
        y = torch.ones(4, 4) @ torch.ones(4, 4)
    assert y.dtype == (torch.bfloat16 if has_fast_bf16("cpu") else torch.float32)


def test_default_preset_uses_auto_and_float32_stays_float32():
    assert load_config(preset="default").train.dtype == "auto"
    with autocast(torch.device("cpu"), "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
