"""Metric sinks: metrics.jsonl (the record every other tool reads) and TensorBoard.

metrics.jsonl schema: one object per line with `step` and `kind` ("train" or "eval");
train lines hold loss, lr, grad_norm, tokens_per_s, elapsed_s; eval lines hold val_loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.rundir import append_jsonl
from lmforge.train.callbacks import Callback


class JsonlSink(Callback):
    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        if resume_step and path.is_file():
            self._truncate_after(resume_step)
        elif not resume_step:
            path.unlink(missing_ok=True)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint: they will be logged again."""
        keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        append_jsonl(self.path, {"kind": "train", **metrics})

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        append_jsonl(self.path, {"kind": "eval", **metrics})


class TensorBoardSink(Callback):
    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s"):
            if key in metrics:
                self.writer.add_scalar(f"train/{key}", metrics[key], metrics["step"])

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.writer.add_scalar("val/loss", metrics["val_loss"], metrics["step"])

    def on_train_end(self, trainer: Any) -> None:
        self.writer.flush()
        self.writer.close()
