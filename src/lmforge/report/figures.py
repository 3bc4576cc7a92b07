"""Figures for the report, drawn with matplotlib from metrics.jsonl (no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lmforge.rundir import read_jsonl

# the numbers each kind of record must hold to be drawn
NEEDS = {"train": ("step", "loss", "lr"), "eval": ("step", "val_loss")}


def _drawable(key: str, value: object) -> bool:
    """A step is a whole number; a loss or LR a number, or null (the sinks write NaN as null)."""
    if key == "step":
        return isinstance(value, int) and not isinstance(value, bool)
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def read_metrics(path: Path, skipped: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """The train and eval records of metrics.jsonl that can be drawn. A line torn by a crash is
    passed over by read_jsonl; a record without a number where one is needed (edited by hand)
    goes to `skipped`, so the report can say so instead of failing."""
    train, evals = [], []
    for rec in read_jsonl(path):
        kind = "eval" if rec.get("kind") == "eval" else "train"
        if not all(k in rec and _drawable(k, rec[k]) for k in NEEDS[kind]):
            if skipped is not None and rec.get("kind") in NEEDS:
                skipped.append(rec)
            continue
        (evals if kind == "eval" else train).append(rec)
    return train, evals


def loss_curve(metrics: Path, out: Path, skipped: list[dict] | None = None) -> Path | None:
    """Training loss and validation loss against step; the learning rate on a second axis."""
    train, evals = read_metrics(metrics, skipped)
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", lw=1)
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    lr_ax = ax.twinx()
    lr_ax.plot([r["step"] for r in train], [r["lr"] for r in train], color="grey", ls="--", lw=0.8, label="lr")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    lr_lines = lr_ax.get_legend_handles_labels()
    ax.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _block_of(name: str) -> str | None:
    """`blocks.3` from a parameter or module name such as `blocks.3.mlp.fc.weight` or `blocks.3`."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) >= 2 else None


def training_dynamics(metrics: Path, stats: Path, out: Path) -> Path | None:
    """What the loss curve hides: gradient norm and throughput at every logged step, and, from the
    training statistics, each block's gradient norm and share of zero activations (vanishing
    gradients and dead units show here first), plus validation loss per data source if recorded."""
    train, evals = read_metrics(metrics)
    train = [r for r in train if "grad_norm" in r]
    if not train:
        return None
    records = [r for r in read_jsonl(stats) if r.get("kind") == "stats"] if stats.is_file() else []
    per_source = sorted({k for r in evals for k in r if k.startswith("val_loss/")})
    panels = ["grad", "speed"] + (["blocks", "zeros"] if records else []) + (["sources"] if per_source else [])
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(9, 2.8 * rows), dpi=110, squeeze=False)
    flat = list(axes.flat)
    steps = [r["step"] for r in train]
    for ax, panel in zip(flat, panels):
        if panel == "grad":
            ax.plot(steps, [r["grad_norm"] for r in train], lw=1)
            ax.set_yscale("log")
            ax.set_title("gradient norm (before clipping)", fontsize=9)
        elif panel == "speed":
            ax.plot(steps, [r.get("tokens_per_s", float("nan")) for r in train], lw=1, color="tab:green")
            ax.set_title("throughput (tokens/s)", fontsize=9)
        elif panel == "blocks":
            _per_block(ax, records, "grad_norm/")
            ax.set_yscale("log")
            ax.set_title("gradient norm per block", fontsize=9)
        elif panel == "zeros":
            _per_block(ax, records, "act_zero/")
            ax.set_title("share of zero activations per block", fontsize=9)
        else:
            for key in per_source:
                ax.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], "o-", ms=3,
                        label=key.split("/", 1)[1])
            ax.legend(fontsize=7)
            ax.set_title("validation loss per data source", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in flat[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _per_block(ax: plt.Axes, records: list[dict], prefix: str) -> None:
    """One line per block: the root of the summed squares of its parameters' gradient norms, or
    the mean of an activation statistic recorded per block."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        values: dict[str, list[float]] = {}
        for key, value in rec.items():
            block = _block_of(key[len(prefix):]) if key.startswith(prefix) else None
            if block is not None and isinstance(value, (int, float)):
                values.setdefault(block, []).append(float(value))
        for block, vals in values.items():
            agg = sum(v * v for v in vals) ** 0.5 if prefix == "grad_norm/" else sum(vals) / len(vals)
            lines.setdefault(block, []).append((rec["step"], agg))
    for block in sorted(lines, key=lambda b: int(b.split(".")[1])):
        pts = lines[block]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=block)
    if lines:
        ax.legend(fontsize=6, ncol=2)


ADJUSTMENTS = ("control", "control_rejected", "lr_reduce", "early_stop", "restore_best", "average", "resume")


def events_timeline(metrics: Path, events: Path, out: Path) -> Path | None:
    """Live adjustments (ctl commands, LR cuts, early stop, averaging) as marked lines over the
    learning rate and the loss, so a change and its effect are seen together. None if there were none."""
    marks = [ev for ev in read_jsonl(events) if ev.get("kind") in ADJUSTMENTS and ev.get("step") is not None]
    train, evals = read_metrics(metrics)
    if not marks or not train:
        return None
    fig, (lr_ax, loss_ax) = plt.subplots(2, 1, figsize=(7, 5), dpi=110, sharex=True)
    steps = [r["step"] for r in train]
    lr_ax.plot(steps, [r["lr"] for r in train], color="grey", lw=1)
    lr_ax.set_ylabel("learning rate")
    lrs = [r["lr"] for r in train if r["lr"] > 0]
    if lrs and max(lrs) / min(lrs) > 20:  # LR cuts span decades: show them as equal steps
        lr_ax.set_yscale("log")
    loss_ax.plot(steps, [r["loss"] for r in train], lw=1, label="train loss")
    if evals:
        loss_ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label="validation loss")
    loss_ax.set_ylabel("loss")
    loss_ax.set_xlabel("step")
    colors = {"control": "tab:blue", "control_rejected": "tab:red", "lr_reduce": "tab:orange",
              "early_stop": "tab:purple", "restore_best": "tab:purple", "average": "tab:green", "resume": "black"}
    labels = {"control_rejected": "rejected", "lr_reduce": "LR cut", "early_stop": "early stop",
              "restore_best": "best restored", "average": "averaged", "resume": "resumed"}
    for i, ev in enumerate(marks):
        for ax in (lr_ax, loss_ax):
            ax.axvline(ev["step"], color=colors[ev["kind"]], ls=":", lw=1)
        label = labels.get(ev["kind"]) or f"ctl {ev.get('action', '')}"
        lr_ax.annotate(label, (ev["step"], 1.0 - 0.12 * (i % 4)), xycoords=("data", "axes fraction"),
                       fontsize=7, ha="left", va="top", color=colors[ev["kind"]])
    lr_ax.set_title("live adjustments (details in the events table)", fontsize=9)
    for ax in (lr_ax, loss_ax):
        ax.grid(alpha=0.3)
    loss_ax.legend(loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def funnel_figure(ledger: dict | None, out: Path) -> Path | None:
    """Documents left after each cleaning step (the ledger's funnel), as horizontal bars."""
    steps = (ledger or {}).get("funnel") or []
    if not steps:
        return None
    names = [f["step"] for f in steps][::-1]
    kept = [f["documents"] for f in steps][::-1]
    removed = [f["removed"] for f in steps][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(steps) + 1.2), dpi=110)
    ax.barh(names, kept, color="#4c72b0", label="documents after the step")
    ax.barh(names, removed, left=kept, color="#dd8452", label="removed by the step")
    for y, (k, r) in enumerate(zip(kept, removed)):
        ax.text(k + r, y, f" {k:,} (-{r:,})", va="center", fontsize=8)
    ax.set_xlabel("documents")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.set_xlim(0, max(k + r for k, r in zip(kept, removed)) * 1.25)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
