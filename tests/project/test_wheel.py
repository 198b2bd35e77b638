"""polytask as an installed package: a wheel built from the source, installed into a fresh virtual environment,
runs ``polytask --version`` and a tiny training from a directory outside the source tree.

The fresh environment borrows the already-installed dependencies (torch, ...) instead of downloading them: the
wheel goes in with ``--no-deps``, then a ``.pth`` file appends this environment's site-packages to its path.
That ``.pth`` adds a plain path, so the editable install of the source tree found there is not activated
(its finder is started by a ``.pth`` of its own, which only a site directory's own ``.pth`` files run): the
``polytask`` that runs is the wheel's, as asserted. The wheel's file list must equal the package's files (so no
module or package data is left out), and the requirements it declares for ``[transformers,serve]`` must be met
by the borrowed environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def package_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "polytask").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def declared_requirements(wheel: Path, extras: set[str]) -> list:
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    environments = [{"extra": ""}, *({"extra": extra} for extra in extras)]
    return [r for r in requirements if r.marker is None or any(r.marker.evaluate(e) for e in environments)]


@pytest.mark.slow
def test_a_built_wheel_installs_and_trains_outside_the_source_tree(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so building writes nothing into the working tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "polytask", source / "polytask", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("polytask-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("polytask/")}
    assert packaged == package_files(source)

    unmet = []
    for requirement in declared_requirements(wheel, {"transformers", "serve"}):
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (installed: {installed})")
    assert unmet == [], "the environment lacks what the wheel declares for [transformers,serve]"

    venv = tmp_path / "venv"
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=tmp_path)
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    where = run([str(python), "-c", "import polytask; print(polytask.__file__)"], cwd=elsewhere, env=env).strip()
    assert Path(where).is_relative_to(venv), where
    from polytask._version import __version__

    assert run([str(venv / "bin" / "polytask"), "--version"], cwd=elsewhere, env=env).strip() == f"polytask {__version__}"

    shutil.copy(FIXTURES / "conll2000_tiny.txt", elsewhere / "tiny.txt")
    config = {"tasks": {"pos": {"type": "token_classification",
                                "data": {"format": "conll", "train": "tiny.txt", "dev": "tiny.txt", "column": 1}}},
              "encoder": {"word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 8, "layers": 1},
              "training": {"epochs": 1, "max_steps": 2, "batch_size": 2}}
    (elsewhere / "config.yaml").write_text(yaml.safe_dump(config))
    run([str(venv / "bin" / "polytask"), "train", "config.yaml", "--out", "run", "--quiet"], cwd=elsewhere, env=env)
    summary = json.loads((elsewhere / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["polytask_version"] == __version__
    assert (elsewhere / "run" / "config.yaml").read_text().startswith(f"# written by polytask {__version__}\n")
