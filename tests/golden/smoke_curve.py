"""The golden loss curve: the first STEPS training losses of the smoke preset on the built-in corpus,
through the real flow (the data and tokenize stages of `pipeline.run_all`, then the train stage with
the pipeline's monitoring callbacks, so the losses are read back from RUN/metrics.jsonl), checked in
as smoke_losses.json and compared on every test run (tests/golden/test_smoke_curve.py). A change
to training that moves the curve by more than ATOL at any step fails the test; when the change is
intended, regenerate the file (`make golden`) and commit it with the change.

The run is the smoke preset unchanged, stopped after STEPS steps (its LR schedule is the 150-step
one), with OVERRIDES that make it repeat across machines: CPU, float32, one thread, every step
logged. Floating point still differs in the last bits between CPU kernels (AVX2, AVX-512, the
scalar fallback pick different reduction orders), and the difference grows over the steps: ATOL is
sized from those differences (docs/training.md, "The golden loss curve").

    python -m tests.golden.smoke_curve            # run, compare with smoke_losses.json, print the steps
    python -m tests.golden.smoke_curve --write    # run and rewrite smoke_losses.json
    python -m tests.golden.smoke_curve train.lr=3.3e-3   # a perturbed run against the golden curve
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.pipeline import build_callbacks, run_all  # monitoring and the doctor (suggest), as `lmforge run`
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback
from lmforge.train.stage import run_train
from tests.helpers.runs import train_losses

GOLDEN = Path(__file__).with_name("smoke_losses.json")
PRESET = "smoke"
STEPS = 30
OVERRIDES = ("train.device=cpu", "train.dtype=float32", "train.threads=1", "train.log_interval=1",
             "train.compile=false", "monitor.console=none")
# Largest |loss - golden| allowed at any step. Measured (docs/training.md): other CPU kernels (ATen's
# scalar path, MKL's compatible sgemm, oneDNN limited to SSE4.1) move the curve by at most 2.4e-6;
# train.lr x1.01 moves it by 4.2e-3, x1.1 by 0.19, another seed or init by 0.5 or more.
ATOL = 1e-3
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni")  # and every avx512*/amx* flag


class StopAfter(Callback):
    """End training after `steps` steps, as `lmforge ctl stop` would: the schedule stays the preset's."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, trainer: object, metrics: dict) -> None:
        if trainer.step >= self.steps:
            trainer.should_stop = True


def prepare(root: Path, *overrides: str) -> tuple[RunDir, Config]:
    """The data and tokenize stages of the smoke preset into `root`."""
    cfg = load_config(None, PRESET, [*OVERRIDES, *overrides])
    run = RunDir(root)
    run_all(run, cfg, stages=["data", "tokenize"])
    return run, cfg


def train(run: RunDir, cfg: Config, steps: int = STEPS) -> list[float]:
    """The train stage with the pipeline's callbacks, stopped after `steps`; the logged losses."""
    threads = torch.get_num_threads()
    try:
        run_train(run, cfg, show_progress=False,
                  callbacks=lambda *args: build_callbacks(*args) + [StopAfter(steps)])
    finally:
        torch.set_num_threads(threads)  # train.threads=1 sets it for the whole process
    return train_losses(run.root)


def curve(root: Path, *overrides: str, steps: int = STEPS) -> list[float]:
    """The first `steps` training losses of the smoke preset (with OVERRIDES, then `overrides`)."""
    run, cfg = prepare(root, *overrides)
    return train(run, cfg, steps)


def machine() -> dict:
    """What produced a curve: torch (and the libraries that make the tokens), the CPU model, its SIMD
    flags and the kernels ATen picked."""
    cpu, flags = platform.processor() or platform.machine(), []
    info = Path("/proc/cpuinfo")
    if info.is_file():
        lines = info.read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        have = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
        flags = [f for f in have if f in SIMD_FLAGS or f.startswith(("avx512", "amx"))]
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ}
    libs = {name: version(name) for name in ("numpy", "tokenizers", "datatrove")}
    return {"torch": torch.__version__, "python": platform.python_version(), "libraries": libs, "cpu": cpu,
            "cpu_flags": flags, "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **({"env": env} if env else {})}


def load_golden(path: Path = GOLDEN) -> dict:
    return json.loads(path.read_text())


def differences(got: list[float], want: list[float]) -> list[float]:
    """|got - want| per step; a curve of another length cannot match."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} losses against {len(want)} golden ones")
    return [abs(a - b) for a, b in zip(got, want, strict=True)]


def within(got: list[float], want: list[float], atol: float = ATOL) -> bool:
    return max(differences(got, want)) <= atol


def report(got: list[float], want: list[float], atol: float = ATOL) -> str:
    """One line per step: golden, got, difference, and a mark where it exceeds `atol`."""
    rows = [f"{'step':>4} {'golden':>10} {'got':>10} {'diff':>10}"]
    for step, (a, b, d) in enumerate(zip(want, got, differences(got, want), strict=True), start=1):
        rows.append(f"{step:>4} {a:>10.6f} {b:>10.6f} {b - a:>+10.2e}" + ("  > tolerance" if d > atol else ""))
    rows.append(f"max |diff| {max(differences(got, want)):.2e} (tolerance {atol:.0e})")
    return "\n".join(rows)


def write(losses: list[float], path: Path = GOLDEN) -> None:
    doc = {"what": f"the first {len(losses)} training losses of the {PRESET} preset on the built-in corpus "
                   "(tests/golden/smoke_curve.py); regenerate with `make golden`",
           "preset": PRESET, "steps": len(losses), "overrides": list(OVERRIDES), "atol": ATOL,
           "date": datetime.date.today().isoformat(), **machine(), "losses": losses}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.smoke_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN.name} with this machine's curve")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides (a perturbed run; not with --write)")
    args = parser.parse_args(argv)
    if args.write and args.overrides:
        parser.error("--write records the preset's curve: extra overrides would make it another curve")
    with tempfile.TemporaryDirectory() as tmp:
        got = curve(Path(tmp) / "run", *args.overrides)
    if args.write:
        write(got)
        print(f"wrote {len(got)} losses to {GOLDEN}")
        return 0
    want = load_golden()["losses"]
    print(report(got, want))
    return 0 if within(got, want) else 1


if __name__ == "__main__":
    sys.exit(main())
