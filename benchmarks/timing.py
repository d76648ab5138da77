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


def interleaved_best(tasks: dict[str, Callable[[], object]], repeats: int = 3,
                     cleanup: Callable[[object], None] | None = None) -> dict[str, tuple[float, float]]:
    """Fastest wall and process-CPU seconds of each task, the tasks taking turns ``repeats`` times.

    Taking turns spreads a busy machine's slow spells over every task, so
    their ratios hold better than those of back-to-back runs. What a task
    returns is released, and passed to ``cleanup`` (e.g. to delete a file it
    wrote), after its clock stops.
    """
    best = {name: (float("inf"), float("inf")) for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            wall, cpu = time.perf_counter(), time.process_time()
            result = task()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
            if cleanup is not None:
                cleanup(result)
            del result
    return best
