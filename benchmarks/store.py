"""Simulation throughput into a store: in-process, 1 and 2 local Dask workers; store overhead vs memory.

    python benchmarks/store.py [--num 2000000] [--chunk-size 10000] [--repeats 3]

Prints simulations per second for the toy Gaussian (d = 5) with the
in-process executor and with local Dask clusters of 1 and 2 workers (cluster
start-up excluded), and the overhead of writing a store over simulating the
same chunks into memory. The toy Gaussian costs about a microsecond per
simulation, so these numbers measure sbi-gen's and Dask's own overheads;
simulators that cost milliseconds scale with the number of workers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sbi_gen
from sbi_gen.executors import ChunkTask, DaskExecutor, InProcessExecutor, simulate_to_store


def in_memory(simulator, num: int, chunk_size: int, seed: int) -> float:
    """Seconds to simulate the store's chunks into memory (same seeding, no file)."""
    meta = {"simulator": simulator.describe(), "seed": seed, "num_simulations": num, "chunk_size": chunk_size,
            "x_shape": list(simulator.x_shape)}
    task = ChunkTask.from_meta(meta)
    start = time.perf_counter()
    parts = [task(i) for i in range(-(-num // chunk_size))]
    np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    return time.perf_counter() - start


def to_store(simulator, num: int, chunk_size: int, seed: int, executor, folder: Path) -> float:
    path = folder / f"s{time.perf_counter_ns()}.h5"
    start = time.perf_counter()
    simulate_to_store(simulator, num, path, seed=seed, chunk_size=chunk_size, executor=executor, progress=False)
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2_000_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    simulator = sbi_gen.get_simulator("toy_gaussian")
    n, c = args.num, args.chunk_size

    def best(run) -> float:
        return statistics.median(run() for _ in range(args.repeats))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        sbi_gen.simulate(simulator, n, seed=0)
        plain = time.perf_counter() - start
        memory = best(lambda: in_memory(simulator, n, c, 0))
        local = best(lambda: to_store(simulator, n, c, 0, InProcessExecutor(), folder))
        print(f"toy_gaussian (d = 5), {n:,} simulations in chunks of {c:,}; median of {args.repeats}")
        print(f"  sbi_gen.simulate (in memory, one stream)   {n / plain:12,.0f} simulations/s")
        print(f"  chunked, in memory (no file)                {n / memory:12,.0f} simulations/s")
        print(f"  store, in-process executor                  {n / local:12,.0f} simulations/s")
        print(f"  store overhead vs chunked in memory         {100 * (local / memory - 1):+11.1f} %")
        for workers in (1, 2):
            with DaskExecutor(workers=workers) as executor:
                to_store(simulator, min(n, 10 * c), c, 0, executor, folder)  # warm the workers up
                seconds = best(lambda executor=executor: to_store(simulator, n, c, 0, executor, folder))
            print(f"  store, local Dask cluster, {workers} worker(s)       {n / seconds:12,.0f} simulations/s")


if __name__ == "__main__":
    main()
