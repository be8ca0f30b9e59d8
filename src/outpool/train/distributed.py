"""Multi-GPU (or multi-process CPU) training through torch.distributed, started by torchrun.

    torchrun --nproc_per_node=4 -m outpool.cli train-ranker DATA --out RUN ...

Each process trains a replica wrapped in DistributedDataParallel on every ``world``-th batch of
the same seeded order (so the effective batch is ``batch_size * world``); all replicas stay
identical, so they all evaluate the same and stop together; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def from_env() -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)
