"""compare --backend ray: the runs train as Ray tasks on a local Ray instance, with the results and the
resume behaviour of local workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.evidence.backends import RayBackend, build_backend
from polytask.evidence.compare import compare
from tests.evidence.test_compare import tiny_compare_config


def summaries(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((out / "runs").rglob("summary.json")):
        summary = json.loads(path.read_text())
        summary.pop("train_seconds")
        found[str(path.parent.relative_to(out))] = summary
    return found


def test_compare_on_a_local_ray_instance_matches_local_workers(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    config = validate_config(tiny_compare_config())
    local = tmp_path / "local"
    compare(config, "ew", seeds=1, out=local, jobs=1, report=False)
    root = str(Path(__file__).resolve().parents[2])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
                                       "OMP_NUM_THREADS": "1"}})
    try:
        on_ray = tmp_path / "ray"
        result = compare(config, "ew", seeds=1, out=on_ray, backend=RayBackend(cpus=1), report=False)
        assert summaries(on_ray) == summaries(local) and len(summaries(local)) == 3  # 2 tasks alone + EW
        # an interrupted comparison resumes: a run whose summary is gone trains again on the cluster
        run = next((on_ray / "runs").rglob("summary.json"))
        run.unlink()
        again = compare(config, "ew", seeds=1, out=on_ray, backend=RayBackend(cpus=1), report=False)
        assert summaries(on_ray) == summaries(local)
        assert again["methods"] == result["methods"]
    finally:
        ray.shutdown()


def test_backend_names_are_checked(monkeypatch) -> None:
    import polytask.dependencies as dependencies

    assert build_backend("local") is None
    real = dependencies.import_module
    monkeypatch.setattr(dependencies, "import_module",
                        lambda name: (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real(name))
    with pytest.raises(PolytaskError, match=r"pip install 'polytask\[cluster\]'"):
        build_backend("ray", "auto")
    with pytest.raises(PolytaskError, match="unknown backend 'slurm'"):
        build_backend("slurm")
    with pytest.raises(PolytaskError, match="--address applies to --backend ray"):
        build_backend("local", "auto")
