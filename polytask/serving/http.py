"""An HTTP server for a trained run or an ONNX export (torch-free): every task predicted from one encoder pass per model batch (FastAPI).

Why: a multi-task model is most useful as one service that answers every task at once.
``POST /predict`` takes inputs (pre-split ``tokens`` or raw ``text``, plus ``tokens_pair`` or
``text_pair`` for a sentence pair) and returns the same
records as ``polytask predict``; concurrent requests are batched together (``batcher.py``:
up to ``max_batch`` inputs, waiting at most ``max_wait_ms``), each still answered with its own
records. ``GET /tasks`` describes the tasks (type, level, label space as in ``labels.json``),
``GET /health`` answers while the process lives, ``GET /ready`` while it takes requests (503
once shutting down), ``GET /metrics`` in the Prometheus format.

Limits protect it (``ServingLimits``): the body size (413; a body needs a Content-Length, 411)
and the number of inputs per request (413), characters per text and words per input (422 naming the input and the limit). A bad
request is answered alone and never fails another; on shutdown (SIGTERM/SIGINT) the server
stops accepting, answers what is in flight, then exits.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at runtime,
# and the request models are classes local to ``create_app``.
import contextlib
import gc
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require

if TYPE_CHECKING:
    from fastapi import FastAPI

    from polytask.serving.onnx_predictor import OnnxPredictor
    from polytask.serving.predictor import Predictor


@dataclass(frozen=True)
class ServingLimits:
    """What one request may hold, and how requests are batched."""

    max_inputs: int = 256
    """inputs per request (413 above)"""
    max_chars: int = 10_000
    """characters per ``text`` (422 above)"""
    max_words: int = 512
    """words per input, after tokenisation (422 above)"""
    max_body_bytes: int = 1 << 20
    """request body size (413 above)"""
    max_batch: int = 64
    """inputs per model batch, across requests"""
    max_wait_ms: float = 5.0
    """how long the first request of a batch waits for others"""

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_chars", "max_words", "max_body_bytes", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms must be at least 0, not {self.max_wait_ms}")


def create_app(predictor: "Predictor | OnnxPredictor", *, limits: ServingLimits | None = None, run: str | None = None) -> "FastAPI":
    """The FastAPI application serving ``predictor``."""
    require("fastapi", "polytask serve", "serve")
    orjson = require("orjson", "polytask serve", "serve")
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field, ValidationError, model_validator

    from polytask.data.example import Example
    from polytask.data.tokenize import simple_tokenize
    from polytask.errors import DataError
    from polytask.serving.batcher import MicroBatcher
    from polytask.serving.inputs import tasks_by_form
    from polytask.serving.metrics import ServerMetrics

    limits = limits or ServingLimits()

    class Input(BaseModel):
        tokens: list[str] | None = Field(None, description="pre-split words")
        text: str | None = Field(None, description="raw text, split on whitespace and punctuation")
        tokens_pair: list[str] | None = Field(None, description="a sentence pair's second sentence, pre-split")
        text_pair: str | None = Field(None, description="a sentence pair's second sentence, raw text")

        @model_validator(mode="after")
        def _one_of(self) -> "Input":
            if self.tokens is not None:
                if not self.tokens or not all(self.tokens):
                    raise ValueError("'tokens' must be a non-empty list of non-empty strings")
            elif self.text is None or not self.text.strip():
                raise ValueError("needs a non-empty 'tokens' list or 'text' string")
            if self.tokens_pair is not None:
                if not self.tokens_pair or not all(self.tokens_pair):
                    raise ValueError("'tokens_pair' must be a non-empty list of non-empty strings")
            elif self.text_pair is not None and not self.text_pair.strip():
                raise ValueError("'text_pair' must be a non-empty string")
            return self

    class PredictRequest(BaseModel):
        inputs: list[Input] = Field(..., description="the sentences to predict every task for")
        tasks: list[str] | None = Field(None, description="only these tasks in the answer (default: all)")

    names = predictor.task_names
    pair_tasks = predictor.pair_tasks
    described = predictor.describe_tasks()
    metrics = ServerMetrics()
    state = {"ready": False}

    batcher = MicroBatcher(predictor.predict, max_batch=limits.max_batch, max_wait_ms=limits.max_wait_ms,
                           on_batch=metrics.observe_batch, on_queue=metrics.queue_depth.set)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        state["ready"] = True
        try:
            yield
        finally:  # uvicorn has stopped accepting and answered the open requests; drain what is queued
            state["ready"] = False
            await batcher.stop()

    app = FastAPI(title="polytask", description=f"multi-task predictions for {', '.join(names)}",
                  version=_version(), lifespan=lifespan)
    app.state.batcher = batcher

    async def send_body(send, status: int, body: bytes) -> None:
        """A whole JSON answer over plain ASGI."""
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def send_json(send, status: int, detail: str) -> None:
        await send_body(send, status, json.dumps({"detail": detail}).encode())

    class Guard:
        """Body-size limits before the body is read, metrics for every answer, and a 500 (never a crash) for a fault.

        A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` streams every response through
        an extra task and queue, which cost more than the model on small requests.
        """

        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            started = time.perf_counter()
            status = {"code": 500, "sent": False}

            async def observed_send(message):
                if message["type"] == "http.response.start":
                    status["code"], status["sent"] = message["status"], True
                await send(message)

            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if scope["method"] == "POST" and length is None:  # a chunked body: its size is unknown until read
                await send_json(observed_send, 411, "a request body needs a Content-Length header")
            elif length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
                await send_json(observed_send, 413, f"request body of {length.decode('latin-1')} bytes; this server "
                                                    f"takes at most {limits.max_body_bytes}")
            else:
                try:
                    await self.inner(scope, receive, observed_send)
                except Exception:  # a request may fail, the server may not
                    if status["sent"]:
                        raise
                    await send_json(observed_send, 500, "internal error while answering this request")
            metrics.observe_request(scope["path"], status["code"], time.perf_counter() - started)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": names, **({"run": run} if run else {})}

    @app.get("/ready")
    def ready() -> Any:
        if not state["ready"]:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics")
    def prometheus_metrics() -> Any:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/tasks")
    def tasks() -> dict[str, Any]:
        return described

    async def answer(parsed: PredictRequest) -> bytes:
        """The JSON body answering a validated request (an HTTPException for a limit or an unknown task)."""
        if len(parsed.inputs) > limits.max_inputs:
            raise HTTPException(413, f"{len(parsed.inputs)} inputs; this server takes at most {limits.max_inputs} "
                                     "per request")
        unknown = sorted(set(parsed.tasks or ()) - set(names))
        if unknown:
            raise HTTPException(422, f"unknown task(s) {unknown}; this model has {names}")
        examples = []
        for i, item in enumerate(parsed.inputs):
            example = Example(tokens=sentence(item.tokens, item.text, f"inputs.{i}", "text", "tokens"),
                              origin=f"inputs.{i}", text=item.text)
            if item.tokens_pair is not None or item.text_pair is not None:
                example.tokens_pair = sentence(item.tokens_pair, item.text_pair, f"inputs.{i}", "text_pair",
                                               "tokens_pair")
                example.text_pair = item.text_pair
            words = len(example.tokens) + len(example.tokens_pair or ())
            if words > limits.max_words:
                raise HTTPException(422, f"inputs.{i} has {words} words; the limit is {limits.max_words}")
            examples.append(example)
        try:
            tasks_by_form(names, pair_tasks, examples)
        except DataError as error:
            raise HTTPException(422, str(error)) from None
        if not state["ready"]:
            raise HTTPException(503, "the server is shutting down")
        records = await batcher.submit(examples)
        if parsed.tasks is not None:
            for record in records:  # a task answering the other input form is not in the record
                record["tasks"] = {name: record["tasks"][name] for name in parsed.tasks if name in record["tasks"]}
        return orjson.dumps({"predictions": records})  # the json module: 5x slower

    @app.post("/predict")
    async def predict(parsed: PredictRequest) -> dict[str, Any]:
        return Response(await answer(parsed), media_type="application/json")

    class FastPredict:
        """``POST /predict`` with a valid JSON body, answered without the framework's routing and request objects.

        Validation runs once, in pydantic's core, on the raw bytes; the answer is sent as it is. Any
        other request, and a body that does not validate, goes on to the FastAPI route above,
        which gives the canonical answer (its 422 details) and keeps the OpenAPI schema. Measured
        (``benchmarks/serving.py``): the framework's route cost more per request than a batched
        model call.
        """

        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict"
                    and dict(scope["headers"]).get(b"content-type", b"").startswith(b"application/json")):
                return await self.inner(scope, receive, send)
            chunks, more = [], True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            try:
                parsed = PredictRequest.model_validate_json(body)
            except ValidationError:
                return await self.inner(scope, _replay(body, receive), send)
            try:
                status, answered = 200, await answer(parsed)
            except HTTPException as error:
                status, answered = error.status_code, orjson.dumps({"detail": error.detail})
            await send_body(send, status, answered)

    def sentence(tokens: list[str] | None, text: str | None, where: str, text_key: str, tokens_key: str) -> list[str]:
        """The words of one sentence of an input, within the character limits (422 naming the input otherwise)."""
        if tokens is None and len(text) > limits.max_chars:
            raise HTTPException(422, f"{where}.{text_key} has {len(text)} characters; the limit is {limits.max_chars}")
        if tokens is not None and any(len(t) > limits.max_chars for t in tokens):
            raise HTTPException(422, f"{where}.{tokens_key} holds a word longer than {limits.max_chars} characters")
        return tokens if tokens is not None else simple_tokenize(text)

    app.add_middleware(FastPredict)
    app.add_middleware(Guard)  # added last: the outermost, so its limits and metrics cover the fast path
    return app


def serve(run: str, *, host: str = "127.0.0.1", port: int = 8000, limits: ServingLimits | None = None,
          device: str | None = None) -> None:
    """Load ``run`` on ``device`` and serve it with uvicorn until SIGINT/SIGTERM (then answer what is in flight and exit)."""
    require("uvicorn", "polytask serve", "serve")
    import uvicorn

    from polytask.serving.loading import load_predictor

    app = create_app(load_predictor(run, device), limits=limits, run=str(run))
    gc.freeze()  # the model's objects live as long as the server: no collection needs to walk them again

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # SIGTERM/SIGINT: queued requests run now, not after the window
            app.state.batcher.close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=30)
    Server(config).run()


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that hands over an already read ``body`` first, then listens to the connection again."""
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _version() -> str:
    from polytask._version import __version__

    return __version__
