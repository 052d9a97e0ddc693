"""Data parallelism across processes, started by `accelerate launch`.

    accelerate launch --num_processes 2 -m components.train --dataset data/ --out adapters/

Each process takes its share of every micro-batch; the LoRA gradients (small: about a
million numbers for SmolLM2) are summed across processes after each backward pass,
with the loss scaled by the global count of response tokens, so the update equals the
single-process one. Only the main process writes. Run alone, it is a no-op.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def state():
    import torch
    from accelerate import PartialState

    # Sets up the process group when launched: nccl on GPUs; gloo on CPUs, where
    # accelerate needs `cpu=True` to see a multi-process launch at all.
    return PartialState(cpu=not torch.cuda.is_available())


def world() -> int:
    return state().num_processes


def rank() -> int:
    return state().process_index


def is_main() -> bool:
    return state().is_main_process


def shard(indices: list[int]) -> list[int]:
    """This process's rows of a micro-batch."""
    return indices[rank() :: world()]


def sum_(value: float) -> float:
    if world() == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item())


def sum_gradients(params) -> None:
    if world() == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)


def barrier() -> None:
    if world() > 1:
        state().wait_for_everyone()
