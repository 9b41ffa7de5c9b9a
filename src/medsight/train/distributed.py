"""Distributed data-parallel plumbing for the training engine (torchrun, gloo on CPU, NCCL on CUDA).

``init_from_env`` reads the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins the process group and returns a `DistributedContext`.
Outside torchrun it returns a single-process context, so the same script runs with or without it::

    ctx = init_from_env()
    try:
        Trainer(model, config, distributed=ctx).fit(train, val)
    finally:
        ctx.cleanup()
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from medsight.errors import ConfigError

__all__ = [
    "DistributedContext",
    "ShardedSampler",
    "current_context",
    "exit_after_distributed_run",
    "init_from_env",
    "launch_rank",
]


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # True when init_from_env created the process group (cleanup ends it)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank reaches this point (no-op in a single process)."""
        if not self.is_distributed:
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` as held by rank ``src``, on every rank (picklable objects)."""
        if not self.is_distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.is_distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_tensors(self, tensors: list[torch.Tensor], src: int = 0) -> None:
        """Overwrite ``tensors`` in place with rank ``src``'s values (on this rank's device)."""
        if self.is_distributed:
            for tensor in tensors:
                dist.broadcast(tensor, src=src)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (it must live on this rank's device)."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def cleanup(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False

    def __enter__(self) -> DistributedContext:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # after a clean run every rank waits for the others before the group is torn down, so
        # that none closes its connections while a peer's last collective is still in flight (a
        # gloo rank can abort at exit otherwise); after an error the peers may be gone: no wait
        if exc_type is None and self.owns_group and self.is_distributed:
            self.barrier()
        self.cleanup()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def _local_device(backend: str, local_rank: int) -> torch.device:
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_from_env(backend: str | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment, or return a one-process context.

    ``backend`` defaults to NCCL when CUDA is available and gloo otherwise. With NCCL each rank
    uses the GPU ``cuda:LOCAL_RANK``; with gloo the device is the CPU.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size <= 1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return DistributedContext(device=device)
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    if "MASTER_ADDR" not in os.environ and not dist.is_initialized():
        raise ConfigError(
            f"WORLD_SIZE={world_size} but MASTER_ADDR is not set: start the script with "
            "`torchrun --nproc_per_node N script.py` (or python -m torch.distributed.run)"
        )
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError("backend 'nccl' needs CUDA; use backend='gloo' on CPU")
    device = _local_device(backend, local_rank)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
    return DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        backend=dist.get_backend(),
        device=device,
        owns_group=owns,
    )


def exit_after_distributed_run(code: int = 0) -> None:
    """End a torchrun worker that has finished cleanly, skipping the interpreter's teardown.

    Does nothing outside torchrun (``WORLD_SIZE`` <= 1). Written by hand because torch 2.13 has no
    fix: wrapping a model in ``DistributedDataParallel`` keeps the gloo process group alive after
    ``destroy_process_group`` (its ``gloo_tcp_loop`` and ``pt_gloo_runloop`` threads keep running),
    and tearing those down at interpreter exit occasionally aborts a rank with "terminate called
    without an active exception" (SIGABRT) after the work is done and saved. Call it only after
    the process group has been destroyed and every output written: streams and logging are flushed
    here, then the process ends with ``os._exit(code)``.
    """
    if _env_int("WORLD_SIZE", 1) <= 1:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def launch_rank() -> int:
    """This process's rank as torchrun launched it (0 outside torchrun)."""
    return _env_int("RANK", 0)


def current_context() -> DistributedContext:
    """A context for the process group already initialised by the caller, else a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return DistributedContext(device=device)
    backend = str(dist.get_backend())
    local_rank = _env_int("LOCAL_RANK", 0)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=backend,
        device=device,
    )


class ShardedSampler(Sampler[int]):
    """Every rank's share of one draw from a base sampler that every rank repeats identically.

    Written by hand because torch's ``DistributedSampler`` only shuffles; this lets any seeded
    sampler (e.g. ``WeightedRandomSampler``) run under DDP. The caller reseeds the base sampler's
    generator identically on every rank each epoch; the draw is padded by repetition to a multiple
    of the world size so that every rank runs the same number of batches (DDP needs that).
    """

    def __init__(self, base: Sampler[int], rank: int, world_size: int) -> None:
        self.base = base
        self.rank = rank
        self.world_size = world_size
        self.per_rank = math.ceil(len(base) / world_size)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        indices = list(self.base)
        total = self.per_rank * self.world_size
        while indices and len(indices) < total:
            indices += indices[: total - len(indices)]
        return iter(indices[self.rank : total : self.world_size])

    def __len__(self) -> int:
        return self.per_rank
