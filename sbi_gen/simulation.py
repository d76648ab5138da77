"""The one simulation path: pairs drawn chunk by chunk, one random stream per chunk.

Chunk ``i`` of a run with seed ``s`` holds rows ``[i * chunk_size, (i + 1) * chunk_size)``
and draws them from its own ``torch.Generator``, seeded by
``numpy.random.SeedSequence(s, spawn_key=(i,))`` (the ``i``-th child of
``SeedSequence(s).spawn(...)``): ``theta`` from the prior, then
``x = simulator.simulate(theta)``. A chunk's pairs depend only on the seed,
the chunk size and its index, so every sink gives the same pairs:
:func:`simulate` collects the chunks in memory (``.npz`` files and the Python
API), :func:`sbi_gen.executors.simulate_to_store` writes them into an HDF5
store (in this process or on Dask workers, in any order).

With ``signals=True`` a chunk holds ``simulator.simulate_signal(theta)`` in place
of ``x``: the expensive part of a simulator with the signal split, from which
training re-draws the cheap part for every batch (:mod:`sbi_gen.redraw`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.pairs import SimulationSet

__all__ = [
    "DEFAULT_CHUNK_SIZE", "SEEDING", "chunk_generator", "num_chunks", "simulate", "simulate_chunk", "training_pairs",
]

#: pairs per chunk unless told otherwise: the unit of random streams, of parallelism and of atomic store writes
DEFAULT_CHUNK_SIZE = 10_000
#: how the pairs were seeded, recorded in every set's and store's metadata
SEEDING = "chunk i: torch.Generator seeded by numpy.random.SeedSequence(seed).spawn(num_chunks)[i]"


def chunk_generator(seed: int, index: int) -> torch.Generator:
    """The random stream of chunk ``index``: ``SeedSequence(seed).spawn(...)[index]`` as a torch generator."""
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def num_chunks(num_simulations: int, chunk_size: int) -> int:
    """How many chunks ``num_simulations`` pairs take (the last one may be short)."""
    return -(-num_simulations // chunk_size)


def simulate_chunk(simulator, seed: int, index: int, chunk_size: int, num_simulations: int,
                   signals: bool = False) -> tuple[Tensor, Tensor]:
    """Chunk ``index`` of a run: ``theta [m, d]`` and ``x [m, *x_shape]`` (or ``signal [m, *signal_shape]``).

    Both float32. ``x`` is simulated from the float32 ``theta`` that is
    returned, so every pair is exactly what the simulator gives for its
    stored parameters.
    """
    start = index * chunk_size
    size = min(chunk_size, num_simulations - start)
    if size <= 0:
        raise ValueError(f"chunk {index} of {num_simulations} pairs in chunks of {chunk_size} is empty")
    generator = chunk_generator(seed, index)
    theta = simulator.prior.sample(size, generator).float()
    if signals:
        x, expected, what = simulator.simulate_signal(theta), (size, *simulator.signal_shape), "signal"
    else:
        x, expected, what = simulator.simulate(theta, generator), (size, *simulator.x_shape), "x"
    x = torch.as_tensor(x).float()
    if tuple(x.shape) != expected:
        raise DataError(f"simulator {simulator.name!r} returned {what} of shape {tuple(x.shape)}, expected {expected}")
    return theta, x


def simulate(simulator, n: int, seed: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE,
             signals: bool = False) -> SimulationSet:
    """Draw ``n`` pairs in memory: ``theta [n, d]`` from the prior, then ``x [n, *x_shape]`` (float32).

    The same ``seed`` and ``chunk_size`` give the same pairs as an HDF5 store
    written by ``sbi-gen simulate -o FILE.h5`` (see the module docstring).
    ``signals=True``: the set holds ``simulator.simulate_signal(theta)`` as ``x``
    (metadata ``content: "signal"``), to train through :class:`~sbi_gen.redraw.RedrawnPairs`.
    """
    if n <= 0:
        raise ValueError(f"number of simulations must be positive, got {n}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if signals:
        from sbi_gen.redraw import require_signal_split

        require_signal_split(simulator)
    chunks = [simulate_chunk(simulator, seed, i, chunk_size, n, signals) for i in range(num_chunks(n, chunk_size))]
    theta = torch.cat([theta for theta, _ in chunks])
    x = torch.cat([x for _, x in chunks])
    meta = {"simulator": simulator.describe(), "seed": seed, "num_simulations": n, "chunk_size": chunk_size,
            "seeding": SEEDING, "content": "signal" if signals else "pairs"}
    return SimulationSet(theta, x, meta)


def training_pairs(simulator, num_simulations: int, seed: int, redraw: bool | None = None):
    """``num_simulations`` training pairs of ``simulator`` in memory: a :class:`~sbi_gen.pairs.SimulationSet`,
    or with re-drawing (:func:`uses_redraw`) :class:`~sbi_gen.redraw.RedrawnPairs` over as many signals. Returns
    ``(pairs, stored)`` with ``stored`` the set to save (pairs, or signals)."""
    from sbi_gen.redraw import RedrawnPairs, uses_redraw

    redraw = uses_redraw(simulator, redraw)
    stored = simulate(simulator, num_simulations, seed=seed, signals=redraw)
    return (RedrawnPairs(stored, simulator) if redraw else stored), stored
