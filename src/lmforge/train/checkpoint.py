"""Checkpoints: weights in safetensors, optimizer and RNG state beside them, written atomically.

A checkpoint folder is written under a temporary name and renamed when complete; state.json
(written last) holds a sha256 per file so a truncated or corrupt checkpoint is detected and
the previous valid one is used instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.rundir import atomic_write_json, file_sha256

STEP_PREFIX = "step-"


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without tied duplicates (safetensors refuses shared storage)."""
    out, seen = {}, {}
    for name, t in model.state_dict().items():
        key = t.data_ptr()
        if key in seen and t.shape == out[seen[key]].shape:
            continue
        seen[key] = name
        out[name] = t.detach().contiguous().cpu()
    return out


def save_checkpoint(folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    extra_state: dict[str, Any], rng: dict[str, torch.Tensor], keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{STEP_PREFIX}{step}"
    tmp = folder / f".{STEP_PREFIX}{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_model_tensors(model), str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    save_file({k: v.contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
    files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
    atomic_write_json(tmp / "state.json", {"step": step, "files": files, **extra_state})
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _prune(folder, keep)
    return final


def _prune(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def list_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoint folders, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)
             and p.name[len(STEP_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def verify(path: Path) -> str | None:
    """Why a checkpoint cannot be used, or None when every file matches its checksum."""
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"state.json unreadable ({exc})"
    for name, digest in state.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if file_sha256(f) != digest:
            return f"{name} does not match its checksum"
    return None


def latest_valid(folder: Path, warn: Any = print) -> Path | None:
    """The newest checkpoint that verifies; corrupt ones are reported and passed over."""
    for path in reversed(list_checkpoints(folder)):
        problem = verify(path)
        if problem is None:
            return path
        warn(f"checkpoint {path} is unusable: {problem}; trying the previous one")
    return None


def load_weights(path: Path, model: nn.Module) -> None:
    tensors = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {n for n in missing if n.endswith("head.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}")


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore weights (and optimizer) in place; return (state.json, rng tensors)."""
    load_weights(path, model)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    state = json.loads((path / "state.json").read_text())
    return state, load_file(str(path / "rng.safetensors"))
