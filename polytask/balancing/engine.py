"""The per-task gradient engine: per-task gradients of the shared tensors, their Gramian, the update.

Gradient methods need the T×P Jacobian of the present tasks' losses with respect to some shared
tensors (or only its T×T Gramian); this module computes it in as few backward passes as the
model allows and writes the resulting update into ``.grad``, so that methods stay pure functions
of matrices. What the Jacobian is taken with respect to is the *mode*:

- ``exact``: every shared parameter. T vector-Jacobian products through the whole model; the
  update Σ wᵢ gᵢ is formed from the Jacobian already in memory (no further backward pass).
- ``representation``: the shared representation tensors the heads read (MGDA-UB, Sener & Koltun
  2018). The T products stop at the representation (only the heads are traversed); the update is
  one backward pass of the combined representation gradient. Approximates ``exact`` by the
  gradients at the encoder's output; MGDA-UB bounds the loss of that approximation.
- ``subset``: the shared parameters whose qualified names start with given prefixes (e.g. the
  last encoder layer). The T products run from the losses down to that subset only; the update
  is one backward pass of Σ wᵢ Lᵢ over all shared parameters. Approximates ``exact`` by the
  gradients' geometry on those parameters.

Task-specific parameters (the heads: every trainable parameter reached from the losses that is
not shared) always receive their own task's gradient, whatever the method and mode.

The T vector-Jacobian products are either *batched* (one ``torch.autograd.grad`` call with
``is_grads_batched=True``: vmap over the backward graph) or *looped* (T calls sharing one
retained graph). Which is faster depends on the model: batching wins where every backward op has
a vmap batching rule (linear layers, convolutions, the native LSTM cell), looping wins where it
does not (oneDNN's fused LSTM backward on CPU, which vmap runs slice by slice). ``vjp="auto"``
batches the first time and keeps batching unless vmap reported such a fallback. With a
representation, the products run in two stages (losses → representation through the heads,
then representation → targets), so only the encoder's ops decide; shared parameters must then
reach the heads only through the representation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from polytask.balancing import torch_private
from polytask.balancing.balancer import StepContext
from polytask.balancing.reduce import GradientReduce
from polytask.balancing.row_lookups import LookedUpRows
from polytask.errors import ConfigError

Mode = Literal["exact", "representation", "subset"]
VjpStrategy = Literal["auto", "batched", "loop"]
MODES: tuple[str, ...] = ("exact", "representation", "subset")
VJP_STRATEGIES: tuple[str, ...] = ("auto", "batched", "loop")


@dataclass
class TaskJacobian:
    """Per-task gradients of the target tensors: ``rows[i][k]`` is task i's gradient of target k.

    Kept as per-target blocks exactly as autograd returned them (no T×P concatenation): the
    Gramian and the weighted combination are computed block by block; ``matrix()`` concatenates
    only for aggregators that need the flat Jacobian. ``row_indices[k]``, when set, says that
    target k is an embedding table whose blocks hold only the rows it lists (the rest of every
    task's gradient is zero there; see ``row_lookups``); the update is scattered into those rows.
    """

    tasks: list[str]
    rows: list[list[Tensor]]
    targets: list[Tensor]
    row_indices: list[Tensor | None] | None = None

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

    def accumulate(self, update: Sequence[Tensor]) -> None:
        """Add an update (one tensor per block) to the targets' ``.grad``."""
        indices = self.row_indices or [None] * len(self.targets)
        for target, g, rows in zip(self.targets, update, indices):
            if rows is None:
                _accumulate(target, g)
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


class GradientEngine:
    """Computes per-task Jacobians of the mode's target tensors and applies aggregated updates.

    Why: one place that knows how to get per-task gradients cheaply, so methods are matrix maps.
    """

    def __init__(self, mode: Mode = "exact", subset_prefixes: Sequence[str] = (), vjp: VjpStrategy = "auto",
                 row_lookups: bool = True):
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", field="balancing.mode")
        if vjp not in VJP_STRATEGIES:
            raise ConfigError(f"unknown vjp strategy {vjp!r}; choose one of {', '.join(VJP_STRATEGIES)}", field="balancing.vjp")
        if mode == "subset" and not subset_prefixes:
            raise ConfigError("mode 'subset' needs the prefixes of the shared parameters to use", field="balancing.shared_params")
        self.mode = mode
        self.subset_prefixes = tuple(subset_prefixes)
        self.vjp = vjp
        self.row_lookups = row_lookups  # take embedding tables' gradients at the rows read (``row_lookups``)
        self._batched_ok: bool | None = None

    # ------------------------------------------------------------------ per-task gradients
    def task_jacobian(self, losses: Mapping[str, Tensor], context: StepContext,
                      reduce: GradientReduce | None = None) -> TaskJacobian:
        """Per-task gradients of the mode's targets; also accumulates each head's own-task gradient.

        ``reduce`` (the balancer's hook) seeds every product with the loss scale and, for the
        parameter modes, turns the rows into the union batch's unscaled gradients; representation
        rows stay per rank and scaled (``gramian`` reduces their Gramian instead).

        With a representation, two stages: T cheap products from the losses to the representation
        (through the heads only), then T products from the representation to the targets, batched
        or looped. Exact mode frees the graph (its update needs no further backward pass); the
        other modes keep it for ``apply_update``.
        """
        reduce = reduce or GradientReduce()
        tasks = list(losses)
        shared = _trainable(context.shared_parameters)
        targets = self._targets(shared, context)
        reps = list(context.representation)
        heads = task_specific_parameters([losses[t] for t in tasks], shared, reps)
        retain = self.mode != "exact"
        seeded = {t: reduce.seed(losses[t]) for t in tasks}
        if self.mode == "representation":
            return TaskJacobian(tasks, self._head_stage(seeded, tasks, reps, heads), targets)
        tables = self._looked_up_tables(targets, context)
        table_ids = {id(table.weight) for table in tables}
        dense = [t for t in targets if id(t) not in table_ids]
        outputs = [lookup.output for table in tables for lookup in table.lookups]
        if reps:
            cotangents = self._head_stage(seeded, tasks, reps, heads)
            jacobian_rows = self._encoder_stage(reps, cotangents, dense + outputs, retain)
        else:
            # No representation given: products from the losses straight to the targets and heads.
            stacked = torch.stack([losses[t] for t in tasks])
            eye = torch.eye(len(tasks), dtype=stacked.dtype, device=stacked.device) * reduce.scale
            jacobian_rows = self._encoder_stage([stacked], [[eye[i]] for i in range(len(tasks))], dense + outputs + heads,
                                                retain, n_heads=len(heads))
        if not tables:
            reduce.task_gradients_([block for row in jacobian_rows for block in row])
            return TaskJacobian(tasks, jacobian_rows, targets)
        # across ranks: every table's blocks at the rows any rank read, so the blocks line up
        union = [reduce.union_rows(table.rows) for table in tables]
        rows = []
        for row in jacobian_rows:
            blocks, offset = row[: len(dense)], len(dense)
            for table, rows_read in zip(tables, union):
                block = table.block(row[offset : offset + len(table.lookups)])
                if rows_read is not table.rows:
                    where = torch.searchsorted(rows_read, table.rows)
                    block = block.new_zeros(rows_read.numel(), block.shape[1]).index_copy_(0, where, block)
                blocks.append(block)
                offset += len(table.lookups)
            rows.append(blocks)
        reduce.task_gradients_([block for row in rows for block in row])
        return TaskJacobian(tasks, rows, dense + [table.weight for table in tables], [None] * len(dense) + union)

    def _looked_up_tables(self, targets: list[Tensor], context: StepContext) -> list[LookedUpRows]:
        """The embedding tables among the targets whose lookups this step recorded."""
        if not self.row_lookups or not context.row_lookups:
            return []
        ids = {id(t) for t in targets}
        return LookedUpRows.group([lookup for lookup in context.row_lookups if id(lookup.weight) in ids])

    def _head_stage(self, losses, tasks, reps, heads) -> list[list[Tensor]]:
        """Per task: gradient of its loss w.r.t. the representation; its heads get their own gradient."""
        rows = []
        for task in tasks:
            grads = torch.autograd.grad(losses[task], reps + heads, retain_graph=True, allow_unused=True)
            for head, g in zip(heads, grads[len(reps):]):
                if g is not None:
                    _accumulate(head, g)
            rows.append([g if g is not None else torch.zeros_like(r) for g, r in zip(grads[: len(reps)], reps)])
        return rows

    def _encoder_stage(self, roots: list[Tensor], cotangents: list[list[Tensor]], targets: list[Tensor],
                       retain: bool, n_heads: int = 0) -> list[list[Tensor]]:
        """Rows of the products cotangentᵢᵀ ∂roots/∂targets (the last ``n_heads`` targets are heads)."""
        strategy = self.strategy or "batched"
        if strategy == "batched":
            batched = [torch.stack([c[k] for c in cotangents]) for k in range(len(roots))]
            with torch_private.VmapFallbackProbe(active=self._batched_ok is None) as probe:
                grads = torch.autograd.grad(roots, targets, grad_outputs=batched, is_grads_batched=True,
                                            retain_graph=retain, allow_unused=True)
            if self._batched_ok is None:
                self._batched_ok = not probe.fell_back
            split = len(targets) - n_heads
            for head, g in zip(targets[split:], grads[split:]):
                if g is not None:
                    _accumulate(head, g.sum(0))
            # A target this step's losses do not reach (e.g. a layer above every present task's
            # head) gets None: its rows are zeros of the target's own shape.
            return [[g[i] if g is not None else torch.zeros_like(t) for g, t in zip(grads[:split], targets)]
                    for i in range(len(cotangents))]
        split = len(targets) - n_heads
        rows = []
        for i, cotangent in enumerate(cotangents):
            grads = torch.autograd.grad(roots, targets, grad_outputs=cotangent,
                                        retain_graph=retain or i < len(cotangents) - 1, allow_unused=True)
            for head, g in zip(targets[split:], grads[split:]):
                if g is not None:
                    _accumulate(head, g)
            rows.append([g if g is not None else torch.zeros_like(t) for g, t in zip(grads[:split], targets)])
        return rows

    def _targets(self, shared: dict[str, Tensor], context: StepContext) -> list[Tensor]:
        if self.mode == "exact":
            return list(shared.values())
        if self.mode == "representation":
            if not context.representation:
                raise ValueError("mode 'representation' needs StepContext.representation (the tensors the heads read)")
            return list(context.representation)
        chosen = [p for name, p in shared.items() if name.startswith(self.subset_prefixes)]
        if not chosen:
            prefixes = sorted({name.rsplit(".", 1)[0] for name in shared})
            raise ConfigError(
                f"no shared parameter starts with {', '.join(self.subset_prefixes)}; shared modules are: {', '.join(prefixes)}",
                field="balancing.shared_params",
            )
        return chosen

    @property
    def strategy(self) -> str | None:
        """The VJP strategy of the encoder stage (``None`` while ``auto`` has not probed yet).

        ``auto`` batches unless vmap reports running some backward op of this graph slice by
        slice (no batching rule, e.g. oneDNN's LSTM backward on CPU); then it loops.
        """
        if self.vjp != "auto":
            return self.vjp
        if self._batched_ok is None:
            return None
        return "batched" if self._batched_ok else "loop"

    # ------------------------------------------------------------------ updates
    def gramian(self, jacobian: TaskJacobian, reduce: GradientReduce | None = None) -> Tensor:
        """The union batch's unscaled Gramian: representation rows are per rank, so their Gramians are summed."""
        gramian = jacobian.gramian()
        if self.mode == "representation" and reduce is not None:
            reduce.gramian_(gramian)
        return gramian

    def apply_update(self, jacobian: TaskJacobian, update: list[Tensor] | None, weights: Tensor | None,
                     losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce | None = None) -> None:
        """Write the shared update: directly (exact), or by one backward pass (other modes).

        ``update`` is the aggregated update, one tensor per target of the Jacobian; ``weights``
        the task weights it came from (``None`` for aggregators that are not a weighted sum). In
        exact mode the update is the union batch's on every rank (written times the loss scale, like
        every other ``.grad``); the other modes' backward passes leave per-rank gradients to average.
        """
        reduce = reduce or GradientReduce()
        shared = _trainable(context.shared_parameters)
        if self.mode == "exact":
            jacobian.accumulate(torch_private.foreach_mul(list(update), reduce.scale) if reduce.scale != 1.0 else update)
            reduce.mark_synced(jacobian.targets)
            return
        if self.mode == "representation":
            torch.autograd.backward(jacobian.targets, grad_tensors=update, inputs=list(shared.values()))
            return
        if weights is None:
            raise ValueError("mode 'subset' needs a weighted method")
        self.weighted_shared_backward(losses, jacobian.tasks, weights, shared, reduce)

    def weighted_backward(self, losses: Mapping[str, Tensor], weights: Mapping[str, float], context: StepContext,
                          reduce: GradientReduce | None = None) -> None:
        """Heads get their own gradient, shared parameters Σ wᵢ gᵢ: two backward calls, no per-task pass."""
        reduce = reduce or GradientReduce()
        shared = _trainable(context.shared_parameters)
        tasks = list(losses)
        heads = task_specific_parameters([losses[t] for t in tasks], shared, context.representation)
        if heads:
            reduce.backward(torch.stack([losses[t] for t in tasks]).sum(), inputs=heads, retain_graph=True)
        w = torch.tensor([weights[t] for t in tasks], dtype=losses[tasks[0]].dtype, device=losses[tasks[0]].device)
        self.weighted_shared_backward(losses, tasks, w, shared, reduce)

    @staticmethod
    def weighted_shared_backward(losses: Mapping[str, Tensor], tasks: Sequence[str], weights: Tensor,
                                 shared: dict[str, Tensor], reduce: GradientReduce | None = None) -> None:
        total = (torch.stack([losses[t] for t in tasks]) * weights.to(losses[tasks[0]].dtype)).sum()
        if shared:
            (reduce or GradientReduce()).backward(total, inputs=list(shared.values()))


def task_specific_parameters(roots: Sequence[Tensor], shared: Mapping[str, Tensor],
                             representation: Sequence[Tensor] = ()) -> list[Tensor]:
    """Trainable leaves reached from ``roots`` without crossing the representation or a shared parameter.

    Why: the trainer names only the shared parameters; everything else the losses reach is a head.
    """
    excluded = {id(p) for p in shared.values()} | {id(r) for r in representation}
    stop = {r.grad_fn for r in representation if r.grad_fn is not None}
    seen: set = set()
    found: list[Tensor] = []
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen or node in stop:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            if id(variable) not in excluded:
                found.append(variable)
            continue
        stack.extend(child for child, _ in node.next_functions)
    return found


def _trainable(parameters: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: p for name, p in parameters.items() if p.requires_grad}


def _accumulate(param: Tensor, grad: Tensor) -> None:
    if param.grad is None:
        param.grad = grad.detach()
    else:
        param.grad.add_(grad)


__all__ = ["GradientEngine", "TaskJacobian", "gradient_statistics", "task_specific_parameters"]
