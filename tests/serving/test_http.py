"""The HTTP server over a real socket: uvicorn on a free port, requests with httpx."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from polytask.serving.predictor import Predictor
from tests.test_cli import polytask as run_cli
from tests.test_cli import trained_run  # noqa: F401 - the module-scoped fixture

httpx = pytest.importorskip("httpx", reason="httpx is not installed (polytask[serve])")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (polytask[serve])")


@pytest.fixture(scope="module")
def server(trained_run: Path):  # noqa: F811
    from polytask.serving.http import create_app

    app = create_app(Predictor.from_run(trained_run), max_batch=4, run=str(trained_run))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    instance.should_exit = True
    thread.join(timeout=10)


def test_health_and_tasks(server, trained_run: Path) -> None:  # noqa: F811
    health = server.get("/health").json()
    assert health["status"] == "ok" and sorted(health["tasks"]) == ["chunk", "pos", "sentiment"]
    tasks = server.get("/tasks").json()
    assert tasks["chunk"]["level"] == "token" and tasks["sentiment"]["level"] == "sequence"
    assert "NN" in tasks["pos"]["labels"]


def test_predict_answers_every_task_like_the_predictor(server, trained_run: Path) -> None:  # noqa: F811
    from polytask.data.example import Example

    response = server.post("/predict", json={"inputs": [{"tokens": ["Prices", "rose", "sharply", "."]},
                                                        {"text": "A wonderful, moving film."}]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["tokens"] for p in predictions] == [["Prices", "rose", "sharply", "."],
                                                  ["A", "wonderful", ",", "moving", "film", "."]]
    assert predictions[1]["text"] == "A wonderful, moving film."
    expected = Predictor.from_run(trained_run).predict([Example(tokens=["Prices", "rose", "sharply", "."])])
    assert predictions[0] == expected[0]  # the same records as polytask predict
    assert set(predictions[0]["tasks"]) == {"pos", "chunk", "sentiment"}
    assert len(predictions[0]["tasks"]["pos"]["labels"]) == 4
    only = server.post("/predict", json={"inputs": [{"text": "Good."}], "tasks": ["sentiment"]}).json()
    assert list(only["predictions"][0]["tasks"]) == ["sentiment"]
    assert server.post("/predict", json={"inputs": []}).json() == {"predictions": []}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": [{"tokens": []}]}, 422, "non-empty list"),
        ({"inputs": [{"text": "  "}]}, 422, "needs a non-empty 'tokens' list or 'text' string"),
        ({"inputs": [{"tokens": ["ok"]}, {"words": ["x"]}]}, 422, "inputs"),
        ({"inputs": [{"text": "x"}] * 5}, 413, "at most 4"),
        ({"inputs": [{"text": "x"}], "tasks": ["ner"]}, 422, "unknown task(s) ['ner']"),
    ],
)
def test_bad_requests_name_the_problem(server, body: dict, status: int, message: str) -> None:
    response = server.post("/predict", json=body)
    assert response.status_code == status
    assert message in response.text
    if "words" in str(body):
        assert "inputs" in str(response.json()["detail"][0]["loc"]) and "1" in str(response.json()["detail"][0]["loc"])


def test_serve_refuses_a_broken_run_in_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", str(tmp_path))
    assert result.returncode == 2 and "not a complete run directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_serve_answers_over_http(trained_run: Path) -> None:  # noqa: F811
    """`polytask serve RUN --port P` as a user starts it: a separate process, answering on the socket."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(trained_run), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [{"text": "Fine."}]})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "polytask serve did not answer within 60 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert set(response.json()["predictions"][0]["tasks"]) == {"pos", "chunk", "sentiment"}
    finally:
        process.terminate()
        process.wait(timeout=20)
