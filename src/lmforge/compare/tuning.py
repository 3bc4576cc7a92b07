"""`lmforge compare tuning`: the measured effect of each tuning method, one change at a time
from the same base config (the course's table 12): a deeper and a wider model, the LR an LR range
test finds, dropout, an L1 penalty, more weight decay (L2), and early stopping. Augmentation
is not an arm yet.

Every arm trains through the train stage's trainer factory on the same tokens for the same
steps (early stopping may stop sooner); then the train and validation losses are measured the
same way (the same number of windows, in eval mode, so dropout does not inflate the train loss),
and the train-validation gap is their difference: the overfitting each method removes or adds.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.compare.models import prepare
from lmforge.compare.output import markdown, pyplot, save_figure, write_table
from lmforge.config.load import config_over
from lmforge.config.schema import Config
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.monitor.adjust import build_adjusters
from lmforge.rundir import RunDir
from lmforge.tokens.store import load_tokens
from lmforge.train.loop import estimate_loss
from lmforge.train.lr_find import sweep
from lmforge.train.stage import new_trainer

NAME = "tuning"
COLUMNS = ["change", "params", "steps", "LR", "train loss", "val loss", "gap (val - train)", "val vs base", "train s"]
LOSS_BATCHES = 20  # windows for the final train and validation losses: 20 batches of the run's batch


def arms(cfg: Config) -> dict[str, list[str]]:
    """Each arm's overrides on the base config (the `lr-search` arm's LR is found when it runs)."""
    m, t = cfg.model, cfg.train
    return {
        "base": [],
        "deeper": [f"model.n_layer={m.n_layer * 2}"],
        "wider": [f"model.n_embd={m.n_embd * 2}"],
        "lr-search": [],
        "dropout": ["model.dropout=0.1"],
        "l1": ["train.l1=1e-5"],
        "l2": [f"train.weight_decay={max(0.3, t.weight_decay * 3):g}"],
        "early-stop": ["monitor.early_stop.enabled=true", "monitor.early_stop.patience=2",
                       f"train.eval_interval={max(1, t.steps // 10)}"],
    }


def run_arm(run: RunDir, cfg: Config, name: str) -> dict[str, Any]:
    """Train one arm and measure its train and validation losses."""
    folder = RunDir(run.root / "arms" / name)
    folder.create()
    started = time.time()
    trainer = new_trainer(run, cfg, checkpoint_dir=folder.checkpoints)
    trainer.callbacks = build_adjusters(folder, cfg.monitor.early_stop, cfg.monitor.plateau, cfg.monitor.average)
    trainer.fit()
    seconds = time.time() - started
    model, device = trainer.raw_model, trainer.device
    batch = trainer.plan.rows

    def loss(split: str) -> float:
        return estimate_loss(model, load_tokens(run.tokens, split), cfg.model.block_size, batch, LOSS_BATCHES,
                             device, cfg.train.dtype)

    train_loss, val_loss = loss("train"), loss("val")
    params = sum(p.numel() for p in model.parameters())
    return {"arm": name, "steps": trainer.step, "lr": cfg.train.lr, "params": params, "train_loss": train_loss,
            "val_loss": val_loss, "gap": val_loss - train_loss, "seconds": round(seconds, 1)}


def run_tuning(run: RunDir, base: Config, only: list[str] | None = None) -> dict[str, Any]:
    """Every arm from `base`; the table, figure and cells in `run` (compare/output.py)."""
    table_arms = arms(base)
    unknown = [a for a in only or [] if a not in table_arms]
    if unknown:
        raise LmforgeError(f"unknown arm(s) {unknown} for `compare tuning`", f"choose from: {', '.join(table_arms)}")
    if not (run.tokens / "meta.json").is_file():  # a run already tokenized is used as it is
        prepare(run, base)
    results = []
    configs: dict[str, Config] = {}
    started = time.time()
    for name in only or list(table_arms):
        cfg = config_over(base, None, table_arms[name])
        if name == "lr-search":
            found = sweep(run, cfg, steps=min(100, cfg.train.steps))
            if found.valley is None:
                show(("tuning: the LR range test suggested nothing; lr-search keeps the base LR", "yellow"))
            else:
                cfg = config_over(cfg, None, [f"train.lr={found.valley:.3g}", f"train.min_lr={found.valley / 10:.3g}"])
        console.print(f"tuning: {name}")
        configs[name] = cfg
        res = run_arm(run, cfg, name)
        console.print(f"  train {res['train_loss']:.3f}, val {res['val_loss']:.3f}, gap {res['gap']:+.3f}")
        results.append(res)
    record = {"base": base.model_dump(mode="json"), "wall_s": round(time.time() - started, 1), "results": results}
    rows = tuning_rows(results)
    cells = [{"arm": r["arm"], "seed": base.train.seed, "config": configs[r["arm"]].model_dump(mode="json"),
              "command": shlex.join(["lmforge", "compare", "tuning", str(run.config), "--only", r["arm"],
                                     "-o", str(run.root)]), "values": r} for r in results]
    notes = [(f"every change from the same base config and tokens, {base.train.steps} steps (early stopping may "
              f"stop sooner); train and validation loss over the same {LOSS_BATCHES} batches, in eval mode; one seed")]
    write_table(run.root, NAME, "tuning: one change at a time, validation loss and train-validation gap", COLUMNS,
                rows, cells, lambda p: tuning_figure(results, p), notes, record)
    return {"table": markdown(COLUMNS, rows), **record}


def tuning_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    base = next((r for r in results if r["arm"] == "base"), results[0])
    return [[r["arm"], f"{r['params']:,}", r["steps"], f"{r['lr']:.3g}", f"{r['train_loss']:.3f}",
             f"{r['val_loss']:.3f}", f"{r['gap']:+.3f}", f"{r['val_loss'] - base['val_loss']:+.3f}",
             f"{r['seconds']:.0f}"] for r in results]


def tuning_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Validation loss and train-validation gap per change."""
    xs = np.arange(len(results))
    fig, (a, b) = pyplot().subplots(1, 2, figsize=(9, 3.5), dpi=120)
    a.bar(xs, [r["val_loss"] for r in results])
    a.set_ylim(min(r["val_loss"] for r in results) * 0.98, max(r["val_loss"] for r in results) * 1.01)
    a.set_title("validation loss")
    b.bar(xs, [r["gap"] for r in results], color="tab:orange")
    b.set_title("gap: val - train loss")
    for ax in (a, b):
        ax.set_xticks(xs, [r["arm"] for r in results], rotation=45, ha="right", fontsize=8)
    save_figure(fig, path)
