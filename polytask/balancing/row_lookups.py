"""Row lookups: embedding tables whose per-task gradients touch only the rows a batch read.

Why: in exact mode every task's gradient of a word-embedding table is a dense V×d tensor of
which at most N rows (the batch's distinct tokens) are non-zero. Materialising T of them, and
reading them T(T+1)/2 times for the Gramian, costs more than the rest of the Jacobian for a
realistic vocabulary. The engine instead takes each task's gradient at the looked-up rows
(the embedding's output), sums it per distinct row, and works on those U×d blocks: the Gramian
and every aggregate are the same (the other rows are zero for every task), and only the
final update is scattered into the table's ``.grad``.

The recorder finds the lookups with forward hooks on the ``nn.Embedding`` modules of the
shared encoder, so any encoder built from ``nn.Embedding`` profits without declaring anything.
It leaves out tables it cannot treat this way: sparse-gradient tables, ``scale_grad_by_freq``
(the gradient then depends on counts over the whole batch, which the engine does not redo) and
tables tied to another parameter slot (their gradient has other paths than the lookup). A table
read functionally elsewhere (``F.linear(x, embedding.weight)``) is not detectable: keep such a
model's balancing on a mode other than ``exact``, or build it without that reuse.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class RowLookup:
    """One forward call of an embedding table: ``output[...] = weight[indices[...]]``."""

    weight: Tensor
    output: Tensor
    indices: Tensor
    padding_idx: int | None = None


class RowLookupRecorder:
    """Records the row lookups of a module's ``nn.Embedding`` tables during gradient-enabled forwards.

    ``take()`` returns the lookups recorded since the last call and forgets them. With
    ``always=False`` only forwards inside ``recording()`` are recorded (the gradient balancer's
    recorder: the step's forward pass, so no other forward's graph is kept alive by the recorder).
    """

    def __init__(self, module: nn.Module, *, always: bool = True):
        slots = Counter(id(p) for _, p in module.named_parameters(remove_duplicate=False))
        self._records: list[RowLookup] = []
        self._always, self._recording = always, False
        self._handles = [
            embedding.register_forward_hook(self._record)
            for embedding in module.modules()
            if isinstance(embedding, nn.Embedding) and not embedding.sparse and not embedding.scale_grad_by_freq
            and slots[id(embedding.weight)] == 1
        ]

    def _record(self, embedding: nn.Embedding, args: tuple, output: Tensor) -> None:
        if not (self._always or self._recording):
            return
        if torch.is_grad_enabled() and output.requires_grad and embedding.weight.requires_grad:
            self._records.append(RowLookup(embedding.weight, output, args[0], embedding.padding_idx))

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record inside the block (with ``always=False``, the only place lookups are recorded)."""
        self._recording = True
        try:
            yield
        finally:
            self._recording = False

    def take(self) -> list[RowLookup]:
        records, self._records = self._records, []
        return records

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._records = [], []


@dataclass
class LookedUpRows:
    """The distinct rows one step read from one table, over all its lookups.

    ``rows`` are the sorted distinct indices (U); ``inverse`` maps every kept looked-up
    position to its distinct row; ``keep`` drops positions at ``padding_idx``, which
    ``nn.Embedding``'s own backward gives no gradient.
    """

    weight: Tensor
    lookups: list[RowLookup]
    rows: Tensor
    inverse: Tensor
    keep: Tensor | None

    @classmethod
    def group(cls, lookups: Sequence[RowLookup]) -> list[LookedUpRows]:
        """The lookups grouped by table, in first-seen order."""
        tables: dict[int, list[RowLookup]] = {}
        for lookup in lookups:
            tables.setdefault(id(lookup.weight), []).append(lookup)
        groups = []
        for calls in tables.values():
            flat = torch.cat([call.indices.reshape(-1) for call in calls])
            keep = None
            if any(call.padding_idx is not None for call in calls):
                keep = torch.cat([call.indices.reshape(-1) != (-1 if call.padding_idx is None else call.padding_idx)
                                  for call in calls])
                flat = flat[keep]
            rows, inverse = torch.unique(flat, return_inverse=True)
            groups.append(cls(calls[0].weight, calls, rows, inverse, keep))
        return groups

    def block(self, output_grads: Sequence[Tensor | None]) -> Tensor:
        """One task's gradient of the table at the distinct rows (U×d), from its gradients of the lookups' outputs."""
        width = self.weight.shape[1]
        grads = torch.cat([
            grad.reshape(-1, width) if grad is not None else self.weight.new_zeros(call.indices.numel(), width)
            for call, grad in zip(self.lookups, output_grads)
        ])
        if self.keep is not None:
            grads = grads[self.keep]
        return grads.new_zeros(self.rows.numel(), width).index_add_(0, self.inverse, grads)


__all__ = ["LookedUpRows", "RowLookup", "RowLookupRecorder"]
