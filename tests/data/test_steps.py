"""The shared model (layer taps, one encoder pass) and the step builder (shared examples, determinism)."""

from __future__ import annotations

from polytask.config import validate_config
from polytask.data.steps import ShuffledCycle, StepBuilder
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict


def experiment(**encoder):
    data = tiny_config_dict()
    data["encoder"].update(encoder)
    return build_experiment(validate_config(data))


def test_tasks_on_one_source_share_a_micro_batch() -> None:
    exp = experiment()
    builder = StepBuilder(exp.config, exp.corpus, exp.tasks, exp.model.encoder.featurizer)
    batch = builder.build(0, 10)
    conll = [e for e in batch.examples if "pos" in e.labels]
    assert len(conll) == exp.config.training.batch_size
    assert all("chunk" in e.labels for e in conll)
    assert set(batch.present_tasks) == {"pos", "chunk", "sentiment"}


def test_steps_are_deterministic_and_resume_exactly() -> None:
    exp = experiment()
    first = StepBuilder(exp.config, exp.corpus, exp.tasks, exp.model.encoder.featurizer)
    for step in range(5):
        first.build(step, 20)
    state = first.state_dict()
    expected = [[e.origin for e in first.build(step, 20).examples] for step in range(5, 10)]
    resumed = StepBuilder(exp.config, exp.corpus, exp.tasks, exp.model.encoder.featurizer)
    resumed.load_state_dict(state)
    assert [[e.origin for e in resumed.build(step, 20).examples] for step in range(5, 10)] == expected


def test_shuffled_cycle_visits_every_example_once_per_pass() -> None:
    cycle = ShuffledCycle(7, seed=1)
    taken = cycle.take(7)
    assert sorted(taken) == list(range(7)) and cycle.passes == 1
    assert len(cycle.take(10)) == 10 and cycle.passes == 3  # 17 draws: third pass started
