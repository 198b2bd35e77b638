"""Optional extras are checked where a feature is chosen, with one line naming the pip extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from polytask.config import validate_config
from polytask.dependencies import require
from polytask.errors import MissingDependencyError
from polytask.evidence.compare import compare
from polytask.evidence.lookahead_affinity import run_lookahead_affinity as run_affinity
from tests.conftest import tiny_config_dict


def test_require_returns_the_module() -> None:
    assert require("json", "anything", "none").dumps([1]) == "[1]"


@pytest.mark.parametrize("module,package", [("scipy.stats", "scipy"), ("matplotlib", "matplotlib")])
def test_a_missing_module_names_its_package_and_extra(monkeypatch, module: str, package: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as error:
        require(module, "plots", "report")
    assert str(error.value) == f"plots needs the optional package '{package}': pip install 'polytask[report]'"


def test_compare_checks_its_extra_before_training(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    config = validate_config(tiny_config_dict())
    with pytest.raises(MissingDependencyError, match=r"'matplotlib'.*polytask\[report\]"):
        compare(config, "ew", seeds=1, out=tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()  # nothing planned, nothing trained


def test_affinity_checks_its_extra_before_training(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match="'matplotlib'"):
        run_affinity(validate_config(tiny_config_dict()), tmp_path / "aff", progress=False)
    assert not (tmp_path / "aff").exists()

