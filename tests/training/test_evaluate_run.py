"""polytask.evaluate_run: the library function behind ``polytask evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polytask
from polytask.config import validate_config
from polytask.errors import PolytaskError
from tests.conftest import tiny_config_dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("evaluate") / "run"
    data = tiny_config_dict()
    data["training"]["epochs"] = 1
    summary = polytask.train(validate_config(data), str(run), progress=False).summary
    return run, summary


def test_scores_the_test_split_as_training_did_and_writes_the_file(trained) -> None:
    run, summary = trained
    results = polytask.evaluate_run(str(run), "test")
    for task, metrics in results.items():
        for metric, value in metrics.items():
            assert value == pytest.approx(summary["tasks"][task][metric]["test"])
    assert json.loads((run / "eval-test.json").read_text()) == {"split": "test", "tasks": results}


def test_overrides_change_what_is_read(trained) -> None:
    run, _ = trained
    results = polytask.evaluate_run(str(run), "dev", ["tasks.sentiment.data.max_eval=1"])
    assert set(results) == {"pos", "chunk", "sentiment"}


def test_user_mistakes_are_polytask_errors(trained, tmp_path: Path) -> None:
    run, _ = trained
    with pytest.raises(PolytaskError, match="unknown split 'train'"):
        polytask.evaluate_run(str(run), "train")
    with pytest.raises(PolytaskError):
        polytask.evaluate_run(str(tmp_path / "no-run"))
