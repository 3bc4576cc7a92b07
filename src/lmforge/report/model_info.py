"""What the model commands print: `lmforge model info`, `model sizes` and `export`, as text,
so cli.py stays a thin parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.models.info import model_info
from lmforge.models.registry import build_model
from lmforge.models.signal import plot_signal, signal_check
from lmforge.models.sizes import SIZES
from lmforge.tokens.store import META, load_tokens, read_meta


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def format_info(info: dict[str, Any]) -> str:
    p, m = info["params"], info["memory_bytes"]
    lines = [f"family          {info['family']} (vocab {info['vocab_size']:,}, context {info['context']:,})",
             f"parameters      {p['total']:,} total = {p['embedding']:,} embedding + {p['non_embedding']:,} other",
             f"matmul weights  {info['matmul_params']:,} per token (output head included)",
             (f"FLOPs/token     {info['flops_per_token']:,} forward+backward "
              f"({info['flops_per_token'] / 1e6:,.2f} MFLOP)")]
    if "receptive_field" in info:
        lines.append(f"receptive field {info['receptive_field']} tokens")
    lines += [f"memory (fp32 AdamW, batch {info['batch']} x {info['context']}, estimate):",
              (f"  weights {_mib(m['weights'])}, gradients {_mib(m['gradients'])}, "
               f"optimizer {_mib(m['optimizer'])}, activations {_mib(m['activations'])}; total {_mib(m['total'])}")]
    if "throughput" in info:
        t = info["throughput"]
        lines.append(f"MFU             {100 * t['mfu']:.1f}% at {t['tokens_per_s']:,.0f} tokens/s "
                     f"({t['achieved_gflops']:.1f} of {t['peak_gflops']:.1f} GFLOP/s peak fp32 matmul)")
    return "\n".join(lines)


def format_signal(result: dict[str, Any]) -> str:
    lines = [f"{'layer':<12} {'act std':>10} {'dL/d out':>10} {'param grad':>11}"]
    for r in result["rows"]:
        lines.append(f"{r['layer']:<12} {r['act_std']:>10.4g} {r['act_grad_norm']:>10.4g} {r['param_grad_norm']:>11.4g}")
    lines.append(f"verdict: {result['status']} — {result['reason']} (loss {result['loss']:.3f})")
    return "\n".join(lines)


def real_batch(run: Path | None, vocab: int, batch: int, context: int) -> tuple[torch.Tensor, str]:
    """A validation batch from a run's token files, or random tokens (said so) when there is none."""
    if run is not None:
        if not (Path(run) / "tokens" / META).is_file():
            raise LmforgeError(f"{run} has no tokens/{META}", f"run `lmforge tokenize {run}` first")
        val = load_tokens(Path(run) / "tokens", "val")
        if len(val) <= context + 1:
            val = load_tokens(Path(run) / "tokens", "train")
        if len(val) <= context + 1:  # one window needs context + 1 tokens (inputs and shifted targets)
            raise LmforgeError(f"{run} has {len(val):,} training tokens, too few for one window of "
                               f"model.block_size={context} (+1 target)",
                               "give a smaller model.block_size, or leave out --run to check on random tokens")
        starts = np.random.default_rng(0).integers(0, len(val) - context - 1, batch)
        rows = np.stack([np.asarray(val[s: s + context + 1], dtype=np.int64) for s in starts])
        return torch.from_numpy(rows), f"validation tokens of {run}"
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab, (batch, context + 1), generator=gen), "random tokens (give --run for real text)"


def info_command(cfg: Config, batch: int | None, vocab: int | None, tokens_per_s: float | None,
                 peak_gflops: float | None, signal: bool, run: Path | None, figure: Path | None) -> str:
    if run is not None and (Path(run) / "tokens" / META).is_file():
        run_vocab = read_meta(Path(run) / "tokens")["vocab_size"]
        if vocab is not None and vocab < run_vocab:  # its token ids would index past the embedding
            raise LmforgeError(f"--vocab {vocab} is smaller than the vocabulary of {run} ({run_vocab} tokens)",
                               "drop --vocab (--run sets it) or give at least that many")
        vocab = vocab or run_vocab
    vocab = vocab or cfg.model.vocab_size or cfg.tokenizer.vocab_size
    batch = batch or cfg.train.batch_size
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, vocab)
    text = format_info(model_info(model, cfg.model, vocab, batch, tokens_per_s, peak_gflops))
    if signal:
        xy, source = real_batch(run, vocab, min(batch, 8), cfg.model.block_size)
        result = signal_check(model, xy[:, :-1], xy[:, 1:])
        text += f"\n\nsignal propagation at init, on {source}:\n" + format_signal(result)
        if figure is not None:
            text += f"\nfigure: {plot_signal(result, figure, f'{cfg.model.family} at init')}"
    return text


def params_text(cfg: Config, vocab: int | None = None) -> str:
    """Every parameter's name, shape and the init scheme it got: the names `model.init_overrides`
    globs match (tied weights appear once, under the embedding's name)."""
    model = build_model(cfg.model, vocab or cfg.model.vocab_size or cfg.tokenizer.vocab_size)
    shapes = dict(model.named_parameters())
    width = max(len(n) for n in shapes)
    return "\n".join(f"{name:<{width}}  {tuple(shapes[name].shape)!s:<14} {scheme}"
                     for name, scheme in model.init_report.items())


def sizes_text() -> str:
    lines = []
    for family, sizes in SIZES.items():
        for name, keys in sizes.items():
            lines.append(f"{family:<6} {name:<15} " + ", ".join(f"{k}={v}" for k, v in keys.items()))
    return "\n".join(lines)
