"""`lmforge compare transfer`: how much a pretrained start is worth, by training-set size.

Yosinski et al. 2014 ("How transferable are features in deep neural networks?") copy the first
n layers of a trained network and freeze them or not; here, in miniature, one classification
task (finetune/passages.py) is fine-tuned from the same base by each arm:

- scratch: the base's shape, freshly initialised, every weight trained;
- full: the pretrained weights, every weight trained;
- frozen-k: the embeddings and the first k blocks frozen, the rest trained (k = 1 .. n_layer);
- lora: LoRA adapters (peft) and the head only;
- encoder: a second base, a BERT-style encoder pretrained by masked-LM (`--encoder RUN`), every
  weight trained, the head reading its [CLS] vector (Devlin et al. 2019).

Every arm sees the same documents, the same held-out passages and the same number of steps, at
each training-set size (a stratified subset of the training passages). The table gives test
macro-F1 with its 95% interval, MCC, the trainable parameters and the measured training time;
a cell already measured with the same config is read back (compare/output.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmforge.compare.output import cached_cell, pyplot, save_figure, write_table
from lmforge.config.load import config_over
from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.classify import read_documents, run_finetune
from lmforge.rundir import RunDir

NAME = "transfer"
ENCODER = "encoder"
COLUMNS = ["arm", "train passages", "test macro-F1", "95% CI", "MCC", "accuracy", "trainable params", "train s"]


def arms(n_layer: int, encoder: bool = False) -> dict[str, list[str]]:
    """Each arm's finetune.* keys (the encoder arm's are applied to the encoder base)."""
    out = {"scratch": ["finetune.init=scratch"], "full": []}
    out.update({f"frozen-{k}": ["finetune.freeze_embeddings=true", f"finetune.freeze_blocks={k}"]
                for k in range(1, n_layer + 1)})
    out["lora"] = ["finetune.lora=true"]
    if encoder:
        out[ENCODER] = ["finetune.pooling=cls"]
    return out


def encoder_config(cfg: Config, encoder: Base) -> Config:
    """The comparison's config with the encoder base's model section: the task, data and training
    keys stay those of every other arm."""
    if encoder.model.family != "encoder":
        raise LmforgeError(f"--encoder {encoder.path} is a '{encoder.model.family}' model, not an encoder",
                           "train one with `lmforge run model.family=encoder ...` and pass that run")
    return cfg.model_copy(update={"model": encoder.model})


def run_transfer(base: Base, out: RunDir, cfg: Config, sizes: list[int], only: list[str] | None = None,
                 encoder: Base | None = None) -> dict[str, Any]:
    """Every arm at every size; table.md/html/csv, figure.png, cells.json and result.json in `out`."""
    table_arms = arms(cfg.model.n_layer, encoder is not None)
    unknown = [a for a in only or [] if a not in table_arms]
    if unknown:
        hint = " (the encoder arm needs --encoder RUN)" if ENCODER in unknown and encoder is None else ""
        raise LmforgeError(f"unknown arm(s) {unknown} for `compare transfer`{hint}",
                           f"choose from: {', '.join(table_arms)}")
    records = read_documents(out, cfg)
    enc_cfg = encoder_config(cfg, encoder) if encoder is not None else None
    cells, results = [], []
    for size in sizes:
        for name in only or list(table_arms):
            start, start_cfg = (encoder, enc_cfg) if name == ENCODER else (base, cfg)
            assert start is not None and start_cfg is not None  # the encoder arm exists only with --encoder
            keys = [*table_arms[name], f"finetune.train_passages={size}"]
            arm_cfg = config_over(start_cfg, None, keys)
            folder = out.root / f"n{size}" / name

            def measure(arm_cfg: Config = arm_cfg, start: Base = start, folder: Path = folder) -> dict[str, Any]:
                console.print(f"transfer: {folder.parent.name}/{folder.name}")
                res = run_finetune(start, RunDir(folder), arm_cfg, show_progress=False, records=records)
                return summarise(res)

            command = f"lmforge finetune {start.path} -o {folder} {' '.join(keys)}"
            cell = cached_cell(out.root, f"{name}-n{size}", arm_cfg.train.seed, arm_cfg.model_dump(mode="json"),
                               command, measure)
            cells.append(cell)
            results.append({"arm": name, "size": size, **cell["values"]})
            console.print(f"  {name} at {size}: test macro-F1 {cell['values']['f1_macro']:.3f}")
    rows = [[r["arm"], r["train_passages"], round(r["f1_macro"], 3),
             f"{r['f1_ci95'][0]:.3f}-{r['f1_ci95'][1]:.3f}" if r["f1_ci95"] else "-", round(r["mcc"], 3),
             round(r["accuracy"], 3), r["trainable_params"], round(r["train_seconds"])] for r in results]
    notes = [(f"{len(sizes)} training-set sizes, {cfg.train.steps} steps each, the same "
              f"{results[0]['test_passages']} test passages for every arm (label field {cfg.finetune.label_field}); "
              "95% CI: bootstrap over test passages; train s is wall time on a possibly shared machine"),
             smallest_size_note(results)]
    return write_table(out.root, NAME, "transfer: scratch vs pretrained vs frozen vs LoRA vs encoder", COLUMNS, rows,
                       cells, lambda p: transfer_figure(results, p), notes,
                       {"sizes": sizes, "steps": cfg.train.steps, "label_field": cfg.finetune.label_field,
                        "encoder": str(encoder.path) if encoder else None, "results": results})


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """The figures of one fine-tune the table needs."""
    test = res["test"]
    return {"train_passages": sum(res["data"]["passages"]["train"].values()), "f1_macro": test["f1_macro"]["value"],
            "f1_ci95": test["f1_macro"]["ci95"], "mcc": test["mcc"]["value"], "accuracy": test["accuracy"]["value"],
            "test_passages": test["n"], "confusion": test.get("confusion_matrix"),
            "trainable_params": res["trainable_params"], "train_seconds": res["train_seconds"], "steps": res["steps"],
            "tokens_seen": res["tokens_seen"], "labels": res["labels"]}


def smallest_size_note(results: list[dict[str, Any]]) -> str:
    """Pretrained (full) against scratch at the smallest size, in words, from the measured cells."""
    smallest = min(r["size"] for r in results)
    at = {r["arm"]: r for r in results if r["size"] == smallest}
    if "full" not in at or "scratch" not in at:
        return "pretrained vs scratch at the smallest size: not both measured"
    full, scratch = at["full"], at["scratch"]
    verdict = "beats" if full["f1_macro"] > scratch["f1_macro"] else "does not beat"
    overlap = (full["f1_ci95"] and scratch["f1_ci95"] and full["f1_ci95"][0] <= scratch["f1_ci95"][1]
               and scratch["f1_ci95"][0] <= full["f1_ci95"][1])
    return (f"at {full['train_passages']} training passages the pretrained start {verdict} scratch: macro-F1 "
            f"{full['f1_macro']:.3f} vs {scratch['f1_macro']:.3f}, MCC {full['mcc']:.3f} vs {scratch['mcc']:.3f}"
            + (" (the 95% intervals overlap)" if overlap else ""))


def transfer_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Test macro-F1 against training passages, one line per arm."""
    fig, ax = pyplot().subplots(figsize=(6, 3.8), dpi=120)
    for name in dict.fromkeys(r["arm"] for r in results):
        rows = sorted((r for r in results if r["arm"] == name), key=lambda r: r["train_passages"])
        xs = np.array([r["train_passages"] for r in rows])
        ys = np.array([r["f1_macro"] for r in rows])
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training passages")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Transfer: scratch vs pretrained vs frozen vs LoRA vs encoder")
    ax.legend(fontsize=8)
    save_figure(fig, path)
