"""Timing shared by the benchmark scripts: the median of a step over batches, after a warm-up."""

from __future__ import annotations

import statistics
import time


def median_ms(step, batches, warmup: int = 2) -> float:
    """Milliseconds: the median of ``step(inputs)`` over ``batches``, after ``warmup`` untimed calls."""
    for inputs in batches[:warmup]:
        step(inputs)
    times = []
    for inputs in batches:
        start = time.perf_counter()
        step(inputs)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
