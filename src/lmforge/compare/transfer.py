"""`lmforge compare transfer`: how much a pretrained start is worth, by training-set size.

Yosinski et al. 2014 ("How transferable are features in deep neural networks?") copy the first
n layers of a trained network and freeze them or not; here, in miniature, one classification
task (finetune/passages.py) is fine-tuned from the same base by each arm:

- scratch: the base's shape, freshly initialised, every weight trained;
- full: the pretrained weights, every weight trained;
- frozen-k: the embeddings and the first k blocks frozen, the rest trained (k = 1 .. n_layer);
- lora: LoRA adapters (peft) and the head only.

Every arm sees the same documents, the same held-out passages and the same number of steps, at
each training-set size (a stratified subset of the training passages). The table gives test
macro-F1 with its 95% interval, the trainable parameters and the measured training time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.load import config_over
from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.classify import read_documents, run_finetune
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text


def arms(n_layer: int) -> dict[str, list[str]]:
    """Each arm's finetune.* keys."""
    out = {"scratch": ["finetune.init=scratch"], "full": []}
    out.update({f"frozen-{k}": ["finetune.freeze_embeddings=true", f"finetune.freeze_blocks={k}"]
                for k in range(1, n_layer + 1)})
    out["lora"] = ["finetune.lora=true"]
    return out


def run_transfer(base: Base, out: RunDir, cfg: Config, sizes: list[int], only: list[str] | None = None
                 ) -> dict[str, Any]:
    """Every arm at every size; transfer.json, transfer.md and transfer.png in `out`."""
    table_arms = arms(cfg.model.n_layer)
    unknown = [a for a in only or [] if a not in table_arms]
    if unknown:
        raise LmforgeError(f"unknown arm(s) {unknown} for `compare transfer`", f"choose from: {', '.join(table_arms)}")
    records = read_documents(out, cfg)
    started = time.time()
    results = []
    for size in sizes:
        for name in only or list(table_arms):
            arm_cfg = config_over(cfg, None, [*table_arms[name], f"finetune.train_passages={size}"])
            console.print(f"transfer: {name}, {size} training passages")
            res = run_finetune(base, RunDir(out.root / f"n{size}" / name), arm_cfg, show_progress=False,
                               records=records)
            f1 = res["test"]["f1_macro"]
            results.append({"arm": name, "size": size, "train_passages": sum(res["data"]["passages"]["train"].values()),
                            "f1_macro": f1["value"], "f1_ci95": f1["ci95"], "mcc": res["test"]["mcc"]["value"],
                            "accuracy": res["test"]["accuracy"]["value"], "test_passages": res["test"]["n"],
                            "trainable_params": res["trainable_params"], "train_seconds": res["train_seconds"],
                            "steps": res["steps"], "tokens_seen": res["tokens_seen"]})
            console.print(f"  test macro-F1 {f1['value']:.3f}, {res['train_seconds']:.0f} s")
    record = {"labels": res["labels"], "label_field": cfg.finetune.label_field, "sizes": sizes,
              "steps": cfg.train.steps, "wall_s": round(time.time() - started, 1), "results": results}
    atomic_write_json(out.root / "transfer.json", record)
    table = transfer_table(results)
    atomic_write_text(out.root / "transfer.md", table + "\n")
    transfer_figure(results, out.root / "transfer.png")
    return {"table": table, **record}


def transfer_table(results: list[dict[str, Any]]) -> str:
    lines = ["| arm | train passages | test macro-F1 (95% CI) | MCC | trainable params | train s |",
             "|---|---|---|---|---|---|"]
    for r in results:
        ci = r["f1_ci95"]
        interval = f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        lines.append(f"| {r['arm']} | {r['train_passages']} | {r['f1_macro']:.3f}{interval} | {r['mcc']:.3f} | "
                     f"{r['trainable_params']:,} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def transfer_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Test macro-F1 against training passages, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name in dict.fromkeys(r["arm"] for r in results):
        rows = sorted((r for r in results if r["arm"] == name), key=lambda r: r["train_passages"])
        xs = np.array([r["train_passages"] for r in rows])
        ys = np.array([r["f1_macro"] for r in rows])
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training passages")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Transfer: pretrained vs scratch vs frozen vs LoRA")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
