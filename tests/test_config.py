"""Config validation: errors name the field path and file; overrides; path expansion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from polytask.config import (
    ExperimentConfig,
    apply_overrides,
    load_config,
    resolve_config,
    validate_config,
)
from polytask.errors import ConfigError
from tests.conftest import tiny_config_dict


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_config_loads_with_defaults(tiny_config: Path) -> None:
    config = load_config(tiny_config)
    assert set(config.tasks) == {"pos", "chunk", "sentiment"}
    assert config.balancing.method == "ew"
    assert config.head("chunk").layer == -1 and config.head("pos").layer == 1


def test_unknown_key_names_field_and_file(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["training"]["epoch_count"] = 3
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "training.epoch_count" in str(error.value) and str(path) in str(error.value)
    assert "unknown field" in str(error.value)


def test_wrong_type_names_field(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["training"]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"training\.lr"):
        load_config(write(tmp_path, data))


def test_missing_file_names_task_field(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["tasks"]["pos"]["data"]["train"] = str(tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match=r"tasks\.pos\.data\.train: file not found"):
        load_config(write(tmp_path, data))


def test_missing_required_field(tmp_path: Path) -> None:
    data = tiny_config_dict()
    del data["tasks"]["pos"]["data"]["format"]
    with pytest.raises(ConfigError, match=r"tasks\.pos\.data\.format: missing required field"):
        load_config(write(tmp_path, data))


def test_unset_environment_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("POLYTASK_NO_SUCH_VAR", raising=False)
    data = tiny_config_dict()
    data["tasks"]["pos"]["data"]["train"] = "${POLYTASK_NO_SUCH_VAR}/train.txt"
    with pytest.raises(ConfigError, match="POLYTASK_NO_SUCH_VAR is not set"):
        load_config(write(tmp_path, data))


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks:\n  pos: [1, 2\n  chunk: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: invalid YAML"):
        load_config(path)


def test_yaml_lines_name_the_line_of_every_key_and_item(tmp_path: Path) -> None:
    from polytask.config import yaml_lines

    path = write(tmp_path, "tasks:\n  pos:\n    type: x\n\n    data: [{format: conll},\n      {a: 1}]\ntraining: {}\n")
    assert yaml_lines(path) == {("tasks",): 1, ("tasks", "pos"): 2, ("tasks", "pos", "type"): 3,
                                ("tasks", "pos", "data"): 5, ("tasks", "pos", "data", "0"): 5,
                                ("tasks", "pos", "data", "0", "format"): 5, ("tasks", "pos", "data", "1"): 6,
                                ("tasks", "pos", "data", "1", "a"): 6, ("training",): 7}
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (f"{path}:5: tasks.pos.data.0: format 'conll' needs 'train'; {path}:6: "
                                "tasks.pos.data.1.format: missing required field; tasks.pos.data.1.a: unknown field "
                                "(check its spelling)")  # every problem, each at its line; one origin said once


def test_overrides_set_nested_fields_with_yaml_types(tiny_config: Path) -> None:
    config = load_config(tiny_config, ["training.epochs=5", "training.lr=0.01", "heads.chunk.layer=1",
                                       "balancing.options={c: 0.5}"])
    assert config.training.epochs == 5 and config.training.lr == 0.01
    assert config.head("chunk").layer == 1 and config.balancing.options == {"c": 0.5}


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match="section.field=value"):
        apply_overrides({}, ["training.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"training": 3}, ["training.epochs=2"])


def test_heads_must_name_tasks() -> None:
    data = tiny_config_dict()
    data["heads"]["ner"] = {"layer": 1}
    with pytest.raises(ConfigError, match="heads.ner: unknown task .ner.; the tasks are chunk, pos, sentiment"):
        validate_config(data)


def test_resolved_config_round_trips(tiny_config: Path) -> None:
    config = load_config(tiny_config)
    again = validate_config(yaml.safe_load(config.to_yaml()))
    assert again == config


def test_resolve_config_applies_overrides_to_a_path_and_to_an_object(tiny_config: Path) -> None:
    from_path = resolve_config(tiny_config, ["training.epochs=5"])
    from_object = resolve_config(validate_config(tiny_config_dict()), ["training.epochs=5"])
    assert isinstance(from_object, ExperimentConfig)
    assert from_path.training.epochs == from_object.training.epochs == 5
    untouched = validate_config(tiny_config_dict())
    assert resolve_config(untouched) is untouched
    with pytest.raises(ConfigError, match="training.nope"):
        resolve_config(untouched, ["training.nope=1"])
