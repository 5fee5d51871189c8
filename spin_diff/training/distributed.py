"""torchrun / DDP for the training loop, and the gathering of every rank's fit updates.

``torchrun --nproc-per-node N -m spin_diff.cli.main train ...`` starts N processes; each
reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` from the environment.
The process group uses NCCL on CUDA and gloo on CPU. Every rank trains on its own part of
each global batch (:class:`~spin_diff.training.sampler.EpochBatchSampler`), fits its own rows, and
the ranks' fit updates are all-gathered as one packed tensor per step, so that the first
process of every node (``LOCAL_RANK == 0``) can write all of them into its node's store:
LMDB does not work over network file systems, so each node keeps a local store and all of
them receive every update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from spin_diff.errors import BadInputError
from spin_diff.utils.ranks import env_int

__all__ = ["DistributedContext", "init_distributed", "gather_rows", "all_reduce_sum", "barrier", "shutdown"]


@dataclass
class DistributedContext:
    """Where this process stands in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The one process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def writes_store(self) -> bool:
        """One process per node writes that node's fit store."""
        return self.local_rank == 0


def init_distributed(device: str = "cpu") -> DistributedContext:
    """Join torchrun's process group if ``WORLD_SIZE`` > 1; pick this process's device.

    On CUDA each process takes GPU ``LOCAL_RANK`` (NCCL); on CPU gloo is used.
    """
    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    local_rank = env_int("LOCAL_RANK", 0)
    local_world = env_int("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world:
        raise BadInputError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process group")
    target = torch.device(device)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError("device is cuda but no CUDA device is available: pass --device cpu")
        target = torch.device("cuda", local_rank if world > 1 else (target.index or 0))
        torch.cuda.set_device(target)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=target if target.type == "cuda" else None)
    return DistributedContext(rank, world, local_rank, local_world, target)


def gather_rows(context: DistributedContext, rows: torch.Tensor) -> torch.Tensor:
    """Every rank's ``(B, K)`` rows stacked in rank order ``(W * B, K)`` (all ranks get all)."""
    if not context.enabled:
        return rows
    parts = [torch.empty_like(rows) for _ in range(context.world_size)]
    dist.all_gather(parts, rows.contiguous())  # gloo and NCCL both have it
    return torch.cat(parts)


def all_reduce_sum(context: DistributedContext, value: torch.Tensor) -> torch.Tensor:
    """Sum of a tensor over the ranks (for logging)."""
    if not context.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
