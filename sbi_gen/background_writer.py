"""Write a store's chunks on one background thread while the next chunk is simulated.

Used by :func:`sbi_gen.executors.simulate_to_store` unless ``background_write=False``
(``sbi-gen simulate --sync-write``); each chunk goes through the store's
:class:`~sbi_gen.store.ChunkWriter`, so a write cut short leaves its chunk
incomplete, never half-valid.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np

from sbi_gen.store import ChunkWriter, SimulationStore

__all__ = ["BackgroundWriter"]


class BackgroundWriter:
    """Writes chunks on one background thread, so chunk k is written while chunk k + 1 is simulated.

    The thread opens the file, writes every chunk (with a :class:`ChunkWriter`)
    and closes it: no other thread touches h5py. :meth:`submit` checks a
    chunk's shapes, waits for the previous chunk's write (raising its error,
    if any) and hands the chunk over, so at most one chunk waits to be
    written. Leaving the ``with`` block, normally or on an error or Ctrl-C,
    waits for that write to finish; a write cut short (a killed process)
    leaves its chunk incomplete, never half-valid.
    """

    def __init__(self, store: SimulationStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sbi-gen-store-writer")
        self._files = ExitStack()
        self._writer: ChunkWriter | None = None
        self._pending: Future | None = None

    def _open(self) -> None:
        self._writer = ChunkWriter(self.store, self._files.enter_context(self.store.h5("r+")))

    def __enter__(self) -> BackgroundWriter:
        try:
            self._pool.submit(self._open).result()
        except BaseException:
            self._pool.shutdown()
            raise
        return self

    def submit(self, index: int, theta: np.ndarray, x: np.ndarray) -> None:
        """Hand chunk ``index`` over for writing, once the previous chunk is written."""
        theta, x = self.store._checked_chunk(index, theta, x)
        self.wait()
        self._pending = self._pool.submit(self._writer.write, index, theta, x)

    def wait(self) -> None:
        """Wait until the chunk handed over last is written (and flagged complete); raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            try:
                self._pool.submit(self._files.close).result()
            finally:
                self._pool.shutdown()
