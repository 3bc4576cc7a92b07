"""The model behind the paraphrase augmentation: a trained lmforge run (its newest valid checkpoint)
or one of its checkpoints writes the words that augment/ops.py's `paraphrase` puts in place of the
ones it chose, with the sampler of `lmforge generate` (evaluate/generate.py: temperature, top-k,
top-p, seeded).

The augment package sits below the code that loads models, so this module registers the
operation's provider with the augment stage (`augment.stage.provide`) when it is imported; the
flow (pipeline.py) imports it, so `lmforge augment`, `lmforge run` and `lmforge compare
augmentation` all have it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from torch import nn

from lmforge.augment.ops import Resources, Rewriter
from lmforge.augment.stage import provide
from lmforge.config.load import load_config
from lmforge.config.schema import AugmentConfig, Config, ParaphraseConfig
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.evaluate.generate import sample
from lmforge.evaluate.score import load_trained
from lmforge.rundir import RunDir, run_of
from lmforge.train import checkpoint as ckpt

KEY = "augment.paraphrase.model"
CHARS_PER_TOKEN = 32


def resolve_model(path: str) -> tuple[RunDir, Path]:
    """The run and the checkpoint that `augment.paraphrase.model` names, or a clear error saying
    which command makes what is missing."""
    folder = Path(path)
    if not folder.exists():
        raise LmforgeError(f"{KEY}: {folder} does not exist",
                           f"train a model first (`lmforge run -o {folder}`), then name that run or one of its "
                           "checkpoints/step-N folders")
    run = run_of(folder)
    if run is None:
        raise LmforgeError(f"{KEY}: {folder} is neither an lmforge run (no config.yaml) nor one of its "
                           "checkpoints/step-N folders (no state.json)",
                           "name the folder `lmforge run -o RUN` or `lmforge train RUN` wrote, or a checkpoint in it")
    if folder.resolve() != run.root.resolve():  # a checkpoint folder
        return run, folder
    latest = ckpt.latest_valid(run.checkpoints, warn=lambda m: show((m, "yellow")))
    if latest is None:
        raise LmforgeError(f"{KEY}: the run {run.root} has no valid checkpoint", f"train it first: lmforge train {run.root}")
    return run, latest


def rewriter(model: nn.Module, tok: Tokenizer, cfg: ParaphraseConfig, run_cfg: Config) -> Rewriter:
    """Write as many tokens as the replaced words take, after the text before them; the
    continuation stops at an end-of-document token."""
    eos = run_cfg.tokenizer.eos_token
    block = run_cfg.model.block_size
    # the model reads the last `block` tokens only, so a long document's beginning need not be
    # encoded again for every span: `block` tokens of text average far fewer than 32 characters each
    chars = CHARS_PER_TOKEN * block

    def write(before: str, words: str, seed: int) -> str:
        n = max(1, len(tok.encode(words).ids))
        prompt = before[-chars:]
        full = sample(model, tok, prompt, n, cfg.temperature, cfg.top_k, cfg.top_p, seed, block, eos)
        # sample() gives the prompt back as typed unless decoding cannot line up with it (a byte
        # sequence cut inside a character); then the words stay as they were
        return full[len(prompt):].split(eos)[0] if full.startswith(prompt) else words

    return write


def provenance(run: RunDir, checkpoint: Path) -> dict[str, Any]:
    """What each paraphrased copy records about the model that wrote it."""
    state = json.loads((checkpoint / "state.json").read_text())
    return {"origin": "paraphrase",
            "paraphrase_model": {"run": str(run.root.resolve()), "checkpoint": checkpoint.name,
                                 "step": state.get("step"),
                                 "weights_sha256": state.get("files", {}).get("model.safetensors")}}


def prepare(cfg: AugmentConfig, res: Resources) -> None:
    """Load the model that `augment.paraphrase` names into the augment resources."""
    if not cfg.paraphrase.model:
        raise LmforgeError(f"the paraphrase operation needs {KEY}",
                           f"set {KEY}=RUN: a run `lmforge run -o RUN` trained, or one of its checkpoints/step-N")
    run, checkpoint = resolve_model(cfg.paraphrase.model)
    run_cfg = load_config(run.config)
    # threads 0: leave the process's thread count to whoever runs the stage or the comparison
    run_cfg = run_cfg.model_copy(update={"train": run_cfg.train.model_copy(update={"threads": 0})})
    model, tok, used = load_trained(run, run_cfg, checkpoint)
    res.rewriter = rewriter(model, tok, cfg.paraphrase, run_cfg)
    res.paraphrase_mode = cfg.paraphrase.mode
    res.provenance["paraphrase"] = provenance(run, used)
    console.print(f"augment: paraphrase with {run.root} ({used.name}), mode {cfg.paraphrase.mode}, "
                  f"temperature {cfg.paraphrase.temperature}, top-k {cfg.paraphrase.top_k}")


provide("paraphrase", prepare)
