"""Schemathesis against the server's own OpenAPI schema, over a real socket: generated requests never get a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytask.serving.predictor import Predictor
from tests.serving.uvicorn_thread import serving
from tests.test_cli import trained_run  # noqa: F401 - the module-scoped fixture

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (dev extra)")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (polytask[serve])")
from hypothesis import HealthCheck, settings  # noqa: E402


@pytest.fixture(scope="module")
def base_url(trained_run: Path):  # noqa: F811
    from polytask.serving.http import ServingLimits, create_app

    limits = ServingLimits(max_inputs=8, max_chars=200, max_words=40, max_body_bytes=16384, max_wait_ms=1)
    app = create_app(Predictor.from_run(trained_run), limits=limits, run=str(trained_run))
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def api_schema(base_url: str):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_no_generated_request_gets_a_server_error(api_schema) -> None:
    """Every operation in the schema, up to 30 generated requests each, valid and invalid, none answered 5xx."""
    from hypothesis import given
    from schemathesis import GenerationMode

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/tasks", "/health", "/ready", "/metrics"}
    statuses: list[tuple[str, int]] = []
    # invalid requests only where there is something to break: /predict's body
    plans = [(op, GenerationMode.POSITIVE) for op in operations]
    plans += [(op, GenerationMode.NEGATIVE) for op in operations if op.path == "/predict"]
    for operation, mode in plans:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=30, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def no_server_error(case) -> None:
            response = case.call()
            statuses.append((case.path, response.status_code))
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"

        no_server_error()
    predicted = [status for path, status in statuses if path == "/predict"]
    assert len(predicted) >= 40 and 200 in predicted and 422 in predicted, statuses  # valid and invalid bodies
