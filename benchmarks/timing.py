"""Shared timing helper of the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(task: Callable[[], object], repeats: int = 3) -> float:
    """Wall time of the fastest of ``repeats`` calls of ``task``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - start)
    return best


def throughput(sample: Callable, x, n: int, repeats: int = 3) -> float:
    """Posterior samples per second (best of ``repeats``) of ``sample(x, n)`` for ``n`` draws per observation."""
    return n * len(x) / best_seconds(lambda: sample(x, n), repeats)
