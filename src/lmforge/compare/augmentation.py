"""`lmforge compare augmentation`: what each augmentation operation does for a small classifier.

At each training-set size (a stratified subset of the training passages), one fine-tune without
augmentation and one per operation, whose training set is the subset plus one augmented copy of
each passage (augment/ops.py). Every arm sees the same held-out passages, steps and seed; the
table gives test macro-F1 with its bootstrap 95% interval, and the report shows one passage as
each operation changed it. Operations are applied to training passages only, after the split.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tokenizers import Tokenizer

from lmforge.augment.ops import OPERATIONS, apply, check_rate
from lmforge.augment.stage import resources
from lmforge.compare.trainset import train_texts, with_train
from lmforge.config.load import config_over
from lmforge.config.schema import AugmentOp, Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.classify import read_documents, run_finetune
from lmforge.finetune.passages import Task, subsample
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text


def augmenter(records: list[dict[str, Any]], cfg: Config, size: int, op: str | None, rate: float, res: Any,
              examples: dict[str, dict[str, str]]) -> Any:
    """The task change of one arm: a stratified subset of `size` passages, plus its augmented copies."""
    def adjust(task: Task, tok: Tokenizer, prefix: list[int]) -> Task:
        texts = train_texts(records, task, cfg.finetune)
        train = task.splits["train"]
        keep = subsample(list(range(len(texts))), train.y, size, cfg.finetune.seed)
        t, y, d = [texts[i] for i in keep], [int(train.y[i]) for i in keep], [train.docs[i] for i in keep]
        if op is not None:
            for i in range(len(keep)):
                new = apply(op, t[i], rate, random.Random(f"{cfg.finetune.seed}:{op}:{i}"), res)
                if new != t[i]:
                    examples.setdefault(op, {"before": t[i], "after": new})
                    t.append(new)
                    y.append(y[i])
                    d.append(d[i])
        return with_train(task, t, y, d, tok, cfg.finetune.max_tokens, prefix)
    return adjust


def run_augmentation(base: Base, out: RunDir, cfg: Config, sizes: list[int], ops: list[str], rate: float
                     ) -> dict[str, Any]:
    """Every operation (and none) at every size; augmentation.json / .md in `out`."""
    check_rate(rate)
    unknown = [o for o in ops if o not in OPERATIONS]
    if unknown:
        raise LmforgeError(f"unknown operation(s) {unknown}", f"choose from: {', '.join(OPERATIONS)}")
    records = read_documents(out, cfg)
    res = resources(cfg.augment.model_copy(update={"operations": [AugmentOp(name=o, rate=rate) for o in ops]}),  # type: ignore[arg-type]
                    [r["text"] for r in records])
    started = time.time()
    examples: dict[str, dict[str, str]] = {}
    results = []
    for size in sizes:
        for op in [None, *ops]:
            name = op or "none"
            console.print(f"augmentation: {name}, {size} training passages")
            arm_cfg = config_over(cfg, None, ["finetune.train_passages=null"])
            res_ = run_finetune(base, RunDir(out.root / f"n{size}" / name), arm_cfg, show_progress=False,
                                records=records, adjust=augmenter(records, arm_cfg, size, op, rate, res, examples))
            f1 = res_["test"]["f1_macro"]
            results.append({"operation": name, "size": size, "rate": 0.0 if op is None else rate,
                            "train_passages": sum(res_["data"]["passages"]["train"].values()),
                            "f1_macro": f1["value"], "f1_ci95": f1["ci95"], "accuracy": res_["test"]["accuracy"]["value"],
                            "test_passages": res_["test"]["n"], "train_seconds": res_["train_seconds"]})
            console.print(f"  test macro-F1 {f1['value']:.3f}")
    record = {"labels": res_["labels"], "label_field": cfg.finetune.label_field, "sizes": sizes, "rate": rate,
              "steps": cfg.train.steps, "wall_s": round(time.time() - started, 1), "results": results,
              "examples": examples}
    atomic_write_json(out.root / "augmentation.json", record)
    table = augmentation_table(results, examples)
    atomic_write_text(out.root / "augmentation.md", table + "\n")
    return {"table": table, **record}


def augmentation_table(results: list[dict[str, Any]], examples: dict[str, dict[str, str]]) -> str:
    lines = ["| operation | base passages | train passages | test macro-F1 (95% CI) | accuracy | train s |",
             "|---|---|---|---|---|---|"]
    for r in results:
        ci = r["f1_ci95"]
        interval = f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        lines.append(f"| {r['operation']} | {r['size']} | {r['train_passages']} | {r['f1_macro']:.3f}{interval} | "
                     f"{r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    if examples:
        lines += ["", "Examples (one training passage, from just before its first change, before -> after):", ""]
        for op, ex in examples.items():
            at = first_change(ex["before"], ex["after"])
            lines.append(f"- **{op}**: `…{ex['before'][at:at + 140]}` -> `…{ex['after'][at:at + 140]}`")
    return "\n".join(lines)


def first_change(a: str, b: str, lead: int = 30) -> int:
    """Where an example is worth showing from: `lead` characters before the first difference."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return max(0, i - lead)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise LmforgeError(f"--sizes '{text}' is not a list of integers", "example: --sizes 16,64") from None
    if not sizes or min(sizes) < 2:
        raise LmforgeError(f"--sizes '{text}': every size must be at least 2 passages", "example: --sizes 16,64")
    return sizes
