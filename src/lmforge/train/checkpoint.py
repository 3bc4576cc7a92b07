"""Checkpoints: weights in safetensors, optimizer and RNG state beside them, written atomically.

A checkpoint folder is written under a temporary name and renamed when complete (every file
synced to the disk first, the folder after: rundir.durable_replace); state.json
(written last) holds a sha256 per file so a truncated or corrupt checkpoint is detected and
the previous valid one is used instead.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.rundir import atomic_write_json, durable_replace, file_sha256, member

STEP_PREFIX = "step-"
CARRIED_FILE = "carried.safetensors"
UNUSABLE_DIR = "unusable"  # checkpoints a resume passed over (set_aside_after)


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without tied duplicates (safetensors refuses shared storage)."""
    return _dedupe(model.state_dict())


def tied_aliases(model: nn.Module) -> set[str]:
    """Names of parameters that are another parameter under a second name (tied weights)."""
    seen: set[int] = set()
    aliases: set[str] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            aliases.add(name)
        seen.add(id(p))
    return aliases


def staging_dir(folder: Path, step: int) -> Path:
    """Where checkpoint `step` is assembled before the rename that publishes it."""
    return folder / f".{STEP_PREFIX}{step}.tmp"


def save_checkpoint(folder: Path, step: int, model: nn.Module | dict[str, torch.Tensor] | None,
                    optimizer: torch.optim.Optimizer | dict[str, Any] | None,
                    extra_state: dict[str, Any], rng: dict[str, torch.Tensor], keep: int,
                    carried: dict[str, torch.Tensor] | None = None) -> Path:
    """Write checkpoints/step-N/ under a temporary name, then rename it into place.

    `carried` is a recurrent model's hidden state between windows (truncated BPTT), kept in
    carried.safetensors so a resume continues it instead of restarting from zeros.

    `model` and `optimizer` may be modules/optimizers or ready state dicts (the trainer passes
    full, gathered state dicts so one format serves one process, DDP and FSDP). `model=None`
    means every process has already written its DCP shards into `staging_dir` (train/sharded.py);
    the rest (RNG, state, checksums of every file, the rename) is the same."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{STEP_PREFIX}{step}"
    tmp = staging_dir(folder, step)
    if model is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        tensors = _model_tensors(model) if isinstance(model, nn.Module) else _dedupe(model)
        save_file(tensors, str(tmp / "model.safetensors"))
    if optimizer is not None:
        optim_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
        with open(tmp / "optimizer.pt", "wb") as fh:
            torch.save(optim_state, fh)
    save_file({k: v.contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
    if carried:
        save_file({k: v.contiguous() for k, v in carried.items()}, str(tmp / CARRIED_FILE))
    files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
    atomic_write_json(tmp / "state.json", {"step": step, "files": files, **extra_state})
    if final.exists():
        shutil.rmtree(final)
    durable_replace(tmp, final)  # every file synced before the rename, the folder after it
    _prune(folder, keep)
    return final


def _dedupe(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies without tied duplicates (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    for name, t in state.items():
        key = t.data_ptr()
        if key in seen and t.shape == out[seen[key]].shape:
            continue
        seen[key] = name
        out[name] = t.detach().contiguous().cpu()
    return out


def checkpoint_val_loss(path: Path) -> float | None:
    try:
        val = json.loads((path / "state.json").read_text()).get("val_loss")
    except (OSError, json.JSONDecodeError):
        return None
    return float(val) if val is not None else None


def _prune(folder: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints and the one with the lowest validation loss."""
    found = list_checkpoints(folder)
    scored = [(v, p) for p in found if (v := checkpoint_val_loss(p)) is not None and math.isfinite(v)]
    best = min(scored, key=lambda vp: vp[0])[1] if scored else None
    for old in found[:-keep]:
        if old != best:
            shutil.rmtree(old, ignore_errors=True)


def best_checkpoint(folder: Path) -> Path | None:
    """The valid checkpoint with the lowest recorded validation loss."""
    scored = [(v, p) for p in list_checkpoints(folder)
              if (v := checkpoint_val_loss(p)) is not None and verify(p) is None]
    return min(scored, key=lambda vp: vp[0])[1] if scored else None


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
    if state.get("good") is False:
        return f"marked not good ({state.get('why', 'non-finite values')})"
    for name, digest in state.get("files", {}).items():
        f = member(path, name)
        if f is None:
            return f"state.json names {name!r}, a file outside the checkpoint folder"
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


def set_aside_after(folder: Path, step: int) -> list[Path]:
    """Move the checkpoints after `step` into folder/unusable/. A resume from `step` passed over
    them as unusable and writes those steps anew; left in place, pruning would count them among
    the newest and delete valid ones instead. Moved, not deleted: nothing is lost silently."""
    moved = []
    for path in list_checkpoints(folder):
        if int(path.name[len(STEP_PREFIX):]) > step:
            dest = folder / UNUSABLE_DIR / path.name
            dest.parent.mkdir(exist_ok=True)
            shutil.rmtree(dest, ignore_errors=True)
            path.rename(dest)
            moved.append(dest)
    return moved


def load_weights(path: Path, model: nn.Module) -> None:
    """Load a checkpoint's weights (safetensors or DCP shards) into `model`; a checkpoint of
    another shape is a clear error."""
    tensors = read_weights(path)
    check_fits(path, {k: tuple(v.shape) for k, v in tensors.items()}, model)
    model.load_state_dict(tensors, strict=False)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's full model tensors by name, from either format."""
    from lmforge.train import sharded

    return sharded.full_weights(path) if sharded.is_sharded(path) else load_file(str(path / "model.safetensors"))


def check_fits(path: Path, shapes: dict[str, tuple[int, ...]], model: nn.Module) -> None:
    """Fail before training when a checkpoint's tensor names or shapes differ from the model's."""
    own = model.state_dict()
    missing = set(own) - set(shapes) - tied_aliases(model)
    unexpected = set(shapes) - set(own)
    wrong = [f"{k} {tuple(shapes[k])} vs model {tuple(own[k].shape)}" for k in shapes
             if k in own and tuple(shapes[k]) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(filter(None, [
            f"missing {sorted(missing)[:4]}" if missing else "",
            f"unexpected {sorted(unexpected)[:4]}" if unexpected else "",
            f"shape {wrong[:3]}" if wrong else ""]))
        from lmforge.errors import LmforgeError

        raise LmforgeError(f"checkpoint {path} does not fit this model: {detail}",
                           "the model section differs from the run that wrote it; restore that config, "
                           "or train afresh without --resume")
