"""Named, independent random streams from one seed: the only place seeds are derived.

A command builds one :class:`RandomStreams` from its ``--seed`` and hands each
step its own stream by name (``"simulate"``, ``"train"``, ``"observations"``,
``"sbc"``, ``"sample"``, ``"calibrate"``, ...). Stream ``name`` of seed ``s``
is ``numpy.random.SeedSequence(s, spawn_key=(k,))`` with ``k`` a hash of the
name, so the streams are statistically independent (SeedSequence's guarantee),
adding or reordering steps changes no other step's draws, and nothing is
derived by adding offsets to seeds (``seed + 1`` and ``seed`` of the next run
would collide). :meth:`RandomStreams.child` gives a step streams of its own
(for example the calibration report inside a run).

Example:
    >>> streams = RandomStreams(0)
    >>> streams.seed("train") == RandomStreams(0).seed("train") != streams.seed("sample")
    True
    >>> streams.child("calibrate").seed("sbc") == streams.seed("sbc")
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["RandomStreams", "seeded_torch"]

_SEED_BITS = 63  # fits every consumer: torch.manual_seed, numpy.random.default_rng, Python's random


def _key(name: str) -> int:
    """A stable 32-bit key for a stream name (the same in every process and Python version)."""
    if not name:
        raise ValueError("a random stream needs a non-empty name")
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


class RandomStreams:
    """Independent random streams, one per name, all from ``seed`` (any non-negative int)."""

    def __init__(self, seed: int, _path: tuple[int, ...] = ()) -> None:
        if int(seed) != seed or seed < 0:
            raise ValueError(f"a seed is a non-negative integer, got {seed!r}")
        self.root, self._path = int(seed), _path

    def sequence(self, name: str) -> np.random.SeedSequence:
        """The ``SeedSequence`` of stream ``name``."""
        return np.random.SeedSequence(self.root, spawn_key=(*self._path, _key(name)))

    def seed(self, name: str) -> int:
        """Stream ``name`` as an integer seed in ``[0, 2**63)`` (for APIs that take a seed)."""
        state = int(self.sequence(name).generate_state(1, np.uint64)[0])
        return state >> (64 - _SEED_BITS)

    def generator(self, name: str) -> torch.Generator:
        """Stream ``name`` as a fresh CPU ``torch.Generator``."""
        return torch.Generator().manual_seed(self.seed(name))

    def child(self, name: str) -> RandomStreams:
        """Streams of their own for step ``name``, independent of this object's streams."""
        return RandomStreams(self.root, (*self._path, _key(name)))

    def __repr__(self) -> str:
        return f"RandomStreams(seed={self.root}, path={self._path})"


@contextmanager
def seeded_torch(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run a block with torch's global generator (and ``device``'s, on CUDA) seeded by ``seed``.

    Code that draws from the global generator without a ``generator=``
    argument (weight initialization, training-loss noise) is then reproducible,
    and the caller's global random state is restored on leaving the block, so
    fitting a model never changes what the user's own ``torch.rand`` returns next.
    """
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
