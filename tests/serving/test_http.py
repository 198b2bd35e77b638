"""The HTTP server over a real socket: uvicorn on a free port, requests with httpx."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from polytask.serving.predictor import Predictor
from tests.serving.uvicorn_thread import serving
from tests.test_cli import polytask as run_cli
from tests.test_cli import trained_run  # noqa: F401 - the module-scoped fixture

httpx = pytest.importorskip("httpx", reason="httpx is not installed (polytask[serve])")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (polytask[serve])")


class BoomPredictor(Predictor):
    """The real predictor, failing on the word ``__boom__``: a request that breaks the model mid-batch."""

    def predict(self, examples):
        if any("__boom__" in example.tokens for example in examples):
            raise RuntimeError("boom")
        return super().predict(examples)


@pytest.fixture(scope="module")
def server(trained_run: Path):  # noqa: F811
    from polytask.serving.http import ServingLimits, create_app

    limits = ServingLimits(max_inputs=4, max_chars=60, max_words=12, max_body_bytes=2048, max_batch=8, max_wait_ms=50)
    app = create_app(BoomPredictor.from_run(trained_run), limits=limits, run=str(trained_run))
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


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
        ({"inputs": [{"text": "fine"}, {"text": "y" * 61}]}, 422, "inputs.1.text has 61 characters; the limit is 60"),
        ({"inputs": [{"tokens": ["w"] * 13}]}, 422, "inputs.0 has 13 words; the limit is 12"),
        ({"inputs": [{"text": "a b c d e f g h i j k l m"}]}, 422,
         "inputs.0 has 13 words; the limit is 12"),
        ({"inputs": [{"tokens": ["z" * 61]}]}, 422, "inputs.0.tokens holds a word longer than 60 characters"),
        ({"inputs": [{"text": "x" * 3000}]}, 413, "this server takes at most 2048"),  # before parsing
    ],
)
def test_bad_requests_name_the_problem(server, body: dict, status: int, message: str) -> None:
    response = server.post("/predict", json=body)
    assert response.status_code == status
    assert message in response.text
    if "words" in str(body):
        assert "inputs" in str(response.json()["detail"][0]["loc"]) and "1" in str(response.json()["detail"][0]["loc"])


def test_the_fast_predict_path_answers_as_the_framework_route(trained_run: Path) -> None:  # noqa: F811
    """The same requests through ``FastPredict`` and, with it taken out, through FastAPI's route: identical answers."""
    from polytask.serving.http import ServingLimits, create_app

    limits = ServingLimits(max_inputs=4, max_chars=60, max_words=12, max_body_bytes=2048, max_batch=8, max_wait_ms=1)
    bodies = [OK, {"inputs": [{"tokens": ["Prices", "rose", "."]}, {"text": "A moving film."}], "tasks": ["pos"]},
              {"inputs": []}, {"inputs": [{"text": "x"}] * 5}, {**OK, "tasks": ["ner"]}, {"inputs": [{"tokens": ["w"] * 13}]}]
    answers = {}
    for fast in (True, False):
        app = create_app(Predictor.from_run(trained_run), limits=limits)
        if not fast:
            app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != "FastPredict"]
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            answers[fast] = [(r.status_code, r.json()) for r in (client.post("/predict", json=b) for b in bodies)]
            # a body arriving in several pieces is read whole
            pieces = client.post("/predict", content=iter([b'{"inputs": [{"te', b'xt": "fine"}]}']),
                                 headers={"content-type": "application/json", "content-length": "30"})
            answers[fast].append((pieces.status_code, pieces.json()))
    assert [status for status, _ in answers[True]] == [200, 200, 200, 413, 422, 422, 200]
    assert answers[True] == answers[False]


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


def test_a_body_without_content_length_is_refused(server) -> None:
    response = server.post("/predict", content=iter([b'{"inputs": []}']))  # chunked transfer
    assert response.status_code == 411 and "Content-Length" in response.text


def test_ready_and_metrics(server) -> None:
    assert server.get("/ready").json() == {"status": "ready"}
    server.post("/predict", json={"inputs": [{"text": "Counted."}]})
    server.post("/predict", json={"inputs": [{"tokens": []}]})
    text = server.get("/metrics").text
    assert 'polytask_requests_total{path="/predict",status="200"}' in text
    assert 'polytask_request_errors_total{status="422"}' in text
    assert "polytask_request_seconds_bucket" in text and "polytask_batch_inputs_count" in text
    assert "polytask_queue_inputs 0.0" in text


def concurrently(server, bodies: list[dict]) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: server.post("/predict", json=body), bodies))


def batch_counts(server) -> tuple[float, float]:
    """(model batches, inputs in them) so far, from /metrics."""
    values = {}
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(("polytask_batch_inputs_count", "polytask_batch_inputs_sum")):
            name, value = line.split()
            values[name] = float(value)
    return values["polytask_batch_inputs_count"], values["polytask_batch_inputs_sum"]


def _rounded(value):
    """``value`` with every float rounded to 5 decimals (records compared across different batchings)."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_concurrent_requests_share_model_batches_and_get_their_own_records(server, trained_run: Path) -> None:  # noqa: F811
    from polytask.data.example import Example

    sentences = [["Prices", "rose", "."], ["He", "left", "early", "."], ["Good", "film", "."], ["No", "."],
                 ["Rates", "fell", "sharply", "."], ["It", "is", "."]]
    before = batch_counts(server)
    responses = concurrently(server, [{"inputs": [{"tokens": tokens}]} for tokens in sentences])
    after = batch_counts(server)
    assert [r.status_code for r in responses] == [200] * len(sentences)
    expected = Predictor.from_run(trained_run).predict([Example(tokens=t) for t in sentences])
    # a batch of other sentences pads differently: probabilities agree to float rounding, labels exactly
    assert _rounded([r.json()["predictions"][0] for r in responses]) == _rounded(expected)
    batches, inputs = after[0] - before[0], after[1] - before[1]
    assert inputs == len(sentences) and batches < len(sentences), "no two requests shared a batch"


def test_a_request_that_breaks_the_model_fails_alone(server) -> None:
    bodies = [{"inputs": [{"tokens": ["fine", "."]}]}, {"inputs": [{"tokens": ["__boom__"]}]},
              {"inputs": [{"tokens": ["also", "fine"]}]}, {"inputs": [{"text": "Still fine."}]}]
    responses = concurrently(server, bodies)
    assert [r.status_code for r in responses] == [200, 500, 200, 200]
    assert "internal error" in responses[1].text
    assert server.get("/health").json()["status"] == "ok"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_answers_the_requests_in_flight_then_exits(trained_run: Path) -> None:  # noqa: F811
    """Graceful shutdown: requests queued when SIGTERM arrives are answered at once (the batch window closes), then the process ends by itself."""
    import signal
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(trained_run), "--port", str(port),
                                "--max-wait-ms", "20000", "--max-batch", "64"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "polytask serve did not become ready within 60 s"
            time.sleep(0.2)
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(httpx.post, f"{base}/predict", json={"inputs": [{"text": f"Sentence {i} ."}]},
                                   timeout=30) for i in range(4)]
            while "polytask_queue_inputs 4.0" not in httpx.get(f"{base}/metrics").text:  # all four wait in the batcher
                assert time.monotonic() < deadline + 60, "the four requests did not reach the batcher"
                time.sleep(0.1)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            responses = [future.result() for future in futures]
            assert time.monotonic() - signalled < 15, "shutdown waited for the 20 s batch window to fill"
        assert [r.status_code for r in responses] == [200] * 4
        # uvicorn re-raises the signal once its graceful shutdown is done, so the status reports SIGTERM
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = process.stderr.read()
        assert "Waiting for application shutdown" in log and "Application shutdown complete" in log, log
    finally:
        if process.poll() is None:
            process.kill()


# ---------------------------------------------------------------------------------- bad requests, a catalogue
OK = {"inputs": [{"text": "fine"}]}
CATALOGUE = [  # (method, path, raw body or JSON, extra headers, status, words the answer must contain)
    ("POST", "/predict", b"{not json", {}, 422, "JSON decode error"),
    ("POST", "/predict", b"\xff\xfe\x00garbage", {}, 422, ""),
    ("POST", "/predict", b"null", {}, 422, "valid dictionary"),
    ("POST", "/predict", [1, 2], {}, 422, "valid dictionary"),
    ("POST", "/predict", {}, {}, 422, "Field required"),
    ("POST", "/predict", {"inputs": "Prices rose."}, {}, 422, "valid list"),
    ("POST", "/predict", {"inputs": [7]}, {}, 422, "inputs"),
    ("POST", "/predict", {"inputs": [{"tokens": "Prices rose"}]}, {}, 422, "valid list"),
    ("POST", "/predict", {"inputs": [{"tokens": ["a", 3]}]}, {}, 422, "valid string"),
    ("POST", "/predict", {"inputs": [{"tokens": []}]}, {}, 422, "non-empty list"),
    ("POST", "/predict", {"inputs": [{"tokens": ["a", ""]}]}, {}, 422, "non-empty strings"),
    ("POST", "/predict", {"inputs": [{"text": ""}]}, {}, 422, "needs a non-empty"),
    ("POST", "/predict", {"inputs": [{"text": " \t\n"}]}, {}, 422, "needs a non-empty"),
    ("POST", "/predict", {"inputs": [{"text": 42}]}, {}, 422, "valid string"),
    ("POST", "/predict", {"inputs": [{}]}, {}, 422, "needs a non-empty"),
    ("POST", "/predict", {"inputs": [{"words": ["x"]}]}, {}, 422, "needs a non-empty"),
    ("POST", "/predict", {**OK, "tasks": "pos"}, {}, 422, "valid list"),
    ("POST", "/predict", {**OK, "tasks": ["pos", "ner"]}, {}, 422, "unknown task(s) ['ner']"),
    ("POST", "/predict", {"inputs": [{"text": "x"}] * 5}, {}, 413, "at most 4 per request"),
    ("POST", "/predict", {"inputs": [{"text": "y" * 61}]}, {}, 422, "inputs.0.text has 61 characters"),
    ("POST", "/predict", {"inputs": [{"tokens": ["w"] * 13}]}, {}, 422, "inputs.0 has 13 words"),
    ("POST", "/predict", {"inputs": [{"tokens": ["z" * 61]}]}, {}, 422, "longer than 60 characters"),
    ("POST", "/predict", {"inputs": [{"text": "x" * 3000}]}, {}, 413, "at most 2048"),
    ("POST", "/predict", {"inputs": [{"text": "fine"}], "tasks": [None]}, {}, 422, "valid string"),
    ("GET", "/predict", None, {}, 405, "Method Not Allowed"),
    ("POST", "/tasks", OK, {}, 405, "Method Not Allowed"),
    ("PUT", "/predict", OK, {}, 405, "Method Not Allowed"),
    ("GET", "/no-such-page", None, {}, 404, "Not Found"),
    ("POST", "/predict", b'{"inputs": [{"text": "fine"}]}', {"content-type": "text/plain"}, 422, "valid dictionary"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "words"), CATALOGUE,
                         ids=[f"{i}-{c[0]}-{c[4]}" for i, c in enumerate(CATALOGUE)])
def test_catalogue_of_bad_requests(server, method, path, body, headers, status, words) -> None:
    import json

    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = server.request(method, path, content=content, headers={"content-type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert words in response.text
    assert response.headers["content-type"].startswith("application/json")


def test_the_catalogue_has_at_least_25_requests_and_the_server_survives_it(server) -> None:
    assert len(CATALOGUE) >= 25
    assert server.post("/predict", json=OK).status_code == 200
    assert server.get("/ready").status_code == 200
