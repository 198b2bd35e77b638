"""The per-task gradient engine: one small object per mode, behind one interface, chosen by name from the config.

Gradient methods need the T×P Jacobian of the present tasks' losses with respect to some shared
tensors (or only its T×T Gramian); the engine computes it in as few backward passes as the
model allows and writes the method's update into ``.grad``, so that methods stay pure functions
of matrices. What the Jacobian is taken with respect to is the *mode* (``balancing.mode``):

- ``exact`` (``ExactMode``): every shared parameter. T vector-Jacobian products through the whole
  model; the update Σ wᵢ gᵢ is formed from the Jacobian already in memory (no further backward pass).
- ``representation`` (``RepresentationMode``): the shared representation tensors the heads read
  (MGDA-UB, Sener & Koltun 2018). The T products stop at the representation (only the heads are
  traversed); the update is one backward pass of the combined representation gradient.
  Approximates ``exact`` by the gradients at the encoder's output; MGDA-UB bounds the loss of that
  approximation.
- ``subset`` (``SubsetMode``): the shared parameters whose qualified names start with given
  prefixes (e.g. the last encoder layer). The T products run from the losses down to that subset
  only; the update is one backward pass of Σ wᵢ Lᵢ over all shared parameters. Approximates
  ``exact`` by the gradients' geometry on those parameters.
- every-k (``EveryKSteps``, ``balancing.update_every: k``) wraps one of them: the weights are
  recomputed every k steps and reused in between (one backward pass of Σ wᵢ Lᵢ).

Task-specific parameters (the heads: every trainable parameter reached from the losses that is
not shared) always receive their own task's gradient, whatever the method and mode.

With a representation, the products run in two stages (losses → representation through the
heads, then representation → targets), so only the encoder's ops decide whether batching the
products pays (``vjp``); shared parameters must then reach the heads only through the
representation. Across data-parallel ranks every statistic goes through the balancer's reduce
hook (``reduce``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from polytask.balancing import torch_private
from polytask.balancing.balancer import StepContext
from polytask.balancing.jacobian import TaskJacobian, accumulate_gradient, gradient_statistics
from polytask.balancing.reduce import GradientReduce
from polytask.balancing.row_lookups import LookedUpRows, RowLookup
from polytask.balancing.vjp import VectorJacobianProducts, VjpStrategy, looped_products
from polytask.errors import ConfigError


class UpdateRule(Protocol):
    """What a gradient method offers the engine (``aggregation.GramianWeighting`` and ``Aggregator``)."""

    def write_update(self, engine: JacobianMode, jacobian: TaskJacobian, gramian: Tensor,
                     losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce) -> dict[str, Any]:
        """Compute this step's update from the Jacobian (or Gramian), write it through ``engine``; the stats to log."""
        ...


class GradientEngine(ABC):
    """One step of a gradient method: per-task gradients taken, the method run, the update written.

    Why: the balancer calls ``step`` whatever the mode, so no mode is an ``if`` in it (or in the trainer).
    """

    @abstractmethod
    def step(self, method: UpdateRule, losses: Mapping[str, Tensor], context: StepContext,
             reduce: GradientReduce, row_lookups: Sequence[RowLookup] = ()) -> dict[str, Any]:
        """Back-propagate the step's losses under ``method``; JSON-able stats (weights, norms, ``recomputed``)."""

    @property
    def strategy(self) -> str | None:
        """The VJP strategy in use (``None`` while ``auto`` has not probed yet, or when no products are batched)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class JacobianMode(GradientEngine):
    """A mode that takes the Jacobian of its targets every step: the step template the three modes share.

    A mode says what its targets are (``task_jacobian``), how their Gramian is made global across
    ranks (``gramian``), and how an update is written (``apply_weights`` for Σ wᵢ gᵢ,
    ``apply_update`` for any update with the targets' shapes).
    """

    name = ""

    def __init__(self, shared_params: Sequence[str] = (), vjp: VjpStrategy = "auto"):
        if shared_params:
            raise ConfigError("shared_params is only used by mode 'subset'", field="balancing.shared_params")
        self.products = VectorJacobianProducts(vjp)

    @property
    def strategy(self) -> str | None:
        return self.products.strategy

    def state_dict(self) -> dict[str, Any]:
        return {"vjp": self.products.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.products.load_state_dict(dict(state.get("vjp", {})))

    # ------------------------------------------------------------------ the step
    def step(self, method: UpdateRule, losses: Mapping[str, Tensor], context: StepContext,
             reduce: GradientReduce, row_lookups: Sequence[RowLookup] = ()) -> dict[str, Any]:
        tasks = list(losses)
        jacobian = self.task_jacobian(losses, context, reduce, row_lookups=row_lookups)
        gramian = self.gramian(jacobian, reduce)
        if not bool(torch.isfinite(gramian).all()):
            # inf/NaN gradients (an fp16 overflow): the method is not run; NaN gradients make the
            # trainer skip the step (and count it), the method's state and cached weights untouched.
            nan = torch.full((len(tasks),), float("nan"), dtype=gramian.dtype, device=gramian.device)
            self.apply_weights(jacobian, nan, losses, context, reduce)
            return {"weights": {t: float("nan") for t in tasks}, "recomputed": False, "nonfinite": True}
        stats: dict[str, Any] = gradient_statistics(tasks, gramian)
        stats.update(method.write_update(self, jacobian, gramian, losses, context, reduce))
        stats["recomputed"] = True
        if self.strategy is not None:
            stats["vjp"] = self.strategy
        return stats

    @abstractmethod
    def task_jacobian(self, losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce | None = None,
                      *, row_lookups: Sequence[RowLookup] = ()) -> TaskJacobian:
        """Per-task gradients of the mode's targets; also accumulates each head's own-task gradient.

        ``reduce`` (the balancer's hook) seeds every product with the loss scale and, for the
        parameter modes, turns the rows into the union batch's unscaled gradients.
        """

    def gramian(self, jacobian: TaskJacobian, reduce: GradientReduce | None = None) -> Tensor:
        """The union batch's unscaled Gramian (the rows already are the union's)."""
        return jacobian.gramian()

    @abstractmethod
    def apply_weights(self, jacobian: TaskJacobian, weights: Tensor, losses: Mapping[str, Tensor],
                      context: StepContext, reduce: GradientReduce | None = None) -> None:
        """Write the shared update Σ wᵢ gᵢ."""

    @abstractmethod
    def apply_update(self, jacobian: TaskJacobian, update: Sequence[Tensor], losses: Mapping[str, Tensor],
                     context: StepContext, reduce: GradientReduce | None = None) -> None:
        """Write an update given as one tensor per target of the Jacobian."""

    # ------------------------------------------------------------------ pieces the modes share
    def weighted_backward(self, losses: Mapping[str, Tensor], weights: Mapping[str, float], context: StepContext,
                          reduce: GradientReduce | None = None) -> None:
        """Heads get their own gradient, shared parameters Σ wᵢ gᵢ: two backward calls, no per-task pass."""
        reduce = reduce or GradientReduce()
        shared = trainable(context.shared_parameters)
        tasks = list(losses)
        heads = task_specific_parameters([losses[t] for t in tasks], shared, context.representation)
        if heads:
            reduce.backward(torch.stack([losses[t] for t in tasks]).sum(), inputs=heads, retain_graph=True)
        w = torch.tensor([weights[t] for t in tasks], dtype=losses[tasks[0]].dtype, device=losses[tasks[0]].device)
        weighted_shared_backward(losses, tasks, w, shared, reduce)

    def head_stage(self, losses: Mapping[str, Tensor], tasks: Sequence[str], reps: Sequence[Tensor],
                   heads: Sequence[Tensor]) -> list[list[Tensor]]:
        """Per task: the gradient of its loss w.r.t. the representation; its heads get their own gradient."""
        rows = []
        for task in tasks:
            rows += self.rows_and_heads(looped_products([losses[task]], [[torch.ones_like(losses[task])]],
                                                        [*reps, *heads], retain_graph=True), list(reps), heads)
        return rows

    @staticmethod
    def rows_and_heads(products: list[list[Tensor | None]], targets: Sequence[Tensor],
                       heads: Sequence[Tensor]) -> list[list[Tensor]]:
        """Products over ``targets + heads`` → the targets' rows (zeros where unreached); the heads' parts summed into ``.grad``.

        A target this step's losses do not reach (e.g. a layer above every present task's head)
        gets zeros of its own shape.
        """
        split = len(targets)
        for k, head in enumerate(heads):
            parts = [row[split + k] for row in products if row[split + k] is not None]
            if parts:
                total = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
                accumulate_gradient(head, total)
        return [[g if g is not None else torch.zeros_like(t) for g, t in zip(row[:split], targets)] for row in products]


class ParameterMode(JacobianMode):
    """The modes whose targets are shared parameters: rows averaged across ranks, embedding tables at the rows read."""

    retain_graph = True  # the update needs another backward pass through the graph

    @abstractmethod
    def targets(self, shared: dict[str, Tensor]) -> list[Tensor]:
        """The shared parameters the Jacobian is taken of."""

    def task_jacobian(self, losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce | None = None,
                      *, row_lookups: Sequence[RowLookup] = ()) -> TaskJacobian:
        """With a representation, two stages: T cheap products from the losses to the representation
        (through the heads only), then T products from the representation to the targets, batched or
        looped. ``row_lookups`` (the balancer's recorder) turn tables among the targets into row blocks."""
        reduce = reduce or GradientReduce()
        tasks = list(losses)
        shared = trainable(context.shared_parameters)
        targets = self.targets(shared)
        reps = list(context.representation)
        heads = task_specific_parameters([losses[t] for t in tasks], shared, reps)
        seeded = {t: reduce.seed(losses[t]) for t in tasks}
        tables = looked_up_tables(targets, row_lookups)
        table_ids = {id(table.weight) for table in tables}
        dense = [t for t in targets if id(t) not in table_ids]
        outputs = [lookup.output for table in tables for lookup in table.lookups]
        if reps:
            cotangents = self.head_stage(seeded, tasks, reps, heads)
            products = self.products.products(reps, cotangents, dense + outputs, retain_graph=self.retain_graph)
            jacobian_rows = self.rows_and_heads(products, dense + outputs, [])
        else:
            # No representation given: products from the losses straight to the targets and heads.
            stacked = torch.stack([losses[t] for t in tasks])
            eye = torch.eye(len(tasks), dtype=stacked.dtype, device=stacked.device) * reduce.scale
            products = self.products.products([stacked], [[eye[i]] for i in range(len(tasks))],
                                              dense + outputs + heads, retain_graph=self.retain_graph)
            jacobian_rows = self.rows_and_heads(products, dense + outputs, heads)
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


class ExactMode(ParameterMode):
    """Every shared parameter; the update is written from the Jacobian in memory (no further backward pass)."""

    name = "exact"
    retain_graph = False

    def targets(self, shared: dict[str, Tensor]) -> list[Tensor]:
        return list(shared.values())

    def apply_weights(self, jacobian, weights, losses, context, reduce=None) -> None:
        self.apply_update(jacobian, jacobian.combine(weights), losses, context, reduce)

    def apply_update(self, jacobian, update, losses, context, reduce=None) -> None:
        """The union batch's update on every rank, written times the loss scale like every other ``.grad``."""
        reduce = reduce or GradientReduce()
        jacobian.accumulate(torch_private.foreach_mul(list(update), reduce.scale) if reduce.scale != 1.0 else update)
        reduce.mark_synced(jacobian.targets)


class SubsetMode(ParameterMode):
    """The shared parameters under given name prefixes; the update is one backward pass of Σ wᵢ Lᵢ."""

    name = "subset"

    def __init__(self, shared_params: Sequence[str] = (), vjp: VjpStrategy = "auto"):
        if not shared_params:
            raise ConfigError("mode 'subset' needs the prefixes of the shared parameters to use",
                              field="balancing.shared_params")
        super().__init__(vjp=vjp)
        self.subset_prefixes = tuple(shared_params)

    def targets(self, shared: dict[str, Tensor]) -> list[Tensor]:
        chosen = [p for name, p in shared.items() if name.startswith(self.subset_prefixes)]
        if not chosen:
            prefixes = sorted({name.rsplit(".", 1)[0] for name in shared})
            raise ConfigError(
                f"no shared parameter starts with {', '.join(self.subset_prefixes)}; shared modules are: {', '.join(prefixes)}",
                field="balancing.shared_params",
            )
        return chosen

    def apply_weights(self, jacobian, weights, losses, context, reduce=None) -> None:
        weighted_shared_backward(losses, jacobian.tasks, weights, trainable(context.shared_parameters), reduce)

    def apply_update(self, jacobian, update, losses, context, reduce=None) -> None:
        # an update that is not Σ wᵢ gᵢ cannot be pushed through the rest of the model from a parameter subset
        raise ValueError("mode 'subset' needs a weighted method")


class RepresentationMode(JacobianMode):
    """The representation tensors the heads read; the update is one backward pass from them.

    The rows stay this rank's (its examples' representation) and scaled: the Gramian sums the ranks'
    (their rows are disjoint), and every rank's backward pass leaves a gradient to average.
    """

    name = "representation"

    def task_jacobian(self, losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce | None = None,
                      *, row_lookups: Sequence[RowLookup] = ()) -> TaskJacobian:
        if not context.representation:
            raise ValueError("mode 'representation' needs StepContext.representation (the tensors the heads read)")
        reduce = reduce or GradientReduce()
        tasks = list(losses)
        reps = list(context.representation)
        heads = task_specific_parameters([losses[t] for t in tasks], trainable(context.shared_parameters), reps)
        seeded = {t: reduce.seed(losses[t]) for t in tasks}
        return TaskJacobian(tasks, self.head_stage(seeded, tasks, reps, heads), reps,
                            representation_rows=context.rows_of_representation())

    def gramian(self, jacobian: TaskJacobian, reduce: GradientReduce | None = None) -> Tensor:
        """The sum of the ranks' Gramians, unscaled."""
        gramian = jacobian.gramian()
        return reduce.gramian_(gramian) if reduce is not None else gramian

    def apply_weights(self, jacobian, weights, losses, context, reduce=None) -> None:
        self.apply_update(jacobian, jacobian.combine(weights), losses, context, reduce)

    def apply_update(self, jacobian, update, losses, context, reduce=None) -> None:
        torch.autograd.backward(jacobian.targets, grad_tensors=list(update),
                                inputs=list(trainable(context.shared_parameters).values()))


class EveryKSteps(GradientEngine):
    """A mode whose weights are recomputed every ``k`` steps and reused in between (``balancing.update_every``).

    A reused step is one backward pass of Σ wᵢ Lᵢ (``JacobianMode.weighted_backward``); a step whose
    present tasks differ from the cached ones recomputes.
    """

    def __init__(self, mode: JacobianMode, k: int):
        self.mode, self.k = mode, k
        self.weights: dict[str, float] | None = None
        self.steps_since_update = 0

    @property
    def strategy(self) -> str | None:
        return self.mode.strategy

    def step(self, method: UpdateRule, losses: Mapping[str, Tensor], context: StepContext,
             reduce: GradientReduce, row_lookups: Sequence[RowLookup] = ()) -> dict[str, Any]:
        if self.weights is not None and self.steps_since_update < self.k and set(self.weights) == set(losses):
            self.steps_since_update += 1
            self.mode.weighted_backward(losses, self.weights, context, reduce)
            return {"weights": dict(self.weights), "recomputed": False}
        stats = self.mode.step(method, losses, context, reduce, row_lookups)
        if stats["recomputed"]:
            self.weights, self.steps_since_update = dict(stats["weights"]), 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights) if self.weights is not None else None,
                "steps_since_update": self.steps_since_update, **self.mode.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mode.load_state_dict(state)
        weights = state.get("weights")
        self.weights = dict(weights) if weights is not None else None
        self.steps_since_update = int(state.get("steps_since_update", 0))


ENGINE_MODES: dict[str, type[JacobianMode]] = {mode.name: mode for mode in (ExactMode, RepresentationMode, SubsetMode)}
MODES: tuple[str, ...] = tuple(ENGINE_MODES)


def build_engine(mode: str = "exact", *, update_every: int = 1, shared_params: Sequence[str] = (),
                 vjp: VjpStrategy = "auto") -> GradientEngine:
    """The engine for ``balancing.mode``, ``update_every``, ``shared_params`` and ``vjp``; mistakes are ConfigErrors."""
    if mode not in ENGINE_MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", field="balancing.mode")
    if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
        raise ConfigError(f"must be a positive integer, got {update_every!r}", field="balancing.update_every")
    engine = ENGINE_MODES[mode](tuple(shared_params or ()), vjp)
    return EveryKSteps(engine, update_every) if update_every > 1 else engine


def looked_up_tables(targets: Sequence[Tensor], row_lookups: Sequence[RowLookup]) -> list[LookedUpRows]:
    """The embedding tables among the targets whose lookups this step recorded."""
    if not row_lookups:
        return []
    ids = {id(t) for t in targets}
    return LookedUpRows.group([lookup for lookup in row_lookups if id(lookup.weight) in ids])


def weighted_shared_backward(losses: Mapping[str, Tensor], tasks: Sequence[str], weights: Tensor,
                             shared: dict[str, Tensor], reduce: GradientReduce | None = None) -> None:
    """One backward pass of Σ wᵢ Lᵢ into the shared parameters."""
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


def trainable(parameters: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: p for name, p in parameters.items() if p.requires_grad}


__all__ = ["ENGINE_MODES", "MODES", "EveryKSteps", "ExactMode", "GradientEngine", "JacobianMode", "ParameterMode",
           "RepresentationMode", "SubsetMode", "UpdateRule", "build_engine", "task_specific_parameters"]
