"""The report's model section: the model the run trained (family, shape, parameters, init scheme)
and the signal check at init, rebuilt from the run's config with the train stage's seed, so the
weights are the ones training started from; the numbers are those of
`lmforge model info --signal --run RUN` on the same config (both use report/model_info.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import TRANSFORMERS, Config
from lmforge.errors import LmforgeError
from lmforge.models.info import model_info
from lmforge.models.init import scheme_for
from lmforge.models.registry import build_model
from lmforge.models.signal import plot_signal, signal_check
from lmforge.report.model_info import real_batch
from lmforge.rundir import RunDir
from lmforge.tokens.store import META, read_meta

SIGNAL_BATCH = 8  # sequences of the check's one forward/backward, as `lmforge model info --signal`
SIGNAL_MAX_PARAMS = 400_000_000  # above this a CPU forward/backward is no longer cheap: left to the CLI


def _shape(cfg: Config) -> dict[str, int]:
    """The model's shape, labelled as the report shows it."""
    m = cfg.model
    shape = {"layers": m.n_layer}
    attention = m.family in TRANSFORMERS
    if attention:
        shape["heads"] = m.n_head
        if m.family == "llama":
            shape["key/value heads"] = m.n_kv_head or m.n_head
    shape["width"] = m.n_embd
    if attention:  # the recurrent and convolutional blocks have no MLP
        shape["MLP width"] = m.mlp_dim
    shape["context"] = m.block_size
    return shape


def _recorded_params(events: list[dict[str, Any]]) -> dict[str, int] | None:
    """The parameter count the train stage recorded when it started (its last start)."""
    starts = [e for e in events if e.get("kind") == "train_start" and isinstance(e.get("params"), dict)]
    return starts[-1]["params"] if starts else None


def model_section(run: RunDir, cfg: Config | None, events: list[dict[str, Any]], out: Path,
                  label: Callable[[str], str] = str) -> dict[str, Any] | None:
    """The model's summary and init signal check, with its figure written to `out`; None when the
    run has no config or no tokens (the vocabulary the model was built with)."""
    if cfg is None or not (run.tokens / META).is_file():
        return None
    vocab = read_meta(run.tokens)["vocab_size"]
    with torch.random.fork_rng(devices=[]):  # the report leaves the process's random state alone
        torch.manual_seed(cfg.train.seed)  # as train.stage.new_trainer: the run's own initial weights
        model = build_model(cfg.model, vocab)
        info = model_info(model, cfg.model, vocab, cfg.train.batch_size)
        schemes = Counter(model.init_report.values())
        section: dict[str, Any] = {
            "family": cfg.model.family, "vocab_size": vocab, "shape": _shape(cfg), "params": info["params"],
            "recorded_params": _recorded_params(events), "flops_per_token": info["flops_per_token"],
            "init": scheme_for(cfg.model), "init_std": cfg.model.init_std,
            "init_overrides": {k: str(v) for k, v in cfg.model.init_overrides.items()},
            "init_parameters": dict(schemes.most_common()), "init_from": cfg.model.init_from,
            "signal": None, "signal_figure": None, "signal_skipped": None}
        if cfg.model.init_from:
            section["signal_skipped"] = "the weights came from model.init_from, not from an initialisation"
        elif info["params"]["total"] > SIGNAL_MAX_PARAMS:
            section["signal_skipped"] = (f"{info['params']['total']:,} parameters: run "
                                         f"`lmforge model info --signal --run RUN` for this check")
        else:
            try:
                xy, source = real_batch(run.root, vocab, min(cfg.train.batch_size, SIGNAL_BATCH),
                                        cfg.model.block_size)
            except LmforgeError as exc:  # too few tokens for one window
                section["signal_skipped"] = exc.message
                return section
            result = signal_check(model, xy[:, :-1], xy[:, 1:])
            section["signal"] = {**result, "source": source, "batch": int(xy.shape[0])}
            section["signal_figure"] = plot_signal(result, out / "signal.png",
                                                   f"{cfg.model.family} {label('at init')}", label).name
    return section
