"""The training doctor: detects, explains and repairs the common training problems, live (a
training callback) and after the fact (`lmforge doctor RUN`), from the statistics the monitor
records. docs/doctor.md describes the detectors, their thresholds and the repairs.

`build_callbacks` is what the pipeline hands training next to `monitor.build_callbacks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from lmforge.config.schema import Config
    from lmforge.rundir import RunDir
    from lmforge.train.loop import Callback


def build_callbacks(run: RunDir, cfg: Config, model: nn.Module, resume_step: int = 0,
                    show_progress: bool = True) -> list[Callback]:
    """The doctor's callback, or none with doctor.policy=off. It goes after the monitor's, so it
    reads what the monitor has just logged."""
    if cfg.doctor.policy == "off":
        return []
    from lmforge.doctor.live import Doctor

    return [Doctor(run, cfg)]
