"""The reduce hook of a balancer: what its statistics are across data-parallel ranks, and the loss scale.

Why: every balancing method must give, on N processes, the update one process gives on the union
batch. A rank's per-task losses carry, as values, the global losses, and as gradients ``world`` times
the rank's share of them (``global_losses``), so that the mean over ranks of any gradient is the
gradient on the union batch. Methods then read statistics through this hook: per-task gradients
averaged across ranks (``task_gradients_``), representation Gramians summed (``gramian_``), and the
fp16 loss scale applied to every backward pass (``backward``, ``seed``) and taken out of what a method
reads. One process (``world == 1``) with no loss scale makes every call the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.torch_private import foreach_div_


class GradientReduce:
    """Combines a step's per-rank statistics (a no-op for one process) and holds the loss scale.

    ``group`` is a ``torch.distributed`` process group (``None``: the default group when
    ``world > 1``). ``scale`` is set by the trainer each step (fp16's dynamic loss scale, else 1).
    ``communicated`` counts the bytes this hook all-reduced, for benchmarks.
    """

    def __init__(self, world: int = 1, group: Any = None, device: torch.device | None = None):
        self.world, self.group = int(world), group
        self.device = device  # where collectives run (NCCL: the rank's GPU); None: where the tensors are
        self.scale = 1.0
        self.communicated = 0
        self._synced: set[int] = set()

    @property
    def distributed(self) -> bool:
        return self.world > 1

    # ------------------------------------------------------------------ collectives
    def all_reduce_(self, tensors: Sequence[Tensor], average: bool = False) -> None:
        """Sum (or average) ``tensors`` in place across ranks, flattened into one buffer per dtype."""
        if not self.distributed or not tensors or all(t.numel() == 0 for t in tensors):
            return
        import torch.distributed as dist

        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            if self.device is not None:
                flat = flat.to(self.device)
            dist.all_reduce(flat, group=self.group)
            self.communicated += flat.numel() * flat.element_size()
            if average:
                flat.div_(self.world)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset : offset + n].view(t.shape))
                offset += n

    def union_rows(self, rows: Tensor) -> Tensor:
        """The sorted distinct embedding rows any rank read (every rank's ``rows`` sorted distinct)."""
        if not self.distributed:
            return rows
        import torch.distributed as dist

        device = self.device or rows.device
        size = torch.tensor([rows.numel()], device=device)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        dist.all_gather(sizes, size, group=self.group)
        longest = int(max(int(s) for s in sizes))
        padded = torch.full((longest,), -1, dtype=rows.dtype, device=device)
        padded[: rows.numel()] = rows.to(device)
        gathered = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(gathered, padded, group=self.group)
        self.communicated += (longest * padded.element_size() + size.element_size()) * self.world
        every = torch.cat(gathered)
        return torch.unique(every[every >= 0]).to(rows.device)

    def global_losses(self, shares: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per task: the value Σ_ranks share (the loss on the union batch), the gradient ``world`` × share.

        ``shares[t]`` is this rank's part of task t's loss on the union batch (its local mean loss
        times its fraction of the task's global token or example count). Every rank gets the same
        values, so loss weightings compute the same weights; the mean over ranks of the gradients is
        the union batch's gradient.
        """
        tasks = list(shares)
        if not tasks:
            return {}
        values = torch.stack([shares[t].detach().float() for t in tasks])
        self.all_reduce_([values])
        out = {}
        for task, value in zip(tasks, values):
            share = shares[task] * self.world if self.distributed else shares[task]
            out[task] = share + (value.to(share.dtype) - share.detach())
        return out

    # ------------------------------------------------------------------ backward passes under a loss scale
    def seed(self, loss: Tensor) -> Tensor:
        """``loss`` times the loss scale: what a backward pass starts from (fp16 keeps gradients in range)."""
        return loss * self.scale if self.scale != 1.0 else loss

    def backward(self, loss: Tensor, inputs: Sequence[Tensor] | None = None, retain_graph: bool = False) -> None:
        """``loss.backward()`` under the loss scale (every ``.grad`` then holds scale × gradient)."""
        torch.autograd.backward(self.seed(loss), inputs=list(inputs) if inputs is not None else None,
                                retain_graph=retain_graph)

    def task_gradient(self, loss: Tensor, inputs: Sequence[Tensor]) -> list[Tensor]:
        """One task's gradient of ``inputs`` on the union batch: scaled VJP, mean across ranks, unscaled.

        ``inputs`` the loss does not reach get zeros.
        """
        grads = torch.autograd.grad(self.seed(loss), list(inputs), retain_graph=True, allow_unused=True)
        grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, inputs)]
        self.task_gradients_(grads)
        return grads

    # ------------------------------------------------------------------ statistics methods read
    def task_gradients_(self, blocks: Sequence[Tensor]) -> None:
        """Per-task gradients computed from scaled seeds on this rank's share → the union batch's, in place."""
        self.all_reduce_(blocks, average=True)
        if self.scale != 1.0:
            foreach_div_(blocks, self.scale)

    def gramian_(self, gramian: Tensor) -> Tensor:
        """A Gramian of per-rank rows (representation mode: the ranks' rows are disjoint) → the union's."""
        self.all_reduce_([gramian])
        factor = (self.world * self.scale) ** 2
        if factor != 1.0:
            gramian.div_(factor)
        return gramian

    # ------------------------------------------------------------------ the parameters' gradients
    def mark_synced(self, parameters: Iterable[Tensor]) -> None:
        """``parameters``' ``.grad`` already hold the same union-batch update on every rank."""
        if self.distributed:
            self._synced.update(id(p) for p in parameters)

    def sync_gradients(self, parameters: Iterable[Tensor]) -> None:
        """Average every other ``.grad`` across ranks (DDP's all-reduce), after the balancer's backward.

        A parameter has a gradient after the sync if it had one on any rank.
        """
        synced, self._synced = self._synced, set()
        if not self.distributed:
            return
        params = [p for p in parameters if p.requires_grad and id(p) not in synced]
        if not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
        self.all_reduce_([has])
        chosen = [p for p, h in zip(params, has.tolist()) if h > 0]
        for p in chosen:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.all_reduce_([p.grad for p in chosen], average=True)


__all__ = ["GradientReduce"]
