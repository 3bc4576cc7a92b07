"""fp32 training step: lmforge's loop against nanoGPT's own train.py, side by side in one run.

nanoGPT's files (train.py, model.py, configurator.py) run unmodified from a checkout you give
(`git clone https://github.com/karpathy/nanoGPT`), copied into a scratch folder beside a
`data/lmforge/` dataset made from the built-in corpus by lmforge's own data and tokenize stages
(char-level), so both systems read the same token stream. The shape is nanoGPT's CPU recipe from
its README: 4 layers, 4 heads, width 128, context 64, batch 12, dropout 0, no compile, fp32.

nanoGPT's figure is the `time` it prints per iteration (the wall time between iterations: batch,
forward, backward, clip, AdamW step, logging); lmforge's is the wall time between consecutive
`on_step_end` events of `Trainer.fit` with `log_interval=1` (the same span, its loop's own
bookkeeping included). Systems alternate round by round; each figure is the median over rounds of
the per-round median, the first `--skip` steps of every round left out.

  .venv/bin/python bench/fp32_vs_nanogpt.py --nanogpt PATH [--rounds 3] [--steps 120] [--skip 20]
      [--profile | --interleave] [--out bench/results/fp32_vs_nanogpt.json] [--set train.compile=true ...]

--profile prints both steps' op profiles. --interleave alternates nanoGPT's step (its model.py, with
train.py's batch, LR, clip and AdamW as a function) and lmforge's `Trainer.train_step` step by step in
one process, so both meet the same machine: whole rounds in turn can land in different states of a VM.
Emulate a CPU without AVX-512/bf16: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (printed below).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SHAPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12}


def cpu_line() -> str:
    """CPU model, the flags that decide the fast paths, and what PyTorch dispatches to."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    have = " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ}
    return (f"cpu: {model}; flags: {have}; torch dispatch: {torch.backends.cpu.get_cpu_capability()}"
            f"{'; env ' + str(env) if env else ''}")


def prepare_tokens(root: Path) -> Path:
    """The built-in corpus through lmforge's data and tokenize stages, char-level: RUN/tokens."""
    from lmforge.config.load import load_config
    from lmforge.pipeline import run_all
    from lmforge.rundir import RunDir

    cfg = load_config(None, "default", ["tokenizer.kind=char", "tokenizer.vocab_size=256", "monitor.console=none"])
    run = RunDir(root / "run")
    run_all(run, cfg, stages=["data", "tokenize"])
    return run.root


def nanogpt_workdir(nanogpt: Path, run_root: Path, work: Path) -> Path:
    """nanoGPT's three files, unmodified, beside data/lmforge/{train,val}.bin and meta.pkl."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("train.py", "model.py", "configurator.py"):
        shutil.copy(nanogpt / name, work / name)
    data = work / "data" / "lmforge"
    data.mkdir(parents=True)
    meta = json.loads((run_root / "tokens" / "meta.json").read_text())
    for split in ("train", "val"):
        ids = np.fromfile(run_root / "tokens" / f"{split}.bin", dtype=meta["dtype"]).astype(np.uint16)
        ids.tofile(data / f"{split}.bin")
    with open(data / "meta.pkl", "wb") as fh:  # nanoGPT reads its vocabulary size from here
        pickle.dump({"vocab_size": meta["vocab_size"]}, fh)
    return work


def nanogpt_round(work: Path, steps: int, skip: int) -> float:
    args = [sys.executable, "train.py", "--dataset=lmforge", "--device=cpu", "--compile=False", "--dtype=float32",
            "--eval_interval=1000000", "--eval_iters=1", "--log_interval=1", "--always_save_checkpoint=False",
            f"--out_dir={work / 'out'}", "--gradient_accumulation_steps=1", "--dropout=0.0", "--bias=False",
            f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--warmup_iters=10", "--learning_rate=1e-3",
            *(f"--{k}={v}" for k, v in SHAPE.items())]
    out = subprocess.run(args, cwd=work, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"nanoGPT failed:\n{out.stderr[-3000:]}")
    times = [float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", out.stdout, re.MULTILINE)]
    return statistics.median(times[skip:]) / 1e3


def nanogpt_stepper(work: str, vocab: int) -> Callable[[], float]:
    """One iteration of nanoGPT's train.py as a function, from its own model.py: a batch sampled as
    its get_batch does, the LR set, forward, backward, clip at 1.0, AdamW step, zero_grad and
    loss.item() (train.py logs every iteration here)."""
    sys.path.insert(0, work)
    from model import GPT, GPTConfig  # nanoGPT's model.py, copied unmodified into `work`

    data = np.memmap(Path(work) / "data" / "lmforge" / "train.bin", dtype=np.uint16, mode="r")
    size, rows = SHAPE["block_size"], SHAPE["batch_size"]
    model = GPT(GPTConfig(block_size=size, vocab_size=vocab, n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"],
                          n_embd=SHAPE["n_embd"], dropout=0.0, bias=False))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")

    def step() -> float:
        ix = torch.randint(len(data) - size, (rows,))
        x = torch.stack([torch.from_numpy(data[i:i + size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + size].astype(np.int64)) for i in ix])
        for group in opt.param_groups:
            group["lr"] = 1e-3
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def nanogpt_profile(work: str, vocab: int, skip: int) -> None:
    """nanoGPT's step under torch.profiler, 30 steps after `skip` (run in a fresh process)."""
    from torch.profiler import ProfilerActivity, profile

    step = nanogpt_stepper(work, vocab)
    for _ in range(skip):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(30):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def interleaved_steps(run_root: str, work: str, vocab: int, steps: int, skip: int,
                      extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """nanoGPT's step and lmforge's `Trainer.train_step`, alternating step by step in one process
    (ABBA order), so that both meet the same machine: on a VM whose speed shifts by a third for
    seconds at a time, whole rounds in turn can land in different states. Both share lmforge's
    malloc settings here, so this compares the step code alone (bench/cpu_allocator.py measures
    the malloc settings)."""
    nano = nanogpt_stepper(work, vocab)
    with tempfile.TemporaryDirectory() as ck:
        trainer = lmforge_trainer(run_root, steps + skip, extra, [], Path(ck))
        times: dict[str, list[float]] = {"nanogpt": [], "lmforge": []}
        for i in range(steps + skip):
            order = [("nanogpt", nano), ("lmforge", trainer.train_step)]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                fn()
                if i >= skip:
                    times[name].append(time.perf_counter() - started)
    windows = [statistics.median(times["nanogpt"][k:k + 20]) / statistics.median(times["lmforge"][k:k + 20])
               for k in range(0, steps - 19, 20)]
    return {"median_s": {k: statistics.median(v) for k, v in times.items()}, "window_ratios": windows}


def in_fresh_process(call: str, cwd: Path | None = None) -> str:
    """stdout of `call` (an expression over this module) run by a new interpreter."""
    code = f"import json; from bench.fp32_vs_nanogpt import *; print(json.dumps({call}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode:
        raise SystemExit(f"{call.split('(')[0]} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def lmforge_round(run_root: Path, steps: int, skip: int, extra: tuple[str, ...] = (),
                  glibc_malloc: bool = False) -> dict[str, float]:
    """Runs in a fresh process (like nanoGPT's) so neither inherits the other's allocator state."""
    out = in_fresh_process(f"lmforge_steps({str(run_root)!r}, {steps}, {skip}, False, {tuple(extra)!r}, "
                           f"{glibc_malloc})")
    return json.loads(out.strip().splitlines()[-1])


def lmforge_trainer(run_root: str, steps: int, extra: tuple[str, ...], callbacks: list[Any], ck: Path) -> Any:
    """lmforge's trainer at nanoGPT's shape, fp32, logging every step, `steps` steps long."""
    from lmforge.config.load import load_config
    from lmforge.rundir import RunDir
    from lmforge.train.stage import new_trainer

    over = [f"model.{k}={v}" for k, v in SHAPE.items() if k != "batch_size"]
    cfg = load_config(None, "default", [*over, f"train.batch_size={SHAPE['batch_size']}", "train.dtype=float32",
                                        f"train.steps={steps}", "train.warmup_steps=10", "train.lr=1e-3",
                                        "train.log_interval=1", "train.eval_interval=1000000",
                                        "train.checkpoint_interval=1000000", "model.dropout=0.0",
                                        "monitor.console=none", *extra])
    return new_trainer(RunDir(run_root), cfg, callbacks, checkpoint_dir=ck, validate=False)


def lmforge_steps(run_root: str, steps: int, skip: int, profile: bool, extra: tuple[str, ...] = (),
                  glibc_malloc: bool = False) -> dict[str, float]:
    """Median seconds between consecutive step-end events of the one Trainer, fp32, and the minor
    page faults per step over the same steps. `glibc_malloc` leaves glibc's allocator settings as
    they are instead of `runtime.keep_freed_memory`'s (to measure what that saves)."""
    import resource

    import lmforge.train.stage
    from lmforge.train.loop import Callback

    class Clock(Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.faults: list[int] = []

        def on_step_end(self, trainer: object, metrics: dict) -> None:
            self.marks.append(time.perf_counter())
            self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    if glibc_malloc:
        lmforge.train.stage.keep_freed_memory = lambda: False

    clock = Clock()
    with tempfile.TemporaryDirectory() as ck:
        trainer = lmforge_trainer(run_root, steps, extra, [clock], Path(ck))
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            for _ in range(skip):
                trainer.train_step()
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(30):
                    trainer.train_step()
            print("lmforge's step (Trainer.train_step), 30 steps:")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            return {}
        trainer.fit()
    gaps = np.diff(clock.marks)
    faults = (clock.faults[-1] - clock.faults[skip]) / (len(clock.faults) - 1 - skip)
    return {"step_s": float(np.median(gaps[skip:])), "faults_per_step": faults}


def interleave(root: Path, work: Path, vocab: int, args: argparse.Namespace) -> None:
    """--interleave: `--rounds` fresh processes, each alternating the two steps."""
    rounds = []
    for r in range(args.rounds):
        out = in_fresh_process(f"interleaved_steps({str(root)!r}, {str(work)!r}, {vocab}, {args.steps}, "
                               f"{args.skip}, {tuple(args.extra)!r})")
        rounds.append(json.loads(out.strip().splitlines()[-1]))
        med = rounds[-1]["median_s"]
        print(f"round {r + 1}: nanoGPT {med['nanogpt'] * 1e3:.1f} ms/step, lmforge {med['lmforge'] * 1e3:.1f} "
              f"ms/step, ratio {med['nanogpt'] / med['lmforge']:.3f}", flush=True)
    ratios = [x["median_s"]["nanogpt"] / x["median_s"]["lmforge"] for x in rounds]
    windows = sorted(w for x in rounds for w in x["window_ratios"])
    print(f"interleaved: lmforge is {statistics.median(ratios):.3f}x nanoGPT's step speed (median of {len(ratios)} "
          f"rounds, {min(ratios):.3f}-{max(ratios):.3f}); 20-step windows: median {statistics.median(windows):.3f}, "
          f"middle half {windows[len(windows) // 4]:.3f}-{windows[3 * len(windows) // 4]:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_line(), "torch": torch.__version__, "shape": SHAPE,
                                        "mode": "interleaved", "lmforge_overrides": args.extra,
                                        "rounds": rounds, "ratios": ratios}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--skip", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="print lmforge's and nanoGPT's op profiles and stop")
    ap.add_argument("--interleave", action="store_true",
                    help="alternate nanoGPT's and lmforge's steps in one process, --rounds fresh processes")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="an lmforge config override for its side only, e.g. train.compile=true")
    args = ap.parse_args()
    if not (args.nanogpt / "train.py").is_file():
        raise SystemExit(f"{args.nanogpt} holds no train.py: give a checkout of karpathy/nanoGPT")
    print(cpu_line())
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"nanoGPT at {args.nanogpt}")
    with tempfile.TemporaryDirectory() as tmp:
        root = prepare_tokens(Path(tmp))
        work = nanogpt_workdir(args.nanogpt, root, Path(tmp) / "nanogpt")
        vocab = json.loads((root / "tokens" / "meta.json").read_text())["vocab_size"]
        if args.profile:
            print(in_fresh_process(f"lmforge_steps({str(root)!r}, {args.steps}, {args.skip}, True, "
                                   f"{tuple(args.extra)!r})"))
            print("nanoGPT's step (its model.py; train.py's batch, clip and AdamW), 30 steps:")
            print(in_fresh_process(f"nanogpt_profile({str(work)!r}, {vocab}, {args.skip})"))
            return
        if args.interleave:
            return interleave(root, work, vocab, args)
        rows: dict[str, list[float]] = {"nanogpt": [], "lmforge": []}
        for r in range(args.rounds):
            rows["nanogpt"].append(nanogpt_round(work, args.steps, args.skip))
            rows["lmforge"].append(lmforge_round(root, args.steps, args.skip, extra=tuple(args.extra))["step_s"])
            print(f"round {r + 1}: nanoGPT {rows['nanogpt'][-1] * 1e3:.1f} ms/step, "
                  f"lmforge {rows['lmforge'][-1] * 1e3:.1f} ms/step", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    speedup = med["nanogpt"] / med["lmforge"]
    print(f"median: nanoGPT {med['nanogpt'] * 1e3:.1f} ms/step, lmforge {med['lmforge'] * 1e3:.1f} ms/step: "
          f"lmforge is {speedup:.2f}x nanoGPT's speed (per-round ratios "
          f"{', '.join(f'{a / b:.2f}' for a, b in zip(rows['nanogpt'], rows['lmforge']))})")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_line(), "torch": torch.__version__, "shape": SHAPE,
                                        "lmforge_overrides": args.extra,
                                        "rounds": rows, "median_s": med, "speedup": speedup}, indent=1))


if __name__ == "__main__":
    main()
