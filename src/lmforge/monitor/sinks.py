"""Metric sinks: one small interface, many destinations, several at once.

metrics.jsonl schema (the record the report, `lmforge watch` and other stages read):
one JSON object per line with `step` and `kind`:
  kind "train": loss, lr, grad_norm, tokens_per_s, elapsed_s (+ mfu, eta_s when known)
  kind "eval":  val_loss (+ more keys an evaluator adds)
stats.jsonl (training statistics, a separate file so readers of metrics.jsonl see only the kinds
above): one object per statistics step: {"step", "kind": "stats", "<stat>/<layer>": value, ...};
see monitor/stats.py for the names.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.rundir import append_jsonl, atomic_write_text, read_jsonl


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    """Numbers only, NaN/inf dropped: dashboards reject them and JSON cannot hold them."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class Sink:
    """A destination for metrics. The Monitor calls these; each sink overrides what it supports."""

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        """kind is "train", "eval" or "stats"; values are flat name -> number."""

    def histograms(self, step: int, tensors: Mapping[str, torch.Tensor]) -> None:
        """Weight and gradient distributions (names like "weights/blocks.0.mlp.fc.weight")."""

    def text(self, step: int, tag: str, text: str) -> None:
        """A text sample."""

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, Any]) -> None:
        """End of training: the run's hyperparameters and its final metrics."""


class JsonlSink(Sink):
    """metrics.jsonl and stats.jsonl: the files every other tool reads (schema above)."""

    def __init__(self, path: Path, resume_step: int = 0, stats_path: Path | None = None) -> None:
        self.path = path
        self.stats_path = stats_path or path.with_name("stats.jsonl")
        for file in (self.path, self.stats_path):
            if resume_step and file.is_file():
                _truncate_after(file, resume_step)
            elif not resume_step:
                file.unlink(missing_ok=True)

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        target = self.stats_path if kind == "stats" else self.path
        record = {"kind": kind, "step": step, **{k: v for k, v in values.items() if k != "step"}}
        append_jsonl(target, {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in record.items()})


def _truncate_after(path: Path, step: int) -> None:
    """On resume, drop lines logged after the checkpoint (they will be logged again) and a line
    torn by the crash; rewritten atomically, so a second crash here loses nothing."""
    keep = [rec for rec in read_jsonl(path) if isinstance(rec.get("step"), int) and rec["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in keep))


TB_PREFIX = {"train": "train", "eval": "val", "stats": "stats"}


class TensorBoardSink(Sink):
    """TensorBoard: scalars, histograms, text samples and the hparams plugin (final metrics)."""

    def __init__(self, logdir: Path, resume_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = logdir
        if not resume_step:  # a fresh run: an earlier run's curves would be drawn over this one's
            for old in logdir.glob("**/events.out.tfevents.*"):
                old.unlink()
        # flush often enough that `tensorboard --logdir` shows a live run; on resume, purge_step
        # hides what the killed run logged after its checkpoint (it is logged again)
        self.writer = SummaryWriter(str(logdir), flush_secs=10, purge_step=resume_step + 1 if resume_step else None)

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        prefix = TB_PREFIX.get(kind, kind)
        for key, value in _finite(values).items():
            if key in ("step", "elapsed_s"):
                continue
            name = "loss" if key == "val_loss" else key
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def histograms(self, step: int, tensors: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            self.writer.add_histogram(name, tensor.detach().float().cpu(), step)

    def text(self, step: int, tag: str, text: str) -> None:
        # TensorBoard renders text as markdown: indent it so it shows verbatim
        self.writer.add_text(tag, "    " + text.replace("\n", "\n    "), step)

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, Any]) -> None:
        metrics = {f"final/{k}": v for k, v in _finite(final).items()}
        if metrics:
            self.writer.add_hparams(dict(hparams), metrics, run_name="hparams")
        self.writer.flush()
        self.writer.close()


TRACKERS_FILE = "trackers.json"  # RUN/trackers.json: {"wandb": run id, "mlflow": run id}


def tracker_id(root: Path, tracker: str) -> str | None:
    """The id of the tracker run this run directory logged to, if it kept one."""
    try:
        data = json.loads((root / TRACKERS_FILE).read_text())
    except (OSError, ValueError):
        return None
    value = data.get(tracker) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def remember_tracker_id(root: Path, tracker: str, run_id: str) -> None:
    """Keep the tracker's run id, so `--resume` continues that run instead of starting another."""
    try:
        data = json.loads((root / TRACKERS_FILE).read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    atomic_write_text(root / TRACKERS_FILE, json.dumps({**data, tracker: run_id}, indent=2) + "\n")


class WandbSink(Sink):
    """Weights & Biases, offline by default: the run lands in RUN/wandb/ and is never sent
    unless the user chose online mode (then `wandb sync` is not needed). A resumed training logs
    to the same W&B run (its id is kept in RUN/trackers.json); offline, each resume writes its own
    offline-run folder under that id, and `wandb sync` joins them into one run."""

    def __init__(self, root: Path, name: str, project: str, mode: str, config: Mapping[str, Any],
                 resume: bool = False) -> None:
        try:
            import wandb
        except ImportError:
            raise LmforgeError("monitor.wandb is on but the wandb package is not installed",
                               "pip install 'lmforge[wandb]', or set monitor.wandb=false") from None
        self.wandb = wandb
        run_id = tracker_id(root, "wandb") if resume else None
        self.run = wandb.init(project=project, name=name, dir=str(root), mode=mode, config=dict(config),
                              id=run_id, resume="allow" if run_id else None,
                              settings=wandb.Settings(silent=True, console="off"))
        remember_tracker_id(root, "wandb", self.run.id)

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        prefix = TB_PREFIX.get(kind, kind)
        data = {f"{prefix}/{'loss' if k == 'val_loss' else k}": v
                for k, v in _finite(values).items() if k != "step"}
        self.run.log(data, step=step)

    def histograms(self, step: int, tensors: Mapping[str, torch.Tensor]) -> None:
        data = {name: self.wandb.Histogram(t.detach().float().cpu().numpy()) for name, t in tensors.items()}
        self.run.log(data, step=step)

    def text(self, step: int, tag: str, text: str) -> None:
        self.run.log({tag: self.wandb.Table(columns=["step", "text"], data=[[step, text]])}, step=step)

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, Any]) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in _finite(final).items()})
        self.run.finish()


class MlflowSink(Sink):
    """MLflow on local storage: a SQLite file in the run directory by default (MLflow 3 refuses
    the old plain-folder store), artifacts beside it. Uses a client, not the global fluent API,
    so two runs in one process never mix. A resumed training continues the same MLflow run (its
    id is kept in RUN/trackers.json); the steps between the checkpoint and a kill are logged again."""

    def __init__(self, root: Path, name: str, uri: str | None, params: Mapping[str, Any],
                 resume: bool = False) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise LmforgeError("monitor.mlflow is on but the mlflow package is not installed",
                               "pip install 'lmforge[mlflow]', or set monitor.mlflow=false") from None
        from mlflow.entities import Metric, Param

        self.Metric = Metric
        self.uri = uri or f"sqlite:///{(root / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name("lmforge")
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            "lmforge", artifact_location=(root / "mlflow-artifacts").resolve().as_uri())
        self.run_id = self._resumable(root) if resume else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return  # its params were logged by the run that created it (MLflow refuses to change them)
        self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
        remember_tracker_id(root, "mlflow", self.run_id)
        # MLflow caps a batch at 100 params
        items = [Param(k, str(v)[:500]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def _resumable(self, root: Path) -> str | None:
        """The kept run id, when this store still holds that run."""
        from mlflow.exceptions import MlflowException

        run_id = tracker_id(root, "mlflow")
        if run_id is None:
            return None
        try:
            self.client.get_run(run_id)
        except MlflowException:
            return None
        return run_id

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        prefix = TB_PREFIX.get(kind, kind)
        now = int(time.time() * 1000)
        metrics = [self.Metric(f"{prefix}/{'loss' if k == 'val_loss' else k}", v, now, step)
                   for k, v in _finite(values).items() if k != "step"]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def text(self, step: int, tag: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"{tag.replace('/', '_')}_step{step}.txt")

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, Any]) -> None:
        self.log("final", 0, final)
        self.client.set_terminated(self.run_id)
