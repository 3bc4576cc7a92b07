"""Callbacks: how monitoring, live control, early stopping and diagnosis attach to the one loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer


class Callback:
    """Override the events you need. Set `trainer.should_stop = True` to end training early."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...
    def on_checkpoint(self, trainer: Trainer, path: Path) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...
