"""Data parallelism over processes (``torchrun``): which rank this is, its shard of a step, collectives.

Why: one update of N processes must be the update of one process on the union batch, for every
balancing method. Every rank draws the same step (the sampler, the pools' shuffles and the task set
are seeded alike), then keeps its shard of the step's examples: within an epoch no example is seen
by two ranks. The step's micro-batches (``training.accumulate``) are shards too, taken by the same
rule, so accumulation and ranks are one mechanism. The balancer's reduce hook
(``balancing.reduce.GradientReduce``) makes the statistics global. gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from polytask.data.batching import Batch, collate
from polytask.data.example import Example
from polytask.errors import ConfigError


@dataclass
class DataParallel:
    """This process's place among ``world`` data-parallel ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def current(cls) -> DataParallel:
        """The initialised process group's view (rank 0 of 1 outside ``torchrun``)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        return cls()

    # ------------------------------------------------------------------ shards of a step
    def step_batches(self, selected: Sequence[str], examples: Sequence[Example], featurizer: Any,
                     tasks: Mapping[str, Any], accumulate: int = 1) -> StepBatches:
        """This rank's micro-batches of the step's ``examples``: shard k·world + rank of accumulate·world.

        Example i goes to shard i mod (accumulate·world) (strided, so every shard mixes the step's pools).
        """
        shards = accumulate * self.world
        if len(examples) < shards:
            raise ConfigError(f"a step holds {len(examples)} examples, fewer than the {shards} shards "
                              f"(training.accumulate × processes) it is split into; raise training.batch_size",
                              field="training.batch_size")
        chosen = {t: tasks[t] for t in selected}
        present = [t for t in selected if any(e.labels.get(t) is not None for e in examples)]
        positions = [list(range(k * self.world + self.rank, len(examples), shards)) for k in range(accumulate)]
        micro = [collate([examples[i] for i in where], featurizer, chosen) for where in positions]
        return StepBatches(micro, present, positions)

    def shard(self, items: Sequence[Any]) -> list[Any]:
        """This rank's part of ``items`` (strided): evaluation's shard."""
        return list(items[self.rank :: self.world])

    def unshard(self, parts: Sequence[Any], total: int) -> list[Any]:
        """The inverse of ``shard``: every rank's part gathered, back in the original order."""
        if not self.distributed:
            return list(parts)
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, list(parts))
        out: list[Any] = [None] * total
        for rank, items in enumerate(gathered):
            out[rank :: self.world] = items
        return out

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_parameters(self, tensors: Sequence[torch.Tensor]) -> None:
        """Rank 0's values on every rank (the same seed initialises alike; this makes sure)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def broadcast_object(self, value: Any) -> Any:
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


@dataclass
class StepBatches:
    """One update's micro-batches on this rank, and the tasks present in the whole step (on any rank).

    ``positions[k]`` holds the index, in the whole step, of each example of micro-batch k (default:
    one micro-batch holding the whole step).
    """

    micro: list[Batch]
    present: list[str]
    positions: list[list[int]] | None = None

    def to(self, device: torch.device) -> StepBatches:
        return StepBatches([b.to(device) for b in self.micro], self.present, self.positions)

    def example_positions(self) -> list[torch.Tensor]:
        """Per micro-batch: its examples' indices in the whole step (int64, CPU)."""
        if self.positions is None:
            return [torch.arange(len(b.examples)) for b in self.micro]
        return [torch.tensor(where, dtype=torch.int64) for where in self.positions]


def under_torchrun() -> bool:
    """Whether ``torchrun`` started this process as one of several ranks (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def refuse_torchrun(command: str) -> None:
    """A one-line error when ``command`` (one that trains many runs itself) was started by ``torchrun``.

    Why: each rank would train every run of the comparison on its own; the runs are spread with
    ``--jobs`` (worker processes) or ``--backend ray`` (a cluster) instead.
    """
    if under_torchrun():
        from polytask.errors import PolytaskError

        raise PolytaskError(f"polytask {command} trains many runs itself and does not run under torchrun: start it as "
                            "one process and spread its runs with --jobs N (worker processes) or --backend ray")


def restarted() -> bool:
    """Whether ``torchrun --max-restarts`` started this process again after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def init_process_group(device_name: str) -> DataParallel:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); one process otherwise.

    gloo for CPU devices, NCCL for CUDA. A group already initialised is reused.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not under_torchrun() or dist.is_initialized():
        return DataParallel.current()
    from polytask.training.device import collective_backend, is_cuda, resolve_device

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank=local_rank)
    backend = collective_backend(device)
    if is_cuda(device):
        torch.cuda.set_device(device)
    rank = int(os.environ["RANK"])
    # Keys under this attempt's prefix: a group restarted by torchrun --max-restarts must not read
    # the addresses its dead predecessors left in the store.
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=not agent_store and rank == 0, multi_tenant=not agent_store)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"polytask/attempt-{attempt}", store),
                            rank=rank, world_size=world)
    return DataParallel.current()


__all__ = ["DataParallel", "StepBatches", "init_process_group", "refuse_torchrun", "restarted", "under_torchrun"]
