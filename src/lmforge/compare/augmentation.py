"""`lmforge compare augmentation`: what each augmentation operation does for a small classifier.

At each training-set size (a stratified subset of the training passages), one fine-tune without
augmentation and one per operation, whose training set is the subset plus one augmented copy of
each passage (augment/ops.py). Every arm sees the same held-out passages, steps and seed; the
table (course topic 3, in the common output form of compare/output.py) gives test macro-F1 with
its bootstrap 95% interval, and its notes show one passage as each operation changed it.
Operations are applied to training passages only, after the split.
"""

from __future__ import annotations

import random
import shlex
import time
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from lmforge.augment.ops import OPERATIONS, apply, check_rate
from lmforge.augment.stage import resources
from lmforge.compare.output import markdown, pyplot, save_figure, write_table
from lmforge.compare.trainset import train_texts, with_train
from lmforge.config.load import config_over
from lmforge.config.schema import AugmentConfig, AugmentOp, Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.classify import read_documents, run_finetune
from lmforge.finetune.passages import Task, subsample
from lmforge.rundir import RunDir

NAME = "augmentation"
COLUMNS = ["operation", "base passages", "train passages", "test macro-F1 (95% CI)", "accuracy", "train s"]


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


def augment_section(cfg: Config, base: Base, ops: list[str], rate: float) -> AugmentConfig:
    """The config's augment section with these operations at `rate`; paraphrase writes with the
    base itself unless augment.paraphrase.model names another model (a Hugging Face base cannot)."""
    aug = cfg.augment.model_copy(update={"operations": [AugmentOp(name=o, rate=rate) for o in ops]})  # type: ignore[arg-type]
    if "paraphrase" in ops and not aug.paraphrase.model and base.kind != "hf":
        aug = aug.model_copy(update={"paraphrase": aug.paraphrase.model_copy(update={"model": str(base.path)})})
    return aug


def run_augmentation(base: Base, out: RunDir, cfg: Config, sizes: list[int], ops: list[str], rate: float
                     ) -> dict[str, Any]:
    """Every operation (and none) at every size; the table, figure and cells in `out` (compare/output.py)."""
    check_rate(rate)
    unknown = [o for o in ops if o not in OPERATIONS]
    if unknown:
        raise LmforgeError(f"unknown operation(s) {unknown}", f"choose from: {', '.join(OPERATIONS)}")
    records = read_documents(out, cfg)
    res = resources(augment_section(cfg, base, ops, rate), [r["text"] for r in records])
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
    rows = [[r["operation"], r["size"], r["train_passages"], f1_text(r), f"{r['accuracy']:.3f}",
             f"{r['train_seconds']:.0f}"] for r in results]
    cells = [{"arm": f"{r['operation']}-n{r['size']}", "seed": cfg.finetune.seed,
              "config": cfg.model_dump(mode="json"),
              "command": shlex.join(["lmforge", "compare", "augmentation", str(base.path), str(out.config),
                                     "--sizes", str(r["size"]), "--ops", r["operation"], "--rate", str(rate),
                                     "-o", str(out.root)]),
              "values": r} for r in results]
    notes = [(f"test macro-F1 of a classifier ({cfg.finetune.label_field}) fine-tuned {cfg.train.steps} steps on "
              "each training set; every arm is scored on the same held-out passages; operations change training "
              "passages only"), *example_notes(examples)]
    write_table(out.root, NAME, "augmentation: each operation's effect on a small classifier", COLUMNS, rows, cells,
                lambda p: f1_figure(results, "operation", "size", p), notes, record)
    return {"table": markdown(COLUMNS, rows) + "".join(f"\n{n}" for n in notes[1:]), **record}


def f1_text(r: dict[str, Any]) -> str:
    """Test macro-F1 with its bootstrap 95% interval, as the tables print it."""
    ci = r["f1_ci95"]
    return f"{r['f1_macro']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def example_notes(examples: dict[str, dict[str, str]]) -> list[str]:
    """One training passage as each operation changed it, from just before its first change."""
    if not examples:
        return []
    lines = ["Examples (one training passage, from just before its first change, before -> after):"]
    for op, ex in examples.items():
        at = first_change(ex["before"], ex["after"])
        before, after = (_one_line(ex[k][at:at + 140]) for k in ("before", "after"))
        lines.append(f"{op}: …{before} -> …{after}")
    return lines


def _one_line(text: str) -> str:
    """A line break written as `\\n`, so an example stays one line of the table's notes."""
    return text.replace("\r", "").replace("\n", "\\n")


def f1_figure(results: list[dict[str, Any]], arm_key: str, group_key: str | None, path: Path) -> None:
    """Test macro-F1 with its 95% interval per arm, one colour per training-set size (no colours
    without a `group_key`)."""
    names = list(dict.fromkeys(r[arm_key] for r in results))
    groups = list(dict.fromkeys(r[group_key] for r in results)) if group_key else [None]
    width = 0.8 / len(groups)
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.5 * len(names) * len(groups) + 2), 3.8), dpi=110)
    for g, group in enumerate(groups):
        rows = [(i, r) for i, n in enumerate(names) for r in results
                if r[arm_key] == n and (group_key is None or r[group_key] == group)]
        f1 = [r["f1_macro"] for _, r in rows]
        ci = [r["f1_ci95"] or (r["f1_macro"], r["f1_macro"]) for _, r in rows]
        err = [[max(0.0, v - lo) for v, (lo, _) in zip(f1, ci)], [max(0.0, hi - v) for v, (_, hi) in zip(f1, ci)]]
        ax.bar([i + g * width for i, _ in rows], f1, width, yerr=err, capsize=2,
               label=f"{group_key} {group}" if group_key else None)
    ax.set_xticks([i + (len(groups) - 1) * width / 2 for i in range(len(names))], names, rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("test macro-F1 (95% interval)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, axis="y")
    if group_key:
        ax.legend(fontsize=8)
    save_figure(fig, path)


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
