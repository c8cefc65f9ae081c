"""Data parallelism over torch.distributed, launched by ``torchrun`` (one node or many).

Gradients are averaged with one all-reduce of a flat buffer per optimiser step, as StyleGAN2-ADA
and EG3D do: unlike wrapping in ``DistributedDataParallel``, this works with the phases that touch
only part of a network (lazy regularisers) and with R1's double backward.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job."""

    rank: int
    """Global rank (0 writes files and logs)."""
    world_size: int
    """Number of processes."""
    local_rank: int
    """Rank on this node (selects the GPU)."""
    device: torch.device
    """Device this rank computes on."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(expected_world_size: int, device: str | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT), or run alone when it is absent.

    Uses NCCL on CUDA and gloo on CPU. ``expected_world_size`` is ``--gpus``: a mismatch with the
    launcher's world size is an error, so a run never silently trains with a different batch.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size != expected_world_size:
        hint = (f"launch with: torchrun --nproc_per_node={expected_world_size} train.py fit ..."
                if world_size == 1 else f"pass --gpus {world_size}")
        raise ValueError(f"--gpus {expected_world_size} but the launcher started {world_size} process(es); {hint}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, torch_device)


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """Average ``.grad`` over ranks in place (one flat all-reduce); non-finite values become finite
    (NaN -> 0, +-inf -> +-1e5), as the official loop does, so one bad batch can't poison the weights."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if world_size > 1:
        dist.all_reduce(flat)
        flat /= world_size
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def broadcast_module(module: torch.nn.Module, world_size: int) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if world_size <= 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def all_reduce_mean(value: torch.Tensor, world_size: int) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging)."""
    if world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world_size
    return value


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
