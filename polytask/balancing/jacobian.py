"""The per-task gradients of one step, kept as blocks: their Gramian, weighted sums and per-coordinate draws.

Why: gradient methods are pure functions of these matrices; the engine's modes produce them and
write the method's update back (``engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from polytask.balancing import torch_private
from polytask.balancing.balancer import RepresentationRows


@dataclass
class TaskJacobian:
    """Per-task gradients of the target tensors: ``rows[i][k]`` is task i's gradient of target k.

    Kept as per-target blocks exactly as autograd returned them (no T×P concatenation): the
    Gramian and the weighted combination are computed block by block; ``matrix()`` concatenates
    only for aggregators that need the flat Jacobian. ``row_indices[k]``, when set, says that
    target k is an embedding table whose blocks hold only the rows it lists (the rest of every
    task's gradient is zero there; see ``row_lookups``); the update is scattered into those rows.
    ``representation_rows[k]``, when set, says where target k's rows sit in the whole step
    (representation mode: the rows are this rank's examples), for ``uniform``.
    """

    tasks: list[str]
    rows: list[list[Tensor]]
    targets: list[Tensor]
    row_indices: list[Tensor | None] | None = None
    representation_rows: list[RepresentationRows] | None = None
    _seed: int | None = field(default=None, repr=False)

    def gramian(self) -> Tensor:
        """G = J Jᵀ, the matrix of pairwise inner products of the task gradients."""
        t = len(self.rows)
        dtype = torch.promote_types(self.rows[0][0].dtype, torch.float32)  # bf16/fp16 rows: sums in fp32
        gramian = self.rows[0][0].new_zeros(t, t, dtype=dtype)
        for k in range(len(self.targets)):
            flat = [row[k].reshape(-1).to(dtype) for row in self.rows]
            if t > 4:
                block = torch.stack(flat)
                gramian += block @ block.T
                continue
            for i in range(t):  # T(T+1)/2 dot products read the blocks faster than one skinny GEMM
                for j in range(i, t):
                    gramian[i, j] += torch.dot(flat[i], flat[j])
        return gramian.triu() + gramian.triu(1).T

    def combine(self, weights: Tensor) -> list[Tensor]:
        """Σ wᵢ gᵢ, one tensor per target."""
        w = weights.tolist()
        total = torch_private.foreach_mul(self.rows[0], w[0])
        for row, wi in zip(self.rows[1:], w[1:]):
            torch_private.foreach_add_(total, row, alpha=wi)
        return total

    def matrix(self) -> Tensor:
        """The T×P Jacobian (a copy), for aggregators that work coordinate by coordinate."""
        return torch.stack([torch.cat([g.reshape(-1) for g in row]) for row in self.rows])

    def split(self, vector: Tensor) -> list[Tensor]:
        """Views of a length-P vector shaped like the blocks."""
        out, offset = [], 0
        for block in self.rows[0]:
            n = block.numel()
            out.append(vector[offset : offset + n].view(block.shape))
            offset += n
        return out

    def uniform(self, k: int) -> Tensor:
        """Uniform draws in [0, 1), one per coordinate of target k, alike for the same coordinate on every split.

        Parameter blocks have the same shape on every rank: torch's generator (seeded alike on
        every rank) draws them. Representation blocks hold this rank's examples: each draw is a
        hash of one seed per step (drawn from torch's generator), the tensor's layer, the
        example's index in the whole step and the position in the example, so N ranks (or K
        micro-batches) draw for each coordinate what one process draws for it on the union batch.
        """
        block = self.rows[0][k]
        if self.representation_rows is None:
            return torch.rand_like(block)
        if self._seed is None:
            self._seed = int(torch.randint(0, 2**31 - 1, ()))
        rows = self.representation_rows[k]
        if rows.examples.numel() != block.shape[0]:
            raise ValueError(f"representation tensor {k} has {block.shape[0]} rows but its RepresentationRows "
                             f"name {rows.examples.numel()} examples")
        return keyed_uniform(self._seed, rows.layer, rows.examples.to(block.device), block.shape[1:]).to(block.dtype)

    def accumulate(self, update: Sequence[Tensor]) -> None:
        """Add an update (one tensor per block) to the targets' ``.grad``."""
        indices = self.row_indices or [None] * len(self.targets)
        for target, g, rows in zip(self.targets, update, indices):
            if rows is None:
                accumulate_gradient(target, g)
                continue
            if target.grad is None:
                target.grad = torch.zeros_like(target)
            target.grad.index_add_(0, rows, g.to(target.grad.dtype))


def gradient_statistics(tasks: Sequence[str], gramian: Tensor) -> dict[str, dict[str, float]]:
    """Per-task gradient norms and pairwise cosines, read off the Gramian."""
    g = gramian.detach().double().cpu()
    norms = g.diagonal().clamp(min=0).sqrt()
    cosines = {}
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            denominator = float(norms[i] * norms[j])
            cosines[f"{tasks[i]}|{tasks[j]}"] = float(g[i, j]) / denominator if denominator > 0 else 0.0
    return {"grad_norms": {task: float(n) for task, n in zip(tasks, norms)}, "cosines": cosines}


def accumulate_gradient(param: Tensor, grad: Tensor) -> None:
    """``param.grad += grad`` (``grad`` itself when there is none yet)."""
    if param.grad is None:
        param.grad = grad.detach()
    else:
        param.grad.add_(grad)


# ---------------------------------------------------------------------- draws keyed by coordinate
_MASK = 0xFFFFFFFF
_GOLDEN = 0x61C88647  # 2³² − ⌊2³²/φ⌋: Fibonacci hashing's multiplier, below 2³¹


def _hash32(x: Tensor) -> Tensor:
    """lowbias32 (C. Wellons, "Hash function prospector", 2018), a bijective mix of 0 ≤ x < 2³² (a new tensor).

    Every int64 product stays below 2⁶³: the multiplier above 2³¹ is applied in 16-bit halves.
    """
    x = x ^ (x >> 16)
    x.mul_(0x7FEB352D).bitwise_and_(_MASK)
    x.bitwise_xor_(x >> 15)
    x = (((x >> 16).mul_(0x846CA68B).bitwise_and_(0xFFFF)) << 16).add_(x.bitwise_and_(0xFFFF).mul_(0x846CA68B))
    x.bitwise_and_(_MASK)
    return x.bitwise_xor_(x >> 16)


def _combine(key: Tensor, index: Tensor | int) -> Tensor:
    """A new key from ``key`` and ``index`` (broadcast against each other)."""
    return _hash32((key * _GOLDEN + index).bitwise_and_(_MASK))


def keyed_uniform(seed: int, layer: int, examples: Tensor, shape: Sequence[int]) -> Tensor:
    """float32 draws in [0, 1) of shape ``(len(examples), *shape)``, each a hash of (seed, layer, example, position).

    The same (seed, layer, example, position) gives the same draw in any tensor that holds it,
    whatever the other rows and however far the tensor is padded.
    """
    device = examples.device
    start = _combine(_hash32(torch.tensor(seed & _MASK, device=device)), layer & _MASK)
    key = _combine(start, examples.to(torch.int64) & _MASK)
    for n in shape:
        key = _combine(key.unsqueeze(-1), torch.arange(n, device=device))
    return (key >> 8).to(torch.float32).mul_(2.0**-24)


__all__ = ["TaskJacobian", "accumulate_gradient", "gradient_statistics", "keyed_uniform"]
