"""Process groups and model wrapping: DDP or FSDP2 (`fully_shard`) under torchrun, plus
activation checkpointing and torch.compile, which wrap the model the same way in one process.

Data is sharded by slicing: every process draws the same global batch from the same seeded
loader and keeps its own rows (see Trainer), so the samples a step sees do not depend on the
world size and a run can resume on a different number of processes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from lmforge.config.schema import TrainConfig
from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits. rank 0 logs and writes checkpoints."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "single"  # single | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.mode != "single"


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_distributed(cfg: TrainConfig) -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), or stay single."""
    if not launched_by_torchrun():
        if cfg.distributed == "fsdp" and not dist.is_initialized():
            raise LmforgeError("train.distributed=fsdp needs a process group, and none was started",
                               "launch with `torchrun --nproc_per_node N -m lmforge train RUN ...`, "
                               "or set train.distributed=ddp for one process")
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg.device in ("auto", "cuda") and torch.cuda.is_available()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise LmforgeError("train.device=cuda but no CUDA device is visible", "use train.device=cpu")
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, cfg.distributed)


def device_for(cfg: TrainConfig, info: DistInfo) -> torch.device:
    """The device this process trains on; 'auto' prefers CUDA."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise LmforgeError("train.device=cuda but no CUDA device is visible", "use train.device=cpu or auto")
        return torch.device("cuda", info.local_rank if info.active else torch.cuda.current_device())
    if name == "mps" and not torch.backends.mps.is_available():
        raise LmforgeError("train.device=mps but MPS is not available", "use train.device=cpu or auto")
    return torch.device(name)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The repeated layers of a model: children of a ModuleList named blocks/layers/h."""
    for name in ("blocks", "layers", "h"):
        mods = getattr(model, name, None)
        if isinstance(mods, nn.ModuleList):
            return list(mods)
    return []


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Recompute each block's activations in backward instead of storing them (Chen et al. 2016):
    memory per block drops to its input, at the cost of one more forward. The state-dict keys stay
    the same, so checkpoints move freely between runs with and without it."""
    blocks = blocks_of(model)
    for block in blocks:
        inner = block.forward
        block.forward = functools.partial(checkpoint, inner, use_reentrant=False)  # type: ignore[method-assign]
    return len(blocks)


def wrap_model(model: nn.Module, cfg: TrainConfig, info: DistInfo) -> nn.Module:
    """Activation checkpointing, then DDP or FSDP2, then torch.compile, as configured.
    Build the optimizer after this call: FSDP replaces parameters by sharded DTensors."""
    if cfg.activation_checkpointing and not apply_activation_checkpointing(model):
        raise LmforgeError("train.activation_checkpointing: this model has no `blocks`/`layers` list to checkpoint",
                           "turn it off for this model family")
    wrapped = model
    if info.mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        device = next(model.parameters()).device
        mesh = init_device_mesh(device.type, (info.world,))
        for block in blocks_of(model):  # shard block by block so only one block is gathered at a time
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    elif info.mode == "ddp":
        device = next(model.parameters()).device
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        wrapped = torch.compile(wrapped)  # type: ignore[assignment]
    return wrapped


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile and DDP (FSDP2 shards in place, so it is the module)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.active and info.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.active and info.world > 1:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
