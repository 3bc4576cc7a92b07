"""The base a fine-tune starts from: an lmforge run (its newest valid checkpoint), one checkpoint
folder of a run, or a local Hugging Face folder. Its tokenizer comes with it, and a base whose
shape or tokenizer does not fit is refused before any training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from lmforge.config.load import load_config, model_config
from lmforge.config.schema import ModelConfig
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.models.common import LanguageModel
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir, file_sha256
from lmforge.tokens.tokenizer import load_tokenizer
from lmforge.train import checkpoint as ckpt

# keys a fine-tune may set differently from its base: they change training, not the weights' shape
FREE_MODEL_KEYS = ("dropout", "init", "init_std", "init_fan_mode", "init_overrides", "size")


@dataclass(frozen=True)
class Base:
    kind: str  # "run", "checkpoint" or "hf"
    path: Path
    model: ModelConfig
    tokenizer: Path
    weights: Path  # the checkpoint folder, or the Hugging Face folder

    def lineage(self) -> dict[str, Any]:
        """What a run derived from this base records about it."""
        files = sorted(self.weights.glob("model*.safetensors"))
        out: dict[str, Any] = {"kind": self.kind, "path": str(self.path.resolve()), "weights": str(self.weights.resolve()),
                               "tokenizer_sha256": file_sha256(self.tokenizer),
                               "weights_sha256": {f.name: file_sha256(f) for f in files}}
        state = self.weights / "state.json"
        if state.is_file():
            import json

            out["step"] = json.loads(state.read_text()).get("step")
        return out


def resolve_base(path: Path) -> Base:
    """Recognise what `path` is and where its weights, shape and tokenizer are."""
    path = Path(path)
    if not path.exists():
        raise LmforgeError(f"base not found: {path}", "give an lmforge run directory, one of its "
                           "checkpoints/step-N folders, or a Hugging Face model folder")
    if (path / "state.json").is_file() and (path.parent.name == "checkpoints"):
        run = RunDir(path.parent.parent)
        return Base("checkpoint", path, _run_model(run), run.tokenizer, path)
    if (path / "config.yaml").is_file():
        run = RunDir(path)
        latest = ckpt.latest_valid(run.checkpoints, warn=lambda m: console.print(f"[yellow]{m}"))
        if latest is None:
            raise LmforgeError(f"the base run {path} has no valid checkpoint", f"train it first: lmforge train {path}")
        return Base("run", path, _run_model(run), run.tokenizer, latest)
    if (path / "config.json").is_file():
        return Base("hf", path, model_config(init_from=str(path)), path / "tokenizer.json", path)
    raise LmforgeError(f"{path} is not a base lmforge can start from: no config.yaml (a run), state.json "
                       "(a checkpoint) or config.json (a Hugging Face folder)",
                       "give an lmforge run directory, one of its checkpoints/step-N folders, or a Hugging Face "
                       "model folder")


def _run_model(run: RunDir) -> ModelConfig:
    return load_config(run.config).model


def check_model_keys(base: Base, mine: ModelConfig) -> None:
    """A fine-tune's model section must describe the base's weights: only keys that do not change
    the weights' shape (dropout, init) may differ."""
    theirs = base.model.model_dump()
    ours = mine.model_dump()
    wrong = [f"model.{k}={ours[k]!r} (the base has {theirs[k]!r})" for k in theirs
             if k not in FREE_MODEL_KEYS and ours[k] != theirs[k]]
    if wrong:
        raise LmforgeError(f"the fine-tune's model section does not fit the base {base.path}: {'; '.join(wrong)}",
                           "drop those model.* keys: the base decides the shape (only model.dropout may change)")


def base_tokenizer(base: Base) -> Tokenizer:
    if not base.tokenizer.is_file():
        raise LmforgeError(f"the base {base.path} has no tokenizer at {base.tokenizer}",
                           "a base must bring the tokenizer its weights were trained with")
    return load_tokenizer(base.tokenizer)


def load_backbone(base: Base, model_cfg: ModelConfig, tok: Tokenizer, pretrained: bool = True,
                  seed: int = 0) -> LanguageModel:
    """The base's model with its weights (or, `pretrained` off, the same shape freshly
    initialised: the from-scratch baseline). The tokenizer must have exactly as many tokens as
    the weights have rows, unless the base's config says its rows are padded (model.vocab_size)."""
    vocab = tok.get_vocab_size(with_added_tokens=True)
    torch.manual_seed(seed)
    model = build_model(model_cfg, vocab)
    if not isinstance(model, LanguageModel):
        raise LmforgeError(f"model family '{model_cfg.family}' cannot be fine-tuned here")
    # a Hugging Face folder's config.json sets model.vocab_size, and its loader checks the rows
    rows = model.tok_emb.weight.shape[0]
    theirs = rows if base.kind == "hf" else int(ckpt.read_weights(base.weights)["tok_emb.weight"].shape[0])
    if model_cfg.vocab_size is None and theirs != rows:
        extra = f" (+{rows - vocab} special rows of the family)" if rows != vocab else ""
        raise LmforgeError(f"the base's tokenizer ({base.tokenizer}) has {vocab} tokens{extra} but its weights "
                           f"({base.weights}) have {theirs} embedding rows: they were not trained together",
                           "use the tokenizer that came with the weights")
    if pretrained:
        if base.kind == "hf":
            from lmforge.models.hf import load_folder_weights

            load_folder_weights(model, base.weights)
        else:
            ckpt.load_weights(base.weights, model)
    return model
