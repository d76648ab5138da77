"""Run simulation chunks in-process or on Dask, and write them into a store.

Every chunk is :func:`sbi_gen.simulation.simulate_chunk`, with its own random
stream (see :mod:`sbi_gen.simulation`). A chunk's pairs therefore depend only
on the seed, the chunk size and its index, so a store's contents are
bit-for-bit the same whatever the executor, the number of workers or the
order chunks finish in, and equal to :func:`sbi_gen.simulation.simulate`'s
in-memory pairs for the same seed and chunk size.

Executors share one tiny interface, ``map_unordered(fn, indices)``, yielding
``fn(i)`` as each finishes. :class:`InProcessExecutor` is the default;
:class:`DaskExecutor` runs on a local Dask cluster (``workers=N``) or on an
existing scheduler (``address=...``, e.g. a ``dask-jobqueue`` cluster on
SLURM or PBS). Workers rebuild the simulator from its registered name and
options and return plain arrays; only the client writes the file.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm

from sbi_gen.background_writer import BackgroundWriter
from sbi_gen.errors import DataError, SbiGenError
from sbi_gen.locking import exclusive_output
from sbi_gen.simulation import DEFAULT_CHUNK_SIZE, simulate_chunk
from sbi_gen.store import SimulationStore

__all__ = ["Executor", "InProcessExecutor", "DaskExecutor", "make_executor", "ChunkTask", "ChunkError",
           "SimulationReport", "simulate_to_store", "check_resume", "resume_store"]

T = TypeVar("T")


class ChunkError(SbiGenError, RuntimeError):
    """A simulation chunk raised; carries the chunk index and the original error as text."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(index, message)
        self.index, self.message = index, message

    def __str__(self) -> str:
        return f"chunk {self.index} failed: {self.message}"


_SIMULATORS: dict[tuple[int, str, str], Any] = {}


def _simulator(name: str, options: dict[str, Any]):
    """The registered simulator, built once per process (workers rebuild it; nothing unpicklable travels)."""
    from sbi_gen.registry import get_registry

    registry = get_registry()
    key = (id(registry), name, json.dumps(options, sort_keys=True))
    if key not in _SIMULATORS:
        _SIMULATORS[key] = registry.simulator(name, **options)
    return _SIMULATORS[key]


@dataclass(frozen=True)
class ChunkTask:
    """Simulate chunk ``i`` of a run: ``task(i) -> (i, theta [m, d], x [m, *x_shape])`` as float32 arrays."""

    simulator: str
    options: dict[str, Any]
    seed: int
    num_simulations: int
    chunk_size: int
    signals: bool = False

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ChunkTask:
        return cls(meta["simulator"]["name"], dict(meta["simulator"]["options"]), meta["seed"],
                   meta["num_simulations"], meta["chunk_size"], meta.get("content", "pairs") == "signal")

    def __call__(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        try:
            simulator = _simulator(self.simulator, self.options)
            theta, x = simulate_chunk(simulator, self.seed, index, self.chunk_size, self.num_simulations,
                                      self.signals)
        except Exception as error:  # noqa: BLE001 - sent back as text: the original may not unpickle
            raise ChunkError(index, f"{type(error).__name__}: {error}") from error
        return index, theta.numpy(), x.numpy()


class Executor(Protocol):
    """Runs ``fn`` over chunk indices and yields results as they complete."""

    workers: int

    def map_unordered(self, fn: Callable[[int], T], indices: Sequence[int]) -> Iterator[T]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """The default: chunks run one after another in this process."""

    workers = 1

    def map_unordered(self, fn: Callable[[int], T], indices: Sequence[int]) -> Iterator[T]:
        for index in indices:
            yield fn(index)

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskExecutor:
    """Chunks on Dask distributed: a local cluster of ``workers`` processes, or the scheduler at ``address``.

    At most ``in_flight`` chunks (default: twice the worker threads) are
    submitted at once, so memory on the client stays bounded.
    """

    def __init__(self, workers: int | None = None, address: str | None = None, in_flight: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SbiGenError("--workers and --scheduler need Dask: pip install 'sbi-gen[dask]'") from None
        if (workers is None) == (address is None):
            raise ValueError("give either workers (a local cluster) or address (an existing scheduler)")
        self.cluster = None
        if address is None:
            if workers < 1:
                raise ValueError(f"workers must be positive, got {workers}")
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.in_flight = in_flight

    def map_unordered(self, fn: Callable[[int], T], indices: Sequence[int]) -> Iterator[T]:
        from distributed import as_completed

        remaining = iter(indices)
        window = self.in_flight or 2 * max(1, sum(self.client.nthreads().values()))
        pending = {self.client.submit(fn, i, pure=False) for i in islice(remaining, window)}
        queue = as_completed(pending)
        try:
            for future in queue:
                pending.discard(future)
                result = future.result()
                future.release()
                for index in islice(remaining, 1):
                    new = self.client.submit(fn, index, pure=False)
                    pending.add(new)
                    queue.add(new)
                yield result
        finally:
            if pending:
                self.client.cancel(list(pending))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> InProcessExecutor | DaskExecutor:
    """In-process by default; a local Dask cluster for ``workers``; the Dask scheduler at ``scheduler``."""
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    if workers is None and scheduler is None:
        return InProcessExecutor()
    return DaskExecutor(workers=workers, address=scheduler)


@dataclass
class SimulationReport:
    """What a simulation run did: chunks written now, chunks complete in the file, non-finite rows, speed."""

    path: str
    num_simulations: int
    num_chunks: int
    chunks_written: int
    chunks_complete: int
    simulations_written: int
    non_finite: int
    non_finite_policy: str
    seconds: float
    workers: int

    @property
    def simulations_per_second(self) -> float:
        return self.simulations_written / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "simulations_per_second": self.simulations_per_second}

    def summary(self) -> str:
        """One line for the command line."""
        done = "complete" if self.chunks_complete == self.num_chunks else "INCOMPLETE"
        verb = "dropped when read" if self.non_finite_policy == "drop" else "kept"
        return (f"wrote {self.simulations_written} pairs in {self.chunks_written} chunk(s) to {self.path} "
                f"({self.simulations_per_second:,.0f} simulations/s on {self.workers} worker(s)); "
                f"{self.chunks_complete}/{self.num_chunks} chunks {done}; {self.non_finite} non-finite row(s) {verb}")


def _run(store: SimulationStore, executor, progress: bool, background_write: bool = True) -> SimulationReport:
    executor = executor or InProcessExecutor()
    missing = store.missing_chunks()
    task = ChunkTask.from_meta(store.meta)
    start, written, rows = time.perf_counter(), 0, 0
    total_rows = sum(store.rows(i)[1] - store.rows(i)[0] for i in missing)
    bar = tqdm(total=total_rows, unit="sim", unit_scale=True, desc="simulating", disable=not progress)
    # background: chunk k is written on a thread of its own while chunk k + 1 is simulated (the toy
    # Gaussian's store overhead drops from ~17 % to ~1 %); leaving the block, also on an error or Ctrl-C,
    # finishes the write in progress, so only a killed process can lose two chunks instead of one
    writer_context = BackgroundWriter(store) if background_write else store.writer()
    try:
        with writer_context as writer:
            put = writer.submit if background_write else writer.write
            for index, theta, x in executor.map_unordered(task, missing):
                put(index, theta, x)
                written, rows = written + 1, rows + len(theta)
                bar.update(len(theta))
                bar.set_postfix_str(f"chunks {store.num_chunks - len(missing) + written}/{store.num_chunks}")
    except ChunkError as error:
        raise ChunkError(error.index, f"{error.message}. {written} chunk(s) were written before it; "
                                      f"`sbi-gen simulate --resume -o {store.path}` completes the file once the "
                                      "simulator is fixed") from None
    finally:
        bar.close()
    return SimulationReport(
        str(store.path), store.num_simulations, store.num_chunks, written, int(store.status().sum()), rows,
        store.non_finite_count(), store.non_finite_policy, time.perf_counter() - start, executor.workers,
    )


def simulate_to_store(
    simulator, num_simulations: int, path: str | Path, seed: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE,
    executor: InProcessExecutor | DaskExecutor | None = None, non_finite: str = "drop", progress: bool = True,
    background_write: bool = True, signals: bool = False,
) -> SimulationReport:
    """Simulate ``num_simulations`` pairs into a new store at ``path``, chunk by chunk.

    Arguments:
        simulator: a registered simulator (built by ``get_simulator``): workers rebuild it by name and options.
        chunk_size: pairs per chunk; the unit of parallelism, of atomic writes and of the random streams.
        executor: where chunks run (default: in this process).
        non_finite: ``"drop"`` (rows with NaN or inf are counted and never read) or ``"keep"``.
        background_write: write each chunk on a background thread while the next one is simulated
            (the default); ``False`` writes in this thread, so that a killed process (``kill -9``) loses
            at most the chunk being simulated, not also the one being written. An exception or Ctrl-C
            lets the write in progress finish either way.
        signals: store ``simulator.simulate_signal(theta)`` instead of ``x`` (a simulator with the signal
            split; training re-draws the cheap part from them, :mod:`sbi_gen.redraw`).

    Returns:
        the :class:`SimulationReport`. If a chunk raises, the chunks written so
        far stay in the file and :class:`ChunkError` says how to resume.
    """
    from sbi_gen.registry import get_registry

    if not simulator.name:
        raise DataError("simulate_to_store needs a registered simulator (from get_simulator): workers rebuild it "
                        "by name")
    if signals:
        from sbi_gen.redraw import require_signal_split

        require_signal_split(simulator)
    plugin = get_registry().plugin_of("simulator", simulator.name)
    with exclusive_output(path):  # a second writer of the same path is refused, never silently replaces it
        store = SimulationStore.create(
            path, simulator.describe(), num_simulations, seed, chunk_size, non_finite,
            plugin={"name": plugin.name, "distribution": plugin.distribution, "version": plugin.version},
            signal_shape=tuple(simulator.signal_shape) if signals else None,
        )
        _SIMULATORS[(id(get_registry()), simulator.name, json.dumps(simulator.options, sort_keys=True))] = simulator
        return _run(store, executor, progress, background_write)


def check_resume(path: str | Path, *, options: dict[str, Any] | None = None, **given: Any) -> SimulationStore:
    """The store at ``path``, once every setting given (not ``None``) matches what it records.

    ``given`` may name ``simulator``, ``simulations``, ``seed``, ``chunk_size``,
    ``non_finite`` and ``signals`` (whether the store holds signals);
    ``options`` are simulator options, which must agree with the recorded
    ones. A mismatch is a :class:`DataError` naming the setting and both values.
    """
    meta = SimulationStore.open(path).meta
    recorded = {"simulator": meta["simulator"]["name"], "simulations": meta["num_simulations"], "seed": meta["seed"],
                "chunk_size": meta["chunk_size"], "non_finite": meta["non_finite"],
                "signals": meta.get("content", "pairs") == "signal"}
    unknown = sorted(set(given) - set(recorded))
    if unknown:
        raise TypeError(f"check_resume: unknown setting(s) {unknown}; expected {sorted(recorded)}")
    for key, value in given.items():
        if value is not None and value != recorded[key]:
            raise DataError(f"{path} was started with {key}={recorded[key]!r}; --resume got {value!r} (leave it out "
                            "to use the recorded value)")
    stored = meta["simulator"]["options"]
    if options and {**stored, **options} != stored:
        raise DataError(f"{path} was started with simulator options {stored}; --resume got {options}")
    return SimulationStore.open(path)


def resume_store(path: str | Path, executor: InProcessExecutor | DaskExecutor | None = None,
                 progress: bool = True, background_write: bool = True) -> SimulationReport:
    """Simulate the chunks of ``path`` that are missing (from an interrupted run), with the recorded settings.

    ``background_write`` as for :func:`simulate_to_store`.
    """
    from sbi_gen.registry import get_registry

    with exclusive_output(path):
        return _resume_locked(path, executor, progress, background_write, get_registry())


def _resume_locked(path, executor, progress: bool, background_write: bool, registry) -> SimulationReport:
    store = SimulationStore.open(path)
    recorded = store.meta.get("plugin") or {}
    name = store.meta["simulator"]["name"]
    plugin = registry.plugin_of("simulator", name)
    if recorded and (plugin.distribution, plugin.version) != (recorded.get("distribution"), recorded.get("version")):
        warnings.warn(
            f"{store.path} was started with simulator {name!r} from {recorded.get('distribution')} "
            f"{recorded.get('version')}; resuming with {plugin.distribution} {plugin.version}", RuntimeWarning,
            stacklevel=3,
        )
    return _run(store, executor, progress, background_write)
