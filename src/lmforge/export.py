"""Export: a run's newest checkpoint as a Hugging Face model folder (`lmforge export --format hf`).

The weight name maps and the config translation live in models/hf.py; this module only reads
the run directory and writes the folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.evaluate.score import load_trained
from lmforge.models.hf import require_transformers, to_hf
from lmforge.rundir import RunDir


def export_run(run_dir: Path, out: Path, force: bool = False) -> dict[str, Any]:
    """Write the newest checkpoint of a run as a Hugging Face folder: config.json, model.safetensors,
    tokenizer files. Returns a summary for the CLI. The folder is written under a temporary name
    and renamed when complete, so a crash leaves the old folder (or none), never half of one."""
    tf = require_transformers()
    run = RunDir(run_dir)
    out = Path(out)
    _check_target(out, force)
    if not run.config.is_file():
        raise LmforgeError(f"{run_dir} is not a run directory (no config.yaml)", "train a model first: lmforge run")
    cfg = load_config(run.config)
    model, tok, latest = load_trained(run, cfg)
    model = model.float().cpu()
    # the run's special tokens (packing wrote bos before and eos after each document), so
    # config.json's ids and the tokenizer's named tokens are the ones the model was trained with
    specials = {f"{kind}_token": token for kind, token in (("eos", cfg.tokenizer.eos_token),
                ("bos", cfg.tokenizer.bos_token), ("pad", cfg.tokenizer.pad_token)) if token}
    ids = {f"{key[:3]}_id": tok.token_to_id(token) for key, token in specials.items()}
    hf = to_hf(model, **ids)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=cfg.model.block_size, **specials)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        hf.save_pretrained(str(tmp))
        fast.save_pretrained(str(tmp))
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"checkpoint": latest.name, "architecture": type(hf).__name__, "out": str(out)}


def _check_target(out: Path, force: bool) -> None:
    """A file or a folder with anything in it (a model.init_from source, say) is kept unless --force."""
    if out.exists() and not out.is_dir():
        raise LmforgeError(f"cannot export to {out}: it is a file, and the export is a folder",
                           "give a new or empty folder to write config.json and model.safetensors into")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise LmforgeError(f"cannot export to {out}: the folder is not empty",
                           "give a new or empty folder, or add --force to replace its contents")


def _replace_folder(new: Path, out: Path) -> None:
    """Put the complete folder `new` at `out`; an old `out` is moved aside first and removed last."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
