"""Simulations on disk: one HDF5 file written chunk by chunk (training streams it: :mod:`sbi_gen.streaming`).

Layout of a store (attribute ``format = "sbi-gen-simulations"``, version 1)::

    theta       [n, d]          float32   chunk i holds rows [i * chunk_size, min((i + 1) * chunk_size, n))
    x           [n, *x_shape]   float32
    complete    [num_chunks]    uint8     1 once chunk i is written and flushed
    non_finite  [num_chunks]    int64     rows of chunk i holding NaN or inf
    checksum    [num_chunks]    uint32    CRC-32 of chunk i's theta and x bytes
    attrs["meta"]               JSON: simulator (name, options, prior, x_shape), plugin distribution and
                                version, seed, chunk size, non-finite policy, sbi-gen version, creation time

The file is created whole (in a temporary file renamed into place) with every
dataset contiguous and allocated up front, so writing a chunk touches only
that chunk's bytes, never HDF5's own metadata. A chunk is written, flushed,
and only then flagged complete: a killed run loses at most the chunks in flight,
and incomplete chunks read as missing. Every chunk read is checked against its
CRC-32, so a damaged file is named, not silently used. :class:`ChunkWriter`
writes chunks through h5py's low-level API in the calling thread (``sbi-gen
simulate --sync-write``); :class:`~sbi_gen.background_writer.BackgroundWriter` (the default) runs it on one
thread of its own, so a chunk is written while the next one is simulated: it
hides the write cost when a core is free, at the price of one more chunk in
flight when the process is killed.

Non-finite rows stay in the file (to inspect the simulator); with the
``"drop"`` policy they are never returned by :meth:`SimulationStore.read_chunk`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen._version import __version__
from sbi_gen.errors import DataError, ModelFileError
from sbi_gen.pairs import SimulationSet
from sbi_gen.prior import Prior, prior_from_config
from sbi_gen.simulation import SEEDING
from sbi_gen.simulation import num_chunks as count_chunks

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SimulationStore", "ChunkWriter", "is_store"]

FORMAT_NAME = "sbi-gen-simulations"
FORMAT_VERSION = 1
NON_FINITE_POLICIES = ("drop", "keep")
_DATASETS = ("theta", "x", "complete", "non_finite", "checksum")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a core dependency
        raise ModelFileError("simulation stores need h5py: pip install h5py") from None
    return h5py


def _allocated(file, name: str, shape: tuple[int, ...], dtype: str, fill: bool) -> None:
    """A contiguous dataset allocated when created (writes never touch metadata)."""
    h5py = _h5py()
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC if fill else h5py.h5d.FILL_TIME_NEVER)
    file.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl, fillvalue=0 if fill else None)


def _crc(theta: np.ndarray, x: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(x).data, zlib.crc32(np.ascontiguousarray(theta).data))


def _finite_rows(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.isfinite(theta).all(1) & np.isfinite(x.reshape(len(x), -1)).all(1)


def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite: an ``isfinite`` pass, or for large arrays a float32 sum.

    A sum is finite only if every term is, and needs no temporary array (twice as fast on 100 MB); a sum
    that overflows merely reads as "not all finite", and the rows are then counted one by one.
    """
    if values.size < 1 << 20:
        return bool(np.isfinite(values).all())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(values.sum()))


def _count_non_finite(theta: np.ndarray, x: np.ndarray) -> int:
    """Rows holding NaN or inf (the usual all-finite chunk costs one quick pass per array)."""
    if _all_finite(theta) and _all_finite(x):
        return 0
    return int((~_finite_rows(theta, x)).sum())


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file written as a simulation store (not a plain theta/x file)."""
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5") or not path.is_file():
        return False
    try:
        with _h5py().File(path, "r", locking=False) as file:
            return file.attrs.get("format") == FORMAT_NAME
    except OSError:
        return False


class SimulationStore:
    """A simulation store file: its metadata and chunk status; chunks are read and written by index.

    Use :meth:`create` for a new file and :meth:`open` for an existing one.
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path, self.meta = path, meta
        self.num_simulations: int = meta["num_simulations"]
        self.chunk_size: int = meta["chunk_size"]
        self.num_chunks: int = meta["num_chunks"]
        self.theta_dim: int = meta["theta_dim"]
        self.x_shape: tuple[int, ...] = tuple(meta["x_shape"])
        self.non_finite_policy: str = meta["non_finite"]

    # -- creating and opening ----------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike, simulator: dict[str, Any], num_simulations: int, seed: int = 0,
        chunk_size: int = 10_000, non_finite: str = "drop", plugin: dict[str, Any] | None = None,
        signal_shape: tuple[int, ...] | None = None,
    ) -> SimulationStore:
        """Create an empty store for ``num_simulations`` pairs; ``path`` must not exist.

        Arguments:
            simulator: the simulator's ``describe()`` (name, options, prior, x_shape).
            non_finite: ``"drop"`` (never read rows with NaN or inf) or ``"keep"``.
            plugin: the simulator's plugin (name, distribution, version), recorded as provenance.
            signal_shape: if given, the store holds the simulator's signals of this shape in ``x``
                (metadata ``content: "signal"``; see :mod:`sbi_gen.redraw`), not observations.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; sbi-gen never overwrites simulations (resume it, or choose another)")
        if num_simulations < 1 or chunk_size < 1:
            raise ValueError(f"num_simulations and chunk_size must be positive, got {num_simulations}, {chunk_size}")
        if non_finite not in NON_FINITE_POLICIES:
            raise ValueError(f"non_finite must be one of {NON_FINITE_POLICIES}, got {non_finite!r}")
        num_chunks = count_chunks(num_simulations, chunk_size)
        x_shape = tuple(int(s) for s in (simulator["x_shape"] if signal_shape is None else signal_shape))
        meta = {
            "simulator": simulator, "plugin": plugin or {}, "seed": int(seed), "num_simulations": int(num_simulations),
            "chunk_size": int(chunk_size), "num_chunks": num_chunks,
            "theta_dim": prior_from_config(simulator["prior"]).dim,
            "x_shape": list(x_shape), "non_finite": non_finite,
            "content": "pairs" if signal_shape is None else "signal",
            "seeding": SEEDING,
            "sbi_gen_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            with _h5py().File(tmp, "w") as file:
                file.attrs["format"] = FORMAT_NAME
                file.attrs["format_version"] = FORMAT_VERSION
                file.attrs["meta"] = json.dumps(meta)
                _allocated(file, "theta", (num_simulations, meta["theta_dim"]), "f4", fill=False)
                _allocated(file, "x", (num_simulations, *x_shape), "f4", fill=False)
                _allocated(file, "complete", (num_chunks,), "u1", fill=True)
                _allocated(file, "non_finite", (num_chunks,), "i8", fill=True)
                _allocated(file, "checksum", (num_chunks,), "u4", fill=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cls(path, meta)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SimulationStore:
        """Open and validate an existing store; a corrupt or truncated file raises :class:`ModelFileError`."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"no simulation store at {path}")
        with cls._file(path, "r") as file:
            if file.attrs.get("format") != FORMAT_NAME:
                raise ModelFileError(f"{path} is an HDF5 file but not an sbi-gen simulation store (no format "
                                     "attribute)")
            if int(file.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise ModelFileError(f"{path} has store format version {file.attrs['format_version']}; this sbi-gen "
                                     f"reads up to {FORMAT_VERSION}: upgrade sbi-gen")
            try:
                meta = json.loads(file.attrs["meta"])
                store = cls(path, meta)
            except (KeyError, TypeError, json.JSONDecodeError) as error:
                raise ModelFileError(f"{path}: the store metadata is missing or corrupt ({error!r})") from None
            missing = [name for name in _DATASETS if name not in file]
            if missing:
                raise ModelFileError(f"{path}: the store lacks the dataset(s) {missing}; the file is corrupt")
            expected = {"theta": (store.num_simulations, store.theta_dim), "x": (store.num_simulations, *store.x_shape),
                        **{name: (store.num_chunks,) for name in _DATASETS[2:]}}
            for name, shape in expected.items():
                if tuple(file[name].shape) != shape:
                    raise ModelFileError(f"{path}: dataset {name!r} has shape {tuple(file[name].shape)}, the "
                                         f"metadata says {shape}; the file is corrupt")
            flags = file["complete"][()]
            if not np.isin(flags, (0, 1)).all():
                raise ModelFileError(f"{path}: the chunk-complete flags hold values other than 0 and 1; the file is "
                                     "corrupt")
        return store

    @staticmethod
    @contextmanager
    def _file(path: Path, mode: str):
        """The h5py file; readers take no lock, so a store can be read while it is being written."""
        try:
            file = _h5py().File(path, mode, locking=(mode != "r"))
        except OSError as error:
            hint = " (on a file system without locking, set HDF5_USE_FILE_LOCKING=FALSE)"
            hint = hint if "lock" in str(error) else ""
            raise ModelFileError(f"{path} could not be opened as a simulation store: the file is truncated, corrupt "
                                 f"or locked by another writer ({error}){hint}") from None
        with file:
            yield file

    def h5(self, mode: str = "r"):
        """Context manager over the open h5py file (``"r"``, or ``"r+"`` to write chunks)."""
        return self._file(self.path, mode)

    # -- chunk status --------------------------------------------------------

    def rows(self, index: int) -> tuple[int, int]:
        """First and one-past-last row of chunk ``index``."""
        if not 0 <= index < self.num_chunks:
            raise IndexError(f"chunk {index} out of range: {self.path} has {self.num_chunks} chunks")
        return index * self.chunk_size, min((index + 1) * self.chunk_size, self.num_simulations)

    def status(self, file=None) -> np.ndarray:
        """``[num_chunks]`` bool: which chunks are complete (read fresh from the file)."""
        if file is None:
            with self.h5() as file:
                return file["complete"][()].astype(bool)
        return file["complete"][()].astype(bool)

    def missing_chunks(self) -> list[int]:
        """Indices of the chunks still to simulate."""
        return np.flatnonzero(~self.status()).tolist()

    @property
    def is_complete(self) -> bool:
        return bool(self.status().all())

    def non_finite_count(self) -> int:
        """Rows with NaN or inf among the complete chunks."""
        with self.h5() as file:
            return int(file["non_finite"][()][self.status(file)].sum())

    @property
    def prior(self) -> Prior:
        """The simulator's prior, as recorded in the file."""
        return prior_from_config(self.meta["simulator"]["prior"])

    # -- writing and reading ---------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[ChunkWriter]:
        """A :class:`ChunkWriter` on the file opened ``"r+"`` (locked: one writer at a time)."""
        with self.h5("r+") as file:
            yield ChunkWriter(self, file)

    def _checked_chunk(self, index: int, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``theta`` and ``x`` as contiguous float32, checked against chunk ``index``'s shapes."""
        start, stop = self.rows(index)
        theta = np.ascontiguousarray(theta, dtype=np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if theta.shape != (stop - start, self.theta_dim) or x.shape != (stop - start, *self.x_shape):
            raise DataError(f"chunk {index} has theta {theta.shape} and x {x.shape}; {self.path} expects "
                            f"{(stop - start, self.theta_dim)} and {(stop - start, *self.x_shape)}")
        return theta, x

    def write_chunk(self, file, index: int, theta: np.ndarray, x: np.ndarray) -> int:
        """Write chunk ``index`` into ``file`` (opened ``"r+"``), then flag it complete; returns its non-finite rows.

        For many chunks, :meth:`writer` keeps the dataset handles between them.
        """
        return ChunkWriter(self, file).write(index, theta, x)

    def read_chunk(self, index: int, file=None, raw: bool = False) -> tuple[Tensor, Tensor, np.ndarray]:
        """Chunk ``index`` as ``theta [m, d]``, ``x [m, *x_shape]`` and the file rows ``[m]`` they come from.

        Checks the chunk is complete and matches its checksum. Non-finite rows
        are left out under the ``"drop"`` policy unless ``raw``.
        """
        if file is None:
            with self.h5() as file:
                return self.read_chunk(index, file, raw)
        start, stop = self.rows(index)
        if not file["complete"][index]:
            raise DataError(f"chunk {index} of {self.path} is not complete: run `sbi-gen simulate --resume -o "
                            f"{self.path}` to finish the file")
        theta, x = file["theta"][start:stop], file["x"][start:stop]
        if _crc(theta, x) != int(file["checksum"][index]):
            raise ModelFileError(f"{self.path}: chunk {index} (rows {start}-{stop - 1}) does not match its checksum; "
                                 "the file is corrupt")
        rows = np.arange(start, stop)
        if self.non_finite_policy == "drop" and not raw and file["non_finite"][index]:
            keep = _finite_rows(theta, x)
            theta, x, rows = theta[keep], x[keep], rows[keep]
        return torch.from_numpy(theta), torch.from_numpy(x), rows

    def to_simulation_set(self, allow_incomplete: bool = False) -> SimulationSet:
        """Every pair in memory (complete chunks only, if ``allow_incomplete``)."""
        with self.h5() as file:
            done = self.status(file)
            if not done.all() and not allow_incomplete:
                raise DataError(f"{self.path} is incomplete: {int((~done).sum())} of {self.num_chunks} chunks are "
                                f"missing; run `sbi-gen simulate --resume -o {self.path}` to finish it")
            parts = [self.read_chunk(i, file)[:2] for i in np.flatnonzero(done)]
        theta = torch.cat([p[0] for p in parts]) if parts else torch.empty(0, self.theta_dim)
        x = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, *self.x_shape)
        return SimulationSet(theta, x, {**self.meta, "store": str(self.path)})

    def __repr__(self) -> str:
        return (f"SimulationStore({str(self.path)!r}, n={self.num_simulations}, chunks={self.num_chunks}x"
                f"{self.chunk_size}, simulator={self.meta['simulator'].get('name')!r})")


class ChunkWriter:
    """Writes whole chunks into a store's file opened ``"r+"`` (see :meth:`SimulationStore.writer`).

    A chunk's rows, non-finite count and CRC-32 are written and flushed, and
    only then is its complete flag set and flushed: a write cut short leaves
    the chunk incomplete, never half-valid. Dataset handles and selections are
    kept between chunks and writes go through h5py's low-level API, so a chunk
    costs little more than copying its bytes to the OS.
    """

    def __init__(self, store: SimulationStore, file) -> None:
        self.store, self.file = store, file
        self._h5s = _h5py().h5s
        datasets = {name: file[name] for name in _DATASETS}
        self._ids = {name: dataset.id for name, dataset in datasets.items()}
        self._spaces = {name: dataset.id.get_space() for name, dataset in datasets.items()}
        self._one = self._h5s.create_simple((1,))
        self._values = {name: np.zeros(1, dtype=datasets[name].dtype) for name in _DATASETS[2:]}

    def _write_rows(self, name: str, start: int, values: np.ndarray) -> None:
        space = self._spaces[name]
        space.select_hyperslab((start,) + (0,) * (values.ndim - 1), values.shape)
        self._ids[name].write(self._h5s.create_simple(values.shape), space, values)

    def _put(self, name: str, index: int, value: int) -> None:
        space, buffer = self._spaces[name], self._values[name]
        space.select_hyperslab((index,), (1,))
        buffer[0] = value
        self._ids[name].write(self._one, space, buffer)

    def write(self, index: int, theta: np.ndarray, x: np.ndarray) -> int:
        """Write chunk ``index`` and flag it complete; returns its rows holding NaN or inf."""
        theta, x = self.store._checked_chunk(index, theta, x)
        start = self.store.rows(index)[0]
        non_finite = _count_non_finite(theta, x)
        self._write_rows("theta", start, theta)
        self._write_rows("x", start, x)
        self._put("non_finite", index, non_finite)
        self._put("checksum", index, _crc(theta, x))
        self.file.flush()
        self._put("complete", index, 1)
        self.file.flush()
        return non_finite
