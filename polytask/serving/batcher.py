"""Batching across clients: concurrent requests wait briefly in a queue and run through the model together.

Why: one encoder pass over 32 sentences costs far less than 32 passes over one, so a server
that answers each request alone wastes most of its time on per-call overhead. Requests are
queued; one worker takes the oldest, adds whatever else arrives within ``max_wait_ms`` (up to
``max_batch`` inputs in all), predicts every task for the lot in one call and hands each
request its own records; a request that would overflow the batch opens the next one (requests run in
arrival order, none alone for not fitting). A batch that fails is retried request by request, so one
bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from polytask.data.example import Example

Predict = Callable[[Sequence[Example]], list[dict[str, Any]]]


@dataclass
class _Pending:
    examples: list[Example]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects requests into model batches; ``await submit(examples)`` returns that request's records.

    ``predict`` runs in a worker thread (the event loop stays free to accept requests);
    ``on_batch(size, seconds)`` and ``on_queue(depth)`` report to the metrics.
    """

    def __init__(self, predict: Predict, *, max_batch: int = 64, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None,
                 on_queue: Callable[[int], None] | None = None):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_ms at least 0")
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000.0
        self.on_batch, self.on_queue = on_batch or (lambda size, seconds: None), on_queue or (lambda depth: None)
        self.queue: asyncio.Queue[_Pending | None] | None = None
        self.worker: asyncio.Task | None = None
        self.waiting = 0  # inputs queued and not yet in a batch
        self.closing = False  # stopping: batches stop waiting for more requests
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.worker = asyncio.create_task(self._run())

    def close(self) -> None:
        """From any thread (a signal handler): batches stop waiting for more requests; what is queued still runs."""
        if self.queue is None or self.loop is None or self.closing:
            return
        self.closing = True
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)  # wakes a worker waiting for a batch to fill

    async def stop(self) -> None:
        """Answer everything already queued, then stop the worker."""
        if self.queue is None or self.worker is None:
            return
        self.close()
        await asyncio.sleep(0)  # let the wake-up land in the queue before waiting for it to empty
        await self.queue.join()
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker

    async def submit(self, examples: list[Example]) -> list[dict[str, Any]]:
        if self.queue is None:
            raise RuntimeError("the batcher is not started")
        if not examples:
            return []
        pending = _Pending(examples, asyncio.get_running_loop().create_future())
        self.waiting += len(examples)
        self.on_queue(self.waiting)
        await self.queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        assert self.queue is not None
        carried: _Pending | None = None  # a request that did not fit the last batch: it opens the next one
        while True:
            first = carried if carried is not None else await self.queue.get()
            carried = None
            if first is None:  # the wake-up of stop()
                self.queue.task_done()
                continue
            batch, size = [first], len(first.examples)
            deadline = time.perf_counter() + self.max_wait
            while size < self.max_batch:
                timeout = 0 if self.closing else deadline - time.perf_counter()
                try:
                    pending = self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout)
                except (TimeoutError, asyncio.QueueEmpty):  # the window closed, or nothing more is queued
                    break
                if pending is None:  # stop(): answer what is here without waiting for more
                    self.queue.task_done()
                    continue
                if size + len(pending.examples) > self.max_batch:
                    carried = pending  # too big to join: it opens the next batch
                    break
                batch.append(pending)
                size += len(pending.examples)
            try:
                await self._answer(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _answer(self, batch: list[_Pending]) -> None:
        """Predict the batch in one call; if it fails, each request alone (so only a bad one fails)."""
        examples = [example for pending in batch for example in pending.examples]
        self.waiting -= len(examples)
        self.on_queue(self.waiting)
        started = time.perf_counter()
        try:
            records = await asyncio.to_thread(self.predict, examples)
        except Exception as error:
            if len(batch) == 1:
                _resolve(batch[0].future, error=error)
                return
            for pending in batch:
                try:
                    _resolve(pending.future, await asyncio.to_thread(self.predict, pending.examples))
                except Exception as single:
                    _resolve(pending.future, error=single)
            return
        finally:
            self.on_batch(len(examples), time.perf_counter() - started)
        start = 0
        for pending in batch:
            _resolve(pending.future, records[start : start + len(pending.examples)])
            start += len(pending.examples)


def _resolve(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
