"""compare and affinity train many runs themselves: started by torchrun they stop with one line naming --jobs and --backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from polytask.cli import app

TORCHRUN_RANK = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}  # what torchrun sets for each rank


@pytest.mark.parametrize("command", [["compare", "--methods", "ew"], ["affinity"], ["affinity", "--measure", "pairs"]])
def test_compare_and_affinity_refuse_to_run_as_torchrun_ranks(command: list[str], tiny_config: Path,
                                                              tmp_path: Path) -> None:
    args = [command[0], str(tiny_config), *command[1:], "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args, env=TORCHRUN_RANK)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "torchrun" in lines[0] and "--jobs" in lines[0] and "--backend ray" in lines[0], lines
    assert not (tmp_path / "out").exists()
    assert CliRunner().invoke(app, ["compare", "--help"], env=TORCHRUN_RANK).exit_code == 0  # help still works
