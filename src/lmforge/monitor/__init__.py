"""Monitoring and live adjustment: sinks, training statistics, live control, automatic adjustments.

`build_callbacks` is the one place that turns the `monitor` config section into callbacks for the
training loop; train/stage.py calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from lmforge.config.schema import Config
    from lmforge.rundir import RunDir
    from lmforge.train.loop import Callback


def build_callbacks(run: RunDir, cfg: Config, model: nn.Module, resume_step: int = 0,
                    show_progress: bool = True) -> list[Callback]:
    """Controller first (a command applies before anything reads the step), then the per-source
    loss (it adds to the eval record), the automatic adjusters, and the Monitor last so it logs
    what the others measured and decided."""
    from lmforge.console import make_panel
    from lmforge.monitor.adjust import build_adjusters
    from lmforge.monitor.control import Controller
    from lmforge.monitor.logger import Monitor, flat_hparams, flops_per_token, measure_peak_flops
    from lmforge.monitor.sinks import JsonlSink, MlflowSink, Sink, TensorBoardSink, WandbSink
    from lmforge.monitor.sources import SourceLoss, source_names
    from lmforge.monitor.stats import TrainingStats

    mon = cfg.monitor
    hparams = flat_hparams({s: cfg.section(s) for s in ("model", "train")})
    sinks: list[Sink] = [JsonlSink(run.metrics, resume_step=resume_step)]
    if mon.tensorboard:
        sinks.append(TensorBoardSink(run.tb, resume_step))
    if mon.wandb:
        sinks.append(WandbSink(run.root, cfg.name, mon.wandb_project, mon.wandb_mode, hparams, resume_step > 0))
    if mon.mlflow:
        sinks.append(MlflowSink(run.root, cfg.name, mon.mlflow_uri, hparams, resume_step > 0))

    m = cfg.model
    device = next(model.parameters()).device
    flops = flops_per_token(model, m.n_layer, m.n_head, m.n_embd, m.block_size)
    peak = mon.peak_flops or measure_peak_flops(device)
    stats = TrainingStats(mon.stats_interval) if mon.stats_interval else None
    panel = make_panel(mon.console if show_progress else "none", f"lmforge: {cfg.name}")
    monitor = Monitor(sinks, stats, mon.histogram_interval, flops, peak, hparams, panel,
                      _sampler(run, cfg) if mon.sample_tokens else None)

    callbacks: list[Callback] = [Controller(run)] if mon.control else []
    if mon.source_loss and source_names(run.tokens):
        # as many windows as the loop's own validation pass, spread over the whole split
        callbacks.append(SourceLoss(run.tokens, m.block_size, cfg.train.eval_batches * cfg.train.batch_size,
                                    cfg.train.batch_size))
    callbacks += build_adjusters(run, mon.early_stop, mon.plateau, mon.average)
    callbacks.append(monitor)
    return callbacks


def _sampler(run: RunDir, cfg: Config) -> Any:
    """Text sample at each evaluation, with the eval section's prompt and sampling settings."""
    import torch
    from tokenizers import Tokenizer

    from lmforge.evaluate.generate import sample

    tok = Tokenizer.from_file(str(run.tokenizer))
    e = cfg.eval

    def draw(model: nn.Module) -> str:
        with torch.no_grad():
            return sample(model, tok, e.prompt, cfg.monitor.sample_tokens, e.temperature, e.top_k,
                          e.top_p, e.seed, cfg.model.block_size, cfg.tokenizer.eos_token)

    return draw
