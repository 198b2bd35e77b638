"""MicroBatcher: requests share model batches, get their own records, and fail alone."""

from __future__ import annotations

import asyncio

import pytest

from polytask.data.example import Example
from polytask.serving.batcher import MicroBatcher


def echo(examples):
    """Stands for the predictor: one record per input; refuses the word 'bad'."""
    if any("bad" in e.tokens for e in examples):
        raise ValueError("bad input")
    return [{"tokens": e.tokens, "batch": len(examples)} for e in examples]


def requests(*words_per_request: list[str]) -> list[list[Example]]:
    return [[Example(tokens=[word]) for word in words] for words in words_per_request]


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_a_batch_and_get_their_own_records() -> None:
    sizes: list[int] = []

    async def main():
        batcher = MicroBatcher(echo, max_batch=16, max_wait_ms=50, on_batch=lambda n, s: sizes.append(n))
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests(["a", "b"], ["c"], ["d", "e", "f"])))
        await batcher.stop()
        return answers

    answers = run(main())
    assert [[record["tokens"] for record in answer] for answer in answers] == [[["a"], ["b"]], [["c"]],
                                                                                [["d"], ["e"], ["f"]]]
    assert sizes == [6] and all(record["batch"] == 6 for answer in answers for record in answer)


def test_batches_never_exceed_max_batch() -> None:
    sizes: list[int] = []

    async def main():
        batcher = MicroBatcher(echo, max_batch=4, max_wait_ms=30, on_batch=lambda n, s: sizes.append(n))
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests(*[["w"] * k for k in (3, 2, 1, 4, 1)])))
        await batcher.stop()
        return answers

    answers = run(main())
    assert [len(a) for a in answers] == [3, 2, 1, 4, 1]
    assert sum(sizes) == 11 and max(sizes) <= 4


def test_a_request_that_would_overflow_a_batch_opens_the_next_one_in_arrival_order() -> None:
    batches: list[list[str]] = []

    def record_batches(examples):
        batches.append([e.tokens[0] for e in examples])
        return echo(examples)

    async def main():
        batcher = MicroBatcher(record_batches, max_batch=4, max_wait_ms=30)
        await batcher.start()
        await asyncio.gather(*(batcher.submit(r) for r in requests(["a1", "a2", "a3"], ["b1", "b2"], ["c1", "c2"])))
        await batcher.stop()

    run(main())
    # b does not fit beside a: it waits for the next batch (and is not run alone before a), and c joins it
    assert batches == [["a1", "a2", "a3"], ["b1", "b2", "c1", "c2"]]


def test_a_failing_request_fails_alone() -> None:
    async def main():
        batcher = MicroBatcher(echo, max_batch=16, max_wait_ms=50)
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests(["ok"], ["bad"], ["fine", "too"])),
                                       return_exceptions=True)
        await batcher.stop()
        return answers

    good, bad, other = run(main())
    assert isinstance(bad, ValueError)
    assert [r["tokens"] for r in good] == [["ok"]] and [r["tokens"] for r in other] == [["fine"], ["too"]]


def test_stop_answers_what_is_queued_and_the_queue_depth_returns_to_zero() -> None:
    depths: list[int] = []

    async def main():
        batcher = MicroBatcher(echo, max_batch=2, max_wait_ms=200, on_queue=depths.append)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit(r)) for r in requests(["a"], ["b"], ["c"], ["d"], ["e"])]
        await asyncio.sleep(0.01)
        await batcher.stop()
        return [t.result() for t in tasks]

    answers = run(main())
    assert [a[0]["tokens"] for a in answers] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert max(depths) >= 2 and depths[-1] == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(echo, max_batch=0)
