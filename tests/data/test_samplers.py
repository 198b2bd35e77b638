"""Task samplers: exact probabilities, empirical frequencies, schedules, determinism, resume, loss correction."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from polytask.data.samplers import (
    SAMPLERS,
    AnnealedSampler,
    ProportionalSampler,
    RoundRobinSampler,
    TaskSampler,
    TemperatureSampler,
    UniformSampler,
    build_sampler,
    steps_per_epoch,
)
from polytask.errors import ConfigError

SIZES = {"ner": 14_000, "pos": 9_000, "sentiment": 1_000}
# 10,000 draws put the standard error at most 0.005, so the 1% band is about 2σ: the seeds are
# fixed, making every frequency test deterministic (a biased sampler still misses by far more).
DRAWS = 10_000


def frequencies(sampler: TaskSampler, step: int, total_steps: int, k: int = 1, draws: int = DRAWS) -> dict[str, float]:
    counts = Counter(task for _ in range(draws) for task in sampler.sample(step, total_steps, k))
    return {task: counts[task] / draws for task in sampler.tasks}


def enumerate_draws(p: dict[str, float], k: int) -> dict[frozenset[str], float]:
    """P(the step's task set is S) by walking every ordered successive draw (independent of the library)."""
    out: dict[frozenset[str], float] = {}

    def walk(drawn: tuple[str, ...], prob: float) -> None:
        if len(drawn) == k:
            out[frozenset(drawn)] = out.get(frozenset(drawn), 0.0) + prob
            return
        rest = sum(v for t, v in p.items() if t not in drawn)
        for task, value in p.items():
            if task not in drawn:
                walk(drawn + (task,), prob * value / rest)

    walk((), 1.0)
    return out


def power(sizes: dict[str, int], alpha: float) -> dict[str, float]:
    total = sum(n**alpha for n in sizes.values())
    return {t: n**alpha / total for t, n in sizes.items()}


# ------------------------------------------------------------------------------------------
# Exact formula values


def test_registry_names_match_classes():
    assert set(SAMPLERS) == {"proportional", "temperature", "uniform", "round_robin", "annealed", "weighted"}
    for name, cls in SAMPLERS.items():
        assert cls.name == name


def test_proportional_probabilities_exact():
    p = ProportionalSampler(SIZES).probabilities(0, 100)
    assert p == pytest.approx({"ner": 0.58333333333, "pos": 0.375, "sentiment": 1 / 24}, abs=1e-10)


def test_temperature_probabilities_exact():
    p = TemperatureSampler(SIZES, temperature=2.0).probabilities(0, 100)
    roots = {t: math.sqrt(n) for t, n in SIZES.items()}
    assert p == pytest.approx({t: r / sum(roots.values()) for t, r in roots.items()}, abs=1e-12)
    assert TemperatureSampler(SIZES, temperature=1.0).probabilities(0, 1) == pytest.approx(
        ProportionalSampler(SIZES).probabilities(0, 1), abs=1e-12
    )


def test_uniform_probabilities_exact():
    assert UniformSampler(SIZES).probabilities(5, 10) == dict.fromkeys(SIZES, 1 / 3)


def test_annealed_alpha_exact_over_epochs():
    sampler = AnnealedSampler(SIZES, steps_per_epoch=10)  # 50 steps = E = 5 epochs
    expected = {0: 1.0, 9: 1.0, 10: 0.8, 19: 0.8, 20: 0.6, 35: 0.4, 40: 0.2, 49: 0.2, 60: 0.2}
    for step, alpha in expected.items():
        assert sampler.alpha(step, 50) == pytest.approx(alpha, abs=1e-12), step
    assert sampler.probabilities(20, 50) == pytest.approx(power(SIZES, 0.6), abs=1e-12)


def test_annealed_alpha_exact_over_steps():
    sampler = AnnealedSampler(SIZES)  # every step its own epoch: e = step + 1, E = total_steps
    assert [sampler.alpha(s, 11) for s in (0, 1, 5, 10)] == pytest.approx([1.0, 0.92, 0.6, 0.2], abs=1e-12)
    assert sampler.alpha(0, 1) == 1.0  # a single epoch stays proportional
    assert AnnealedSampler(SIZES, decay=1.0).probabilities(10, 11) == pytest.approx(dict.fromkeys(SIZES, 1 / 3))
    assert sampler.probabilities(0, 11) == pytest.approx(ProportionalSampler(SIZES).probabilities(0, 11), abs=1e-12)


def test_cap_changes_probabilities_as_the_formula_says():
    sizes = {"big": 100_000, "mid": 20_000, "small": 1_000}
    assert ProportionalSampler(sizes, cap=10_000).probabilities(0, 1) == pytest.approx(
        {"big": 10 / 21, "mid": 10 / 21, "small": 1 / 21}, abs=1e-12
    )
    assert ProportionalSampler(sizes, cap={"big": 4_000}).probabilities(0, 1) == pytest.approx(
        {"big": 4 / 25, "mid": 20 / 25, "small": 1 / 25}, abs=1e-12
    )
    capped = {"big": 10_000, "mid": 10_000, "small": 1_000}
    assert TemperatureSampler(sizes, temperature=2.0, cap=10_000).probabilities(0, 1) == pytest.approx(
        power(capped, 0.5), abs=1e-12
    )
    assert AnnealedSampler(sizes, cap=10_000).probabilities(5, 11) == pytest.approx(power(capped, 0.6), abs=1e-12)


# ------------------------------------------------------------------------------------------
# Empirical frequencies


@pytest.mark.parametrize(
    "sampler",
    [
        ProportionalSampler(SIZES, seed=1),
        TemperatureSampler(SIZES, temperature=2.0, seed=2),
        UniformSampler(SIZES, seed=3),
    ],
    ids=lambda s: s.name,
)
def test_empirical_frequencies_match_formula(sampler: TaskSampler):
    expected = sampler.probabilities(0, 1)
    observed = frequencies(sampler, 0, 1)
    for task in SIZES:
        assert abs(observed[task] - expected[task]) < 0.01, (task, observed, expected)


@pytest.mark.parametrize("step", [0, 250, 499])
def test_annealed_empirical_frequencies_match_formula(step: int):
    sampler = AnnealedSampler(SIZES, steps_per_epoch=100, seed=4)
    expected = sampler.probabilities(step, 500)
    observed = frequencies(sampler, step, 500)
    for task in SIZES:
        assert abs(observed[task] - expected[task]) < 0.01, (step, task, observed, expected)


@pytest.mark.parametrize("cls", [ProportionalSampler, TemperatureSampler])
def test_k_of_t_inclusion_frequencies_match_exact_inclusion(cls: type[TaskSampler]):
    sampler = cls(SIZES, seed=5)
    pi = sampler.inclusion_probabilities(0, 1, k=2)
    assert sum(pi.values()) == pytest.approx(2.0)
    observed = frequencies(sampler, 0, 1, k=2)
    for task in SIZES:
        assert abs(observed[task] - pi[task]) < 0.01, (task, observed, pi)
    picks = [sampler.sample(0, 1, k=2) for _ in range(200)]
    assert all(len(set(p)) == 2 and p == [t for t in SIZES if t in p] for p in picks)  # distinct, in task order


@pytest.mark.parametrize(
    ("cls", "expected_small"),
    [(TemperatureSampler, math.sqrt(1_000) / (math.sqrt(100_000) + math.sqrt(1_000))), (UniformSampler, 0.5)],
)
def test_small_task_seen_at_its_configured_rate_next_to_a_100x_larger_one(cls, expected_small: float):
    sampler = cls({"big": 100_000, "small": 1_000}, seed=6)
    assert sampler.probabilities(0, 1)["small"] == pytest.approx(expected_small, abs=1e-12)
    assert abs(frequencies(sampler, 0, 1)["small"] - expected_small) < 0.01
    # Three tasks, two per step: the small one's inclusion rate is also what the formula says.
    sampler = cls({"big": 100_000, "mid": 10_000, "small": 1_000}, seed=8)
    pi = sampler.inclusion_probabilities(0, 1, k=2)["small"]
    assert abs(frequencies(sampler, 0, 1, k=2)["small"] - pi) < 0.01


def test_all_tasks_per_step():
    for name, cls in SAMPLERS.items():
        sampler = cls(SIZES, weights=dict.fromkeys(SIZES, 1.0)) if name == "weighted" else cls(SIZES)
        assert sampler.sample(0, 10) == list(SIZES)
        assert sampler.sample(0, 10, k=3) == list(SIZES)
        assert sampler.inclusion_probabilities(0, 10) == dict.fromkeys(SIZES, 1.0)


# ------------------------------------------------------------------------------------------
# Round robin


def test_round_robin_order_exact():
    sampler = RoundRobinSampler(SIZES)
    assert [sampler.sample(s, 9, k=1)[0] for s in range(7)] == ["ner", "pos", "sentiment"] * 2 + ["ner"]
    sampler = RoundRobinSampler(SIZES)
    assert [sampler.sample(s, 9, k=2) for s in range(4)] == [
        ["ner", "pos"],
        ["sentiment", "ner"],
        ["pos", "sentiment"],
        ["ner", "pos"],
    ]


# ------------------------------------------------------------------------------------------
# Determinism and resume


def make_all(seed: int) -> list[TaskSampler]:
    return [
        ProportionalSampler(SIZES, seed=seed),
        TemperatureSampler(SIZES, temperature=2.0, seed=seed),
        UniformSampler(SIZES, seed=seed),
        RoundRobinSampler(SIZES, seed=seed),
        AnnealedSampler(SIZES, seed=seed),
    ]


def draw(sampler: TaskSampler, start: int, count: int, k: int) -> list[list[str]]:
    return [sampler.sample(step, 200, k) for step in range(start, start + count)]


@pytest.mark.parametrize("k", [1, 2])
def test_deterministic_under_a_seed(k: int):
    for first, second, other in zip(make_all(11), make_all(11), make_all(12)):
        a = draw(first, 0, 100, k)
        assert a == draw(second, 0, 100, k)
        if not isinstance(first, RoundRobinSampler):
            assert a != draw(other, 0, 100, k)


@pytest.mark.parametrize("k", [1, 2])
def test_resume_continues_identically(k: int):
    for sampler, fresh in zip(make_all(21), make_all(99)):
        draw(sampler, 0, 50, k)
        state = json.loads(json.dumps(sampler.state_dict()))  # survives a JSON checkpoint
        expected = draw(sampler, 50, 50, k)
        fresh.load_state_dict(state)
        assert draw(fresh, 50, 50, k) == expected, sampler.name


def test_resume_rejects_another_method_or_task_set():
    state = ProportionalSampler(SIZES).state_dict()
    with pytest.raises(ConfigError) as error:
        UniformSampler(SIZES).load_state_dict(state)
    assert error.value.field == "sampling.method"
    with pytest.raises(ConfigError) as error:
        ProportionalSampler({"ner": 1, "pos": 2}).load_state_dict(state)
    assert error.value.field == "tasks"


# ------------------------------------------------------------------------------------------
# Importance weights (sampler-aware loss correction)


@pytest.mark.parametrize(
    "sampler",
    [
        ProportionalSampler(SIZES),
        TemperatureSampler(SIZES, temperature=2.0),
        UniformSampler(SIZES),
        AnnealedSampler(SIZES, cap=5_000),
    ],
    ids=lambda s: s.name,
)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_importance_weights_make_expected_loss_the_unweighted_sum(sampler: TaskSampler, k: int):
    losses = dict(zip(SIZES, np.random.default_rng(0).uniform(0.1, 3.0, size=3)))
    step, total = 4, 11
    draws = enumerate_draws(sampler.probabilities(step, total), k)
    assert sum(draws.values()) == pytest.approx(1.0)

    weights = sampler.importance_weights(step, total, k)
    expected = sum(prob * sum(weights[t] * losses[t] for t in subset) for subset, prob in draws.items())
    assert expected == pytest.approx(sum(losses.values()), rel=1e-12)

    # Normalised weights average 1 and give the sum scaled by 1 / mean(1/π).
    normalized = sampler.importance_weights(step, total, k, normalize=True)
    assert sum(normalized.values()) / 3 == pytest.approx(1.0)
    scale = 3 / sum(weights.values())
    expected = sum(prob * sum(normalized[t] * losses[t] for t in subset) for subset, prob in draws.items())
    assert expected == pytest.approx(scale * sum(losses.values()), rel=1e-12)


def test_exact_inclusion_matches_enumeration_for_more_tasks():
    sizes = {f"t{i}": n for i, n in enumerate([5, 50, 500, 2_000, 7, 90])}
    sampler = TemperatureSampler(sizes, temperature=1.5)
    p = sampler.probabilities(0, 1)
    for k in range(1, 7):
        draws = enumerate_draws(p, k)
        truth = {t: sum(prob for subset, prob in draws.items() if t in subset) for t in sizes}
        assert sampler.inclusion_probabilities(0, 1, k) == pytest.approx(truth, abs=1e-12)


def test_round_robin_weights_are_exact_over_a_cycle():
    sampler = RoundRobinSampler(SIZES)
    losses = {"ner": 1.0, "pos": 2.0, "sentiment": 4.0}
    weights = sampler.importance_weights(0, 1, k=2)
    assert weights == pytest.approx(dict.fromkeys(SIZES, 1.5))
    steps = [sampler.sample(s, 3, k=2) for s in range(3)]  # lcm(3, 2)/2 = 3 steps: one period
    assert sum(weights[t] * losses[t] for tasks in steps for t in tasks) / 3 == pytest.approx(7.0)


# ------------------------------------------------------------------------------------------
# Config errors and the epoch helper


def test_build_sampler_and_its_errors():
    sampler = build_sampler("temperature", SIZES, temperature=3.0, cap=5_000, seed=1)
    assert isinstance(sampler, TemperatureSampler) and sampler.temperature == 3.0
    assert sampler.counted_sizes == {"ner": 5_000, "pos": 5_000, "sentiment": 1_000}
    cases = [
        (("roundrobin", {}), "sampling.method"),
        (("uniform", {"temperature": 2.0}), "sampling.options"),
        (("temperature", {"temperature": 0}), "sampling.options.temperature"),
        (("temperature", {"temperature": "hot"}), "sampling.options.temperature"),
        (("proportional", {"cap": 0}), "sampling.options.cap"),
        (("proportional", {"cap": {"nope": 5}}), "sampling.options.cap"),
        (("annealed", {"decay": 1.5}), "sampling.options.decay"),
        (("annealed", {"steps_per_epoch": 0}), "sampling.options.steps_per_epoch"),
    ]
    for (method, options), field in cases:
        with pytest.raises(ConfigError) as error:
            build_sampler(method, SIZES, **options)
        assert error.value.field == field, (method, options)
    with pytest.raises(ConfigError) as error:
        build_sampler("uniform", {"a": 3, "b": 0})
    assert error.value.field == "tasks.b"
    with pytest.raises(ConfigError) as error:
        UniformSampler(SIZES).sample(0, 1, k=4)
    assert error.value.field == "sampling.tasks_per_step"


def test_steps_per_epoch():
    batches = {"ner": 32, "pos": 32, "sentiment": 16}
    assert steps_per_epoch(SIZES, batches, {"steps": 7}) == 7
    assert steps_per_epoch(SIZES, batches, {}) == math.ceil(14_000 / 32)  # the largest task, every step
    assert steps_per_epoch(SIZES, {"ner": 512, "pos": 8, "sentiment": 16}, {}) == 9_000 // 8  # most batches
    sampler = ProportionalSampler(SIZES)
    inclusion = sampler.inclusion_probabilities(0, 1, k=1)
    assert steps_per_epoch(SIZES, batches, {"task": "sentiment"}, inclusion) == 1_000 * 24 // 16  # n / (b·π)
    with pytest.raises(ConfigError):
        steps_per_epoch(SIZES, batches, {"steps": 3, "task": "ner"})
    with pytest.raises(ConfigError):
        steps_per_epoch(SIZES, batches, {"task": "chunk"})
