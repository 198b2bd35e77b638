"""Every registered gradient aggregator checked against the shared properties: what all promise, and what each declares.

A new method registered with ``@register_method(kind="gradient aggregator")`` is picked up
here with no new test code; its ``promises`` say which of the optional properties it keeps.
"""

from __future__ import annotations

import pytest

from polytask.balancing.aggregation import (
    NON_CONFLICTING,
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    PROPERTIES,
)
from polytask.balancing.registry import available_methods
from tests.balancing import aggregator_asserts as asserts

AGGREGATORS = {name: info.factory for name, info in available_methods().items() if info.kind == "gradient aggregator"}
CHECKS = {
    NON_CONFLICTING: asserts.assert_non_conflicting,
    PERMUTATION_INVARIANT: asserts.assert_permutation_invariant,
    POSITIVELY_HOMOGENEOUS: asserts.assert_positively_homogeneous,
}
DECLARED = [(name, prop) for name, factory in AGGREGATORS.items() for prop in sorted(factory().promises)]


def test_every_property_has_a_check_and_every_aggregator_is_found() -> None:
    assert set(CHECKS) == set(PROPERTIES)
    assert len(AGGREGATORS) >= 10


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_structure(name: str) -> None:
    asserts.assert_expected_structure(AGGREGATORS[name])


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_identical_gradients_keep_their_direction(name: str) -> None:
    asserts.assert_identical_gradients_keep_their_direction(AGGREGATORS[name])


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_promises_name_known_properties(name: str) -> None:
    assert AGGREGATORS[name]().promises <= set(PROPERTIES)


@pytest.mark.parametrize("name,prop", DECLARED, ids=[f"{n}-{p}" for n, p in DECLARED])
def test_declared_property_holds(name: str, prop: str) -> None:
    CHECKS[prop](AGGREGATORS[name])


@pytest.mark.parametrize("prop,check", sorted(CHECKS.items()))
def test_each_check_can_fail(prop: str, check) -> None:
    """A check that cannot fail is a defect: each rejects a method built to break its property."""
    import torch

    from polytask.balancing.aggregation import GramianWeighting

    class Broken(GramianWeighting):
        def weights(self, gramian, tasks):
            t = len(tasks)
            if prop == NON_CONFLICTING:  # push against the first task
                return torch.tensor([-1.0] + [0.0] * (t - 1), dtype=gramian.dtype)
            if prop == PERMUTATION_INVARIANT:  # favour whichever task comes first
                return torch.tensor([1.0] + [0.0] * (t - 1), dtype=gramian.dtype)
            return torch.full((t,), 1.0 / float(gramian.trace()), dtype=gramian.dtype)  # undoes the scale

    with pytest.raises(AssertionError):
        check(Broken)
