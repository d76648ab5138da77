"""Store overhead: simulating chunks into a store versus into memory, and throughput on local Dask workers.

    python benchmarks/store.py [--simulators toy_gaussian gw] [--num 2000000] [--gw-num 50000]
                               [--chunk-size 10000] [--repeats 5] [--dask-workers 1 2] [--dir DIR]

For each simulator, both paths simulate the same chunks with the same seeds
(:class:`~sbi_gen.executors.ChunkTask`: prior draw and simulation) in this
process, one thread:

- in memory: every chunk copied into preallocated ``theta`` and ``x`` arrays;
- store: :func:`~sbi_gen.executors.simulate_to_store`, file creation and the
  final report included, with chunks written on a background thread (the
  default) and in the simulating thread (``--sync-write``).

Neither the freeing of the arrays nor the deletion of the file is timed.

The two are interleaved and each keeps the best of ``--repeats``, so a busy
machine slows both alike. Prints simulations per second, the store's overhead
(wall time, and process CPU time, which counts a background thread's work
too) and the load average. The toy Gaussian costs about 0.2 microseconds per
simulation, so its overhead is the store's own cost; ``gw`` costs far more per
simulation but writes 15 kB per pair. ``--dask-workers`` adds the toy
Gaussian's throughput on local Dask clusters (start-up excluded).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import interleaved_best

import sbi_gen
from sbi_gen.executors import ChunkTask, DaskExecutor, simulate_to_store


def in_memory(simulator, num: int, chunk_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The store's chunks (same seeding), each copied into arrays holding all ``num`` pairs."""
    meta = {"simulator": simulator.describe(), "seed": seed, "num_simulations": num, "chunk_size": chunk_size,
            "x_shape": list(simulator.x_shape)}
    task = ChunkTask.from_meta(meta)
    theta = np.empty((num, simulator.prior.dim), dtype=np.float32)
    x = np.empty((num, *simulator.x_shape), dtype=np.float32)
    for index in range(-(-num // chunk_size)):
        _, theta_chunk, x_chunk = task(index)
        start = index * chunk_size
        theta[start : start + len(theta_chunk)] = theta_chunk
        x[start : start + len(x_chunk)] = x_chunk
    return theta, x


def to_store(simulator, num: int, chunk_size: int, seed: int, folder: Path, executor=None,
             background_write: bool = True) -> Path:
    """The path of a new store of ``num`` pairs (the caller deletes it)."""
    path = folder / f"s{time.perf_counter_ns()}.h5"
    simulate_to_store(simulator, num, path, seed=seed, chunk_size=chunk_size, executor=executor, progress=False,
                      background_write=background_write)
    return path


def delete(result: object) -> None:
    if isinstance(result, Path):
        result.unlink()


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def overhead(simulator, name: str, num: int, chunk_size: int, repeats: int, folder: Path) -> None:
    delete(to_store(simulator, min(num, 2 * chunk_size), chunk_size, 1, folder))  # warm up: imports, caches
    print(f"{name} (theta [{simulator.prior.dim}], x {list(simulator.x_shape)}), {num:,} simulations in chunks "
          f"of {chunk_size:,}; best of {repeats}, interleaved; load average before {load()}")
    best = interleaved_best({
        "memory": lambda: in_memory(simulator, num, chunk_size, 0),
        "store": lambda: to_store(simulator, num, chunk_size, 0, folder),
        "sync": lambda: to_store(simulator, num, chunk_size, 0, folder, background_write=False),
    }, repeats, cleanup=delete)
    memory, memory_cpu = best["memory"]
    print(f"  in memory (chunked, no file)      {num / memory:12,.0f} simulations/s")
    for key, label in (("store", "background write (default)"), ("sync", "--sync-write")):
        seconds, cpu = best[key]
        print(f"  store, {label:<27}{num / seconds:12,.0f} simulations/s; overhead: wall "
              f"{100 * (seconds / memory - 1):+.1f} %, CPU {100 * (cpu / memory_cpu - 1):+.1f} %")
    print(f"  (load average after {load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", nargs="+", default=["toy_gaussian", "gw"])
    parser.add_argument("--num", type=int, default=2_000_000, help="simulations of the toy Gaussian")
    parser.add_argument("--gw-num", type=int, default=50_000, help="simulations of gw (15 kB of x each)")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[1, 2],
                        help="local Dask cluster sizes for the toy Gaussian (none: skip)")
    parser.add_argument("--dir", help="folder for the stores (default: the system's temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        for name in args.simulators:
            num = args.gw_num if name == "gw" else args.num
            overhead(sbi_gen.get_simulator(name), name, num, args.chunk_size, args.repeats, folder)
        toy, n, c = sbi_gen.get_simulator("toy_gaussian"), args.num, args.chunk_size
        for workers in args.dask_workers:
            with DaskExecutor(workers=workers) as executor:
                delete(to_store(toy, min(n, 10 * c), c, 0, folder, executor))  # warm the workers up
                best = interleaved_best({"dask": lambda executor=executor: to_store(toy, n, c, 0, folder, executor)},
                                        args.repeats, cleanup=delete)
            print(f"toy_gaussian into a store, local Dask cluster, {workers} worker(s): "
                  f"{n / best['dask'][0]:12,.0f} simulations/s")


if __name__ == "__main__":
    main()
