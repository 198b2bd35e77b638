"""The synthetic benchmark (deterministic, relatedness as promised, errors naming fields) and the demo end to end."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from polytask import demo
from polytask.config import validate_config
from polytask.data.synthetic import (
    COLUMNS,
    build_world,
    chunk_labels,
    generate_splits,
    mood_label,
    score_value,
)
from polytask.errors import ConfigError, PolytaskError

ALL_COLUMNS = {column: column for column in COLUMNS}


def normalised_mutual_information(pairs: list[tuple[str, str]]) -> float:
    """I(X; Y) / H(Y) from (x, y) pairs: 0 when independent, 1 when y is a function of x."""
    n = len(pairs)
    joint, xs, ys = Counter(pairs), Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    information = sum(c / n * math.log(c * n / (xs[x] * ys[y])) for (x, y), c in joint.items())
    entropy = -sum(c / n * math.log(c / n) for c in ys.values())
    return information / entropy


def token_pairs(examples, column: str) -> list[tuple[str, str]]:
    return [(tag, hidden) for e in examples for tag, hidden in zip(e.labels[column], e.labels["latent"])]


# --------------------------------------------------------------------------------------
# The generator


def test_same_options_give_the_same_examples() -> None:
    first = generate_splits(ALL_COLUMNS, seed=3, size=50, dev_size=10, test_size=20)
    second = generate_splits(ALL_COLUMNS, seed=3, size=50, dev_size=10, test_size=20)
    assert {split: len(examples) for split, examples in first.items()} == {"train": 50, "dev": 10, "test": 20}
    for split in first:
        as_tuples = [[(e.tokens, e.labels, e.origin) for e in run[split]] for run in (first, second)]
        assert as_tuples[0] == as_tuples[1]


def test_corpora_share_the_world_not_the_sentences() -> None:
    one = generate_splits({"t": "tag"}, seed=3, corpus="one", size=200)["train"]
    two = generate_splits({"t": "tag"}, seed=3, corpus="two", size=200)["train"]
    other_world = generate_splits({"t": "tag"}, seed=4, corpus="one", size=200)["train"]
    assert [e.tokens for e in one] != [e.tokens for e in two]
    words = lambda examples: {w for e in examples for w in e.tokens}
    assert len(words(one) & words(two)) > 0.8 * len(words(one))  # one lexicon
    assert len(words(one) & words(other_world)) < 0.2 * len(words(one))  # another world, another lexicon


def test_fully_related_labels_are_functions_of_the_hidden_classes() -> None:
    world = build_world(5, 8, 40, 0.3)
    for example in generate_splits(ALL_COLUMNS, seed=5, size=300)["train"]:
        hidden = [int(tag[1:]) for tag in example.labels["latent"]]
        assert example.labels["tag"] == example.labels["latent"]
        assert example.labels["chunk"] == chunk_labels(hidden)
        assert example.labels["mood"] == mood_label(hidden, world.markers)
        assert example.labels["score"] == score_value(hidden, 10.0)
        assert 0.0 <= example.labels["score"] <= 10.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relatedness_controls_how_much_labels_follow_the_hidden_classes(seed: int) -> None:
    information = {}
    for relatedness in (0.0, 0.5, 1.0):
        examples = generate_splits({"tag": "tag", "latent": "latent"}, seed=seed, size=800, relatedness=relatedness)
        information[relatedness] = normalised_mutual_information(token_pairs(examples["train"], "tag"))
    assert information[1.0] == pytest.approx(1.0)
    assert information[0.0] < 0.08  # independent up to the finite vocabulary
    assert information[0.0] + 0.15 < information[0.5] < information[1.0] - 0.3


def test_unrelated_labels_are_a_function_of_the_word_and_its_predecessor() -> None:
    seen: dict[tuple[str | None, str], str] = {}
    for example in generate_splits({"u": "tag"}, seed=2, size=300, relatedness=0.0)["train"]:
        bigrams = zip([None] + example.tokens[:-1], example.tokens)
        for bigram, label in zip(bigrams, example.labels["u"]):
            assert seen.setdefault(bigram, label) == label


def test_sentence_labels_are_balanced_enough_to_learn() -> None:
    examples = generate_splits({"m": "mood"}, seed=0, size=1000)["train"]
    counts = Counter(e.labels["m"] for e in examples)
    assert set(counts) == {"none", "a", "b", "ab"}
    assert min(counts.values()) > 0.1 * len(examples)


@pytest.mark.parametrize(("options", "field", "message"), [
    ({"sizee": 10}, "tasks.t.data.synthetic.sizee", "unknown option"),
    ({"relatedness": 1.5}, "tasks.t.data.synthetic.relatedness", "less than or equal to 1"),
    ({"size": 0}, "tasks.t.data.synthetic.size", "greater than or equal to 1"),
    ({"min_length": 9, "max_length": 4}, "tasks.t.data.synthetic", "min_length 9 is above max_length 4"),
])
def test_bad_options_name_the_field(options: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        generate_splits({"t": "tag"}, **options)
    assert error.value.field == field
    assert message in str(error.value)


def test_unknown_column_names_the_task_column() -> None:
    with pytest.raises(ConfigError) as error:
        generate_splits({"t": "tag", "x": "pos"}, size=5)
    assert error.value.field == "tasks.x.data.column"
    assert "tag, chunk, mood, score, latent" in str(error.value)


def test_bad_options_in_a_config_name_the_field() -> None:
    from polytask.training.setup import build_experiment

    config = demo.single_task_config(demo.demo_config(), "mood")
    config["tasks"]["mood"]["data"]["synthetic"]["ambiguty"] = 0.5
    with pytest.raises(ConfigError, match=r"tasks\.mood\.data\.synthetic\.ambiguty: unknown option"):
        build_experiment(validate_config(config))


# --------------------------------------------------------------------------------------
# The demo


def test_demo_config_validates_and_has_the_promised_shape() -> None:
    config = validate_config(demo.DEMO_CONFIG)
    synthetic = {name: task.data.synthetic for name, task in config.tasks.items()}
    assert len({options["corpus"] for options in synthetic.values()}) == len(synthetic)  # separate datasets
    assert len({options["size"] for options in synthetic.values()}) == len(synthetic)  # of unequal sizes
    assert [name for name, options in synthetic.items() if options.get("relatedness", 1.0) == 0.0] == ["unrelated"]
    assert len({options["seed"] for options in synthetic.values()}) == 1  # one world
    assert config.tasks["score"].options == {"normalize": False}  # unequal loss scales
    assert config.training.epoch.steps and config.training.early_stopping.patience is None


def test_single_task_config_keeps_the_budget() -> None:
    single = demo.single_task_config(demo.DEMO_CONFIG, "score")
    assert list(single["tasks"]) == ["score"] and list(single["heads"]) == ["score"]
    assert single["training"] == demo.DEMO_CONFIG["training"]
    assert single["encoder"] == demo.DEMO_CONFIG["encoder"]
    assert single["tasks"]["score"] == demo.DEMO_CONFIG["tasks"]["score"]


def test_demo_config_reseeds_data_and_training() -> None:
    config = demo.demo_config(seed=9, steps=5, epochs=2)
    assert config["training"]["seed"] == 9
    assert config["training"]["epoch"]["steps"] == 5 and config["training"]["epochs"] == 2
    assert {task["data"]["synthetic"]["seed"] for task in config["tasks"].values()} == {9}
    assert demo.DEMO_CONFIG["training"]["epochs"] != 2  # the default is untouched


def test_run_demo_refuses_a_budget_that_differs_between_runs() -> None:
    config = demo.demo_config()
    del config["training"]["epoch"]  # an epoch would then be a pass over each run's own largest task
    with pytest.raises(ConfigError) as error:
        demo.run_demo(None, Console(quiet=True), progress=False, config=config)
    assert error.value.field == "training.epoch.steps"


def test_comparison_signs_delta_by_metric_direction() -> None:
    data = demo.demo_config()
    data["tasks"] = {task: data["tasks"][task] for task in ("score", "tag")}
    data["heads"] = {}
    config = validate_config(data)
    summaries = {
        "multi-task": {"tasks": {"score": {"mse": {"test": 0.5}}, "tag": {"accuracy": {"test": 80.0}}},
                       "steps": 4, "train_seconds": 1},
        "single-score": {"tasks": {"score": {"mse": {"test": 1.0}}}, "steps": 4, "train_seconds": 1},
        "single-tag": {"tasks": {"tag": {"accuracy": {"test": 90.0}}}, "steps": 4, "train_seconds": 1},
    }
    rows = {row["task"]: row for row in demo.compare_runs(config, summaries)["rows"]}
    assert rows["score"]["delta"] == pytest.approx(0.5) and rows["score"]["verdict"] == "gain"
    assert rows["tag"]["delta"] == pytest.approx(-10.0) and rows["tag"]["verdict"] == "loss"
    assert demo.verdict(0.5) == "same"


def small_demo_config() -> dict:
    config = demo.demo_config(steps=10, epochs=2)
    for task in config["tasks"].values():
        task["data"]["synthetic"].update(dev_size=20, test_size=20)
    return config


def test_run_demo_end_to_end(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    result = demo.run_demo(tmp_path / "demo", console, progress=False, config=small_demo_config())
    assert [row["task"] for row in result["rows"]] == list(demo.DEMO_CONFIG["tasks"])
    assert set(result["steps"].values()) == {20}  # the same budget in every run
    for task, seen in result["examples_seen"]["multi-task"].items():
        assert result["examples_seen"][f"single-{task}"] == {task: seen} == {task: 20 * 16}
    for row in result["rows"]:
        assert row["verdict"] in {"gain", "same", "loss"}
        assert math.isfinite(row["single_task"]) and math.isfinite(row["multi_task"])
    text = console.export_text()
    assert "single-task" in text and "multi-task" in text and "unrelated" in text
    written = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert written["rows"] == result["rows"]
    for run in ["multi-task"] + [f"single-{task}" for task in demo.DEMO_CONFIG["tasks"]]:
        assert (tmp_path / "demo" / run / "summary.json").is_file(), run
    with pytest.raises(PolytaskError, match="already holds a demo"):
        demo.run_demo(tmp_path / "demo", console, progress=False, config=small_demo_config())


def test_cli_demo_prints_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from polytask.cli import app

    monkeypatch.setattr(demo, "DEMO_CONFIG", small_demo_config())
    result = CliRunner().invoke(app, ["demo", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "single-task vs multi-task" in result.output and "verdict" in result.output
