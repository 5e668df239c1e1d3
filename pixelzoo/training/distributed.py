"""Data-parallel training over several processes (``torchrun --nproc_per_node=N -m pixelzoo train ...``).

Every process holds the whole model and the same weights (same seed, same updates). The batch of a
step is the same global batch as in one process (same permutation, same flips); process ``r`` of
``W`` takes its rows ``r, r + W, ...``, and the gradients are averaged across processes before the
clipping and the optimizer step, so with equal shards the update is that of the global batch (up to
the order of float additions; tested). Random draws inside a step (dropout, PixelIQN's tau) are
seeded per (seed, step, process). Only process 0 writes: run directory, checkpoints, metrics,
samples and evaluations. The vector quantiser all-reduces its EMA statistics itself.

One code path on every device: on GPUs the processes talk over NCCL, one process per GPU (process
``LOCAL_RANK`` of a machine uses ``cuda:LOCAL_RANK``); on CPUs over gloo.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import ConfigError


def backend_for(device: torch.device) -> str:
    """The process group's backend for training on ``device``: NCCL on GPUs, gloo on CPUs."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: torch.device | str = "cpu") -> None:
    """Join the process group ``torchrun`` describes if there is one and it is not joined: NCCL when
    training on ``device`` a GPU (this process's, which becomes the current CUDA device), else gloo."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives (and object broadcasts) use the current GPU
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend_for(device))


def _comm_device() -> torch.device:
    """Where the tensors of collectives live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def finish() -> None:
    """Leave the process group (at the end of ``pixelzoo train`` under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def broadcast_object(obj):
    """Process 0's ``obj`` on every process."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def any_process(flag: bool) -> bool:
    """True on every process when ``flag`` is True on any (a decision all must take together)."""
    if not active():
        return bool(flag)
    t = torch.tensor(1.0 if flag else 0.0, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def max_over_processes(value: int) -> int:
    """The largest ``value`` over the processes, on every process (e.g. the signal any has received)."""
    if not active():
        return int(value)
    t = torch.tensor(float(value), device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def shard(batch_rows: int) -> slice:
    """This process's rows of a global batch of ``batch_rows``."""
    w = world_size()
    if batch_rows % w:
        raise ConfigError(f"the batch of {batch_rows} images does not split evenly over {w} processes; "
                          f"use a train.batch_size divisible by {w}")
    return slice(rank(), None, w)


@torch.no_grad()
def average_gradients(model: torch.nn.Module) -> None:
    """Replace every gradient by its mean over the processes (one all-reduce of a flat buffer)."""
    if not active():
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def average_scalars(values: dict) -> dict:
    """The mean over processes of each scalar (tensor or float) of ``values``, as tensors."""
    if not active() or not values:
        return values
    keys = list(values)
    device = _comm_device()
    t = torch.stack([torch.as_tensor(values[k]).detach().to(device, torch.float64).reshape(()) for k in keys])
    dist.all_reduce(t)
    t /= world_size()
    return {k: t[i] for i, k in enumerate(keys)}
