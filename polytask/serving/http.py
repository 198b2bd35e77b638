"""An HTTP server for a trained run: every task predicted from one encoder pass per request (FastAPI).

Why: a multi-task model is most useful as one service that answers every task at once. The
server wraps ``Predictor``: ``POST /predict`` takes up to ``max_batch`` inputs (pre-split
``tokens`` or raw ``text``) and returns the same records as ``polytask predict``; ``GET /tasks``
describes the tasks (type, level, and the label space as in ``labels.json``: ``labels``, or a
regression's ``mean``/``std``); ``GET /health`` answers when the model is loaded. Bad
input gets HTTP 422 naming the input and field; too many inputs get 413. Requests run one at a
time through the model (a lock), each under ``torch.inference_mode``.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at runtime,
# and the request models are classes local to ``create_app``.
import threading
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require

if TYPE_CHECKING:
    from fastapi import FastAPI

    from polytask.serving.predictor import Predictor

DEFAULT_MAX_BATCH = 256


def create_app(predictor: "Predictor", *, max_batch: int = DEFAULT_MAX_BATCH, run: str | None = None) -> "FastAPI":
    """The FastAPI application serving ``predictor``."""
    require("fastapi", "polytask serve", "serve")
    import torch
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel, Field, model_validator

    from polytask.data.example import Example
    from polytask.data.tokenize import simple_tokenize

    class Input(BaseModel):
        tokens: list[str] | None = Field(None, description="pre-split words")
        text: str | None = Field(None, description="raw text, split on whitespace and punctuation")

        @model_validator(mode="after")
        def _one_of(self) -> "Input":
            if self.tokens is not None:
                if not self.tokens or not all(self.tokens):
                    raise ValueError("'tokens' must be a non-empty list of non-empty strings")
            elif self.text is None or not self.text.strip():
                raise ValueError("needs a non-empty 'tokens' list or 'text' string")
            return self

    class PredictRequest(BaseModel):
        inputs: list[Input] = Field(..., description="the sentences to predict every task for")
        tasks: list[str] | None = Field(None, description="only these tasks in the answer (default: all)")

    experiment = predictor.experiment
    names = list(experiment.tasks)
    lock = threading.Lock()
    app = FastAPI(title="polytask", description=f"multi-task predictions for {', '.join(names)}",
                  version=_version())

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": names, **({"run": run} if run else {})}

    @app.get("/tasks")
    def tasks() -> dict[str, Any]:
        return {name: {"type": task.type_name, "level": task.level, **task.labels_to_json()}
                for name, task in experiment.tasks.items()}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        if len(request.inputs) > max_batch:
            raise HTTPException(413, f"{len(request.inputs)} inputs; this server takes at most {max_batch} per request")
        unknown = sorted(set(request.tasks or ()) - set(names))
        if unknown:
            raise HTTPException(422, f"unknown task(s) {unknown}; this model has {names}")
        examples = [Example(tokens=item.tokens, origin=f"inputs.{i}") if item.tokens is not None
                    else Example(tokens=simple_tokenize(item.text), origin=f"inputs.{i}", text=item.text)
                    for i, item in enumerate(request.inputs)]
        with lock, torch.inference_mode():
            records = predictor.predict(examples) if examples else []
        if request.tasks is not None:
            for record in records:
                record["tasks"] = {name: record["tasks"][name] for name in request.tasks}
        return {"predictions": records}

    return app


def serve(run: str, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = DEFAULT_MAX_BATCH,
          device: str | None = None) -> None:
    """Load ``run`` and serve it with uvicorn until interrupted."""
    require("uvicorn", "polytask serve", "serve")
    import uvicorn

    from polytask.serving.predictor import Predictor

    app = create_app(Predictor.from_run(run, device), max_batch=max_batch, run=str(run))
    uvicorn.run(app, host=host, port=port, log_level="info")


def _version() -> str:
    from polytask import __version__

    return __version__
