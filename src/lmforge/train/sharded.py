"""Sharded checkpoints with PyTorch Distributed Checkpoint (DCP), for models too big to gather.

`train.checkpoint_format=sharded` makes every process write its own shard of the model and
optimizer state (FSDP2 keeps each parameter split across processes, so nothing is gathered on
one rank). DCP records the global layout in `.metadata`, so a run saved on N processes resumes
on M, one included: DCP re-splits each tensor while loading (torchtitan checkpoints the same way).

DCP's `.metadata` file is a pickle. Before DCP reads it, lmforge unpickles it with an allow-list
of DCP's own metadata classes, so a tampered file that names any other callable is refused
instead of run; the checkpoint's checksums (state.json) are verified before that as well.
DCP also keeps non-tensor state (optimizer settings) as torch.save pickles inside the shard files
and reads them with weights_only=False; lmforge's planner reads them with weights_only=True.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lmforge.errors import LmforgeError

METADATA = ".metadata"
MODEL_KEY, OPTIM_KEY = "model", "optim"

# what a DCP metadata pickle is made of (read from torch 2.13's files): its dataclasses, the
# file-layout records, torch.Size/dtypes/layouts, and a path; nothing that runs code. Exact
# (module, name) pairs only: pickle protocol 4 resolves a dotted name as an attribute path, so
# allowing a whole module would let `metadata.torch.os.system` through.
_METADATA_MODULE = "torch.distributed.checkpoint.metadata"
_ALLOWED_NAMES = {*((_METADATA_MODULE, n) for n in (
                      "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
                      "BytesStorageMetadata", "ChunkStorageMetadata", "_MEM_FORMAT_ENCODING")),
                  ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
                  ("torch.serialization", "_get_layout"), ("torch", "Size"), ("pathlib", "PosixPath"),
                  ("pathlib", "WindowsPath"), ("pathlib._local", "PosixPath"), ("pathlib._local", "WindowsPath"),
                  ("collections", "OrderedDict"),
                  *(("torch", str(t).removeprefix("torch.")) for t in (
                      torch.float64, torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.int32,
                      torch.int16, torch.int8, torch.uint8, torch.bool))}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if "." not in name and (module, name) in _ALLOWED_NAMES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a DCP metadata file")


def is_sharded(path: Path) -> bool:
    """True for a checkpoint folder written by `save` (DCP layout) rather than safetensors."""
    return (path / METADATA).is_file()


def read_metadata(path: Path) -> Any:
    """DCP's metadata, read with the allow-list above; a foreign pickle is a clear error."""
    try:
        return _MetadataUnpickler(io.BytesIO((path / METADATA).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise LmforgeError(f"{path / METADATA} is not a DCP metadata file lmforge can read safely ({exc})",
                           "resume only from sharded checkpoints your own runs wrote, or train afresh") from exc


def _model_tensors_meta(path: Path) -> dict[str, Any]:
    prefix = MODEL_KEY + "."
    return {key[len(prefix):]: meta for key, meta in read_metadata(path).state_dict_metadata.items()
            if key.startswith(prefix) and hasattr(meta, "size")}


def model_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Global shape of every model tensor in a sharded checkpoint, keyed like the model's state dict."""
    return {k: tuple(meta.size) for k, meta in _model_tensors_meta(path).items()}


def save(folder: Path, model_sd: dict[str, Any], optim_sd: dict[str, Any]) -> None:
    """Every process writes its shard of model and optimizer state into `folder` (collective)."""
    import torch.distributed.checkpoint as dcp

    with _quiet_single_process():
        dcp.save({MODEL_KEY: model_sd, OPTIM_KEY: optim_sd}, storage_writer=dcp.FileSystemWriter(str(folder)))


def load(path: Path, model_sd: dict[str, Any], optim_sd: dict[str, Any] | None) -> None:
    """Fill the given (possibly sharded) state dicts in place from `path`, whatever the world
    size that wrote it. The optimizer part is skipped when `optim_sd` is None."""
    import torch.distributed.checkpoint as dcp

    read_metadata(path)  # refuses a foreign pickle before DCP unpickles it
    state = {MODEL_KEY: model_sd} if optim_sd is None else {MODEL_KEY: model_sd, OPTIM_KEY: optim_sd}
    planner = _weights_only_planner()
    try:
        with _quiet_single_process():
            dcp.load(state, storage_reader=dcp.FileSystemReader(str(path)), planner=planner)
    except BaseException:  # DCP wraps the planner's error in its CheckpointException, a BaseException
        if planner.refused:
            raise LmforgeError(f"{path} holds {planner.refused}",
                               "resume only from sharded checkpoints your own runs wrote, or train afresh") from None
        raise


def _weights_only_planner() -> Any:
    """DCP's default load planner, but each non-tensor item is first read with weights_only=True
    (plain numbers, strings, tuples, dicts, tensors): a shard that pickles a callable is refused
    before DCP's own weights_only=False read of the same bytes."""
    from torch.distributed.checkpoint import DefaultLoadPlanner

    class WeightsOnlyLoadPlanner(DefaultLoadPlanner):
        refused = ""

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            try:
                torch.load(value, weights_only=True)
            except pickle.UnpicklingError as exc:
                why = next((ln for ln in str(exc).splitlines() if "GLOBAL" in ln), str(exc).splitlines()[0])
                self.refused = f"state lmforge will not unpickle ({read_item.dest_index.fqn}): {why}"
                raise
            value.seek(0)
            super().load_bytes(read_item, value)

    return WeightsOnlyLoadPlanner()


def full_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model's full tensors from a sharded checkpoint, in one process (eval, export, generate)."""
    template = {k: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
                for k, meta in _model_tensors_meta(path).items()}
    load(path, template, None)
    return template


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """Without a process group DCP works in one process and warns that it does; that is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to")
        yield
