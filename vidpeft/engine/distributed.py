"""torch.distributed plumbing: the same code runs in one process or under torchrun."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def init() -> torch.device:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); pick the device."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list without torchrun)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def mean(value: float) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world_size()


def any_true(flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (so all ranks stop at the same step)."""
    if not is_distributed():
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()
