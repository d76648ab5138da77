"""Simulations on disk: one HDF5 file written chunk by chunk, and streamed back for training.

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
and only then flagged complete: a killed run loses at most the chunk in
flight, and incomplete chunks read as missing. Every chunk read is checked
against its CRC-32, so a damaged file is named, not silently used.

Non-finite rows stay in the file (to inspect the simulator); with the
``"drop"`` policy they are never returned by :meth:`SimulationStore.read_chunk`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from sbi_gen.data import SimulationSet
from sbi_gen.errors import DataError, ModelFileError
from sbi_gen.prior import Prior, prior_from_config

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SimulationStore", "is_store", "StoreDataset", "StorePairs",
           "RunningMoments"]

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


def _count_non_finite(theta: np.ndarray, x: np.ndarray) -> int:
    """Rows holding NaN or inf; a float64 sum checks the usual all-finite chunk in one pass."""
    if np.isfinite(theta.sum(dtype=np.float64)) and np.isfinite(x.sum(dtype=np.float64)):
        return 0
    return int((~_finite_rows(theta, x)).sum())


def _put(dataset, index: int, value: int) -> None:
    """``dataset[index] = value`` through the low-level API (a tenth of the cost of h5py's indexing)."""
    h5py = _h5py()
    space = dataset.id.get_space()
    space.select_hyperslab((index,), (1,))
    dataset.id.write(h5py.h5s.create_simple((1,)), space, np.array([value], dtype=dataset.dtype))


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
    ) -> SimulationStore:
        """Create an empty store for ``num_simulations`` pairs; ``path`` must not exist.

        Arguments:
            simulator: the simulator's ``describe()`` (name, options, prior, x_shape).
            non_finite: ``"drop"`` (never read rows with NaN or inf) or ``"keep"``.
            plugin: the simulator's plugin (name, distribution, version), recorded as provenance.
        """
        from sbi_gen import __version__

        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; sbi-gen never overwrites simulations (resume it, or choose another)")
        if num_simulations < 1 or chunk_size < 1:
            raise ValueError(f"num_simulations and chunk_size must be positive, got {num_simulations}, {chunk_size}")
        if non_finite not in NON_FINITE_POLICIES:
            raise ValueError(f"non_finite must be one of {NON_FINITE_POLICIES}, got {non_finite!r}")
        num_chunks = math.ceil(num_simulations / chunk_size)
        x_shape = tuple(int(s) for s in simulator["x_shape"])
        meta = {
            "simulator": simulator, "plugin": plugin or {}, "seed": int(seed), "num_simulations": int(num_simulations),
            "chunk_size": int(chunk_size), "num_chunks": num_chunks,
            "theta_dim": prior_from_config(simulator["prior"]).dim,
            "x_shape": list(x_shape), "non_finite": non_finite,
            "seeding": "chunk i: torch.Generator seeded by numpy.random.SeedSequence(seed).spawn(num_chunks)[i]",
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

    def write_chunk(self, file, index: int, theta: np.ndarray, x: np.ndarray) -> int:
        """Write chunk ``index`` into ``file`` (opened ``"r+"``), then flag it complete; returns its non-finite rows."""
        start, stop = self.rows(index)
        theta, x = np.asarray(theta, dtype=np.float32), np.asarray(x, dtype=np.float32)
        if theta.shape != (stop - start, self.theta_dim) or x.shape != (stop - start, *self.x_shape):
            raise DataError(f"chunk {index} has theta {theta.shape} and x {x.shape}; {self.path} expects "
                            f"{(stop - start, self.theta_dim)} and {(stop - start, *self.x_shape)}")
        non_finite = _count_non_finite(theta, x)
        file["theta"][start:stop] = theta
        file["x"][start:stop] = x
        _put(file["non_finite"], index, non_finite)
        _put(file["checksum"], index, _crc(theta, x))
        file.flush()
        _put(file["complete"], index, 1)
        file.flush()
        return non_finite

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


# -- streaming ---------------------------------------------------------------------


def _validation_rows(seed: int, index: int, size: int, fraction: float) -> np.ndarray:
    """``[size]`` bool: which rows of chunk ``index`` are held out (fixed by the seed, not by the epoch)."""
    return np.random.default_rng([seed, index, 7]).random(size) < fraction


class StoreDataset(IterableDataset):
    """Shuffled batches ``(theta [b, d], x [b, *x_shape])`` streamed from a store, a chunk at a time.

    Each epoch visits the complete chunks in a seeded random order, pools up to
    ``buffer_rows`` rows, shuffles them and cuts batches, so memory stays at
    one buffer whatever the size of the file. The validation split holds out
    a fixed, seeded ``validation_fraction`` of every chunk's rows. With a
    ``DataLoader(num_workers > 0)`` each worker reads its own share of chunks.

    Arguments:
        store: the store (or its path).
        split: ``"train"``, ``"validation"`` or ``"all"``.
        row_filter: ``(theta, x) -> [m]`` bool of rows to keep (e.g. inside the prior).
        buffer_rows: rows pooled for shuffling (default: 256 MB worth, at least one chunk).
    """

    def __init__(
        self, store: SimulationStore | str | os.PathLike, split: str = "train", batch_size: int = 128,
        validation_fraction: float = 0.1, seed: int = 0, shuffle: bool = True, epoch: int = 0,
        buffer_rows: int | None = None, row_filter: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        if split not in ("train", "validation", "all"):
            raise ValueError(f"split must be 'train', 'validation' or 'all', got {split!r}")
        self.store = store if isinstance(store, SimulationStore) else SimulationStore.open(store)
        self.split, self.batch_size, self.validation_fraction = split, batch_size, validation_fraction
        self.seed, self.shuffle, self.epoch, self.row_filter = seed, shuffle, epoch, row_filter
        row_bytes = 4 * (self.store.theta_dim + math.prod(self.store.x_shape))
        self.buffer_rows = buffer_rows or max(self.store.chunk_size, (256 << 20) // row_bytes)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (the chunk order and the buffers)."""
        self.epoch = epoch

    def _chunks(self, file) -> list[int]:
        chunks = np.flatnonzero(self.store.status(file))
        if self.shuffle:
            chunks = np.random.default_rng([self.seed, self.epoch, 1]).permutation(chunks)
        worker = get_worker_info()
        return chunks.tolist() if worker is None else chunks[worker.id :: worker.num_workers].tolist()

    def _rows(self, file, index: int) -> tuple[Tensor, Tensor]:
        theta, x, rows = self.store.read_chunk(index, file)
        if self.split != "all":
            start = self.store.rows(index)[0]
            held = _validation_rows(self.seed, index, self.store.rows(index)[1] - start, self.validation_fraction)
            keep = torch.from_numpy(held[rows - start] == (self.split == "validation"))
            theta, x = theta[keep], x[keep]
        if self.row_filter is not None and len(theta):
            keep = self.row_filter(theta, x)
            theta, x = theta[keep], x[keep]
        return theta, x

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        seed = int(np.random.default_rng([self.seed, self.epoch, 2]).integers(2**62))
        generator = torch.Generator().manual_seed(seed)
        with self.store.h5() as file:
            pending_theta, pending_x, pooled = [], [], 0
            chunks = self._chunks(file)
            for k, index in enumerate(chunks):
                theta, x = self._rows(file, index)
                pending_theta.append(theta)
                pending_x.append(x)
                pooled += len(theta)
                if pooled < self.buffer_rows and k < len(chunks) - 1:
                    continue
                theta, x = torch.cat(pending_theta), torch.cat(pending_x)
                if self.shuffle:
                    order = torch.randperm(len(theta), generator=generator)
                    theta, x = theta[order], x[order]
                last = k == len(chunks) - 1
                full = len(theta) if last else len(theta) - len(theta) % self.batch_size
                for i in range(0, full, self.batch_size):
                    yield theta[i : i + self.batch_size], x[i : i + self.batch_size]
                pending_theta, pending_x, pooled = [theta[full:]], [x[full:]], len(theta) - full


class StorePairs:
    """A store as a training-data source for :func:`sbi_gen.training.train` (the ``PairSource`` protocol).

    Arguments:
        store: the store; every chunk must be complete.
        prior: rows with ``theta`` outside it are invalid.
        drop_invalid: drop invalid rows (non-finite or outside the prior) instead of raising.
        buffer_rows: see :class:`StoreDataset`.
    """

    def __init__(self, store: SimulationStore, prior: Prior | None = None, drop_invalid: bool = False,
                 buffer_rows: int | None = None) -> None:
        if not store.is_complete:
            missing = len(store.missing_chunks())
            raise DataError(f"{store.path} is incomplete: {missing} of {store.num_chunks} chunks are missing; run "
                            f"`sbi-gen simulate --resume -o {store.path}` to finish it")
        if prior is not None and prior.dim != store.theta_dim:
            raise DataError(f"{store.path} holds theta with {store.theta_dim} columns but the prior has {prior.dim} "
                            f"parameters {prior.names}")
        self.store, self.prior, self.drop_invalid, self.buffer_rows = store, prior, drop_invalid, buffer_rows

    def _valid(self, theta: Tensor, x: Tensor) -> Tensor:
        finite = torch.isfinite(theta).all(1) & torch.isfinite(x.reshape(len(x), -1)).all(1)
        return finite & self.prior.contains(theta) if self.prior is not None else finite

    def scan(self, visit: Callable[[Tensor, Tensor], None], batch_rows: int = 65_536) -> dict[str, int]:
        """One pass over the valid rows, ``visit(theta, x)`` per chunk; returns the check report.

        The report counts ``num_pairs`` kept and ``non_finite`` / ``outside_prior``
        rows dropped (by the store's policy or ``drop_invalid``); without
        ``drop_invalid`` an invalid row raises :class:`DataError` naming it.
        """
        report = {"num_pairs": 0, "non_finite": 0, "outside_prior": 0}
        with self.store.h5() as file:
            for index in range(self.store.num_chunks):
                theta, x, rows = self.store.read_chunk(index, file)
                report["non_finite"] += self.store.rows(index)[1] - self.store.rows(index)[0] - len(theta)
                finite = torch.isfinite(theta).all(1) & torch.isfinite(x.reshape(len(x), -1)).all(1)
                inside = self.prior.contains(theta) | ~finite if self.prior is not None else torch.ones_like(finite)
                if not self.drop_invalid and not bool((finite & inside).all()):
                    self._raise(finite, inside, rows)
                keep = finite & inside
                report["non_finite"] += int((~finite).sum())
                report["outside_prior"] += int((~inside).sum())
                theta, x = (theta, x) if bool(keep.all()) else (theta[keep], x[keep])
                report["num_pairs"] += len(theta)
                for i in range(0, len(theta), batch_rows):
                    visit(theta[i : i + batch_rows], x[i : i + batch_rows])
        if report["num_pairs"] == 0:
            raise DataError(f"every row of {self.store.path} is invalid ({report}); nothing left to train on")
        return report

    def _raise(self, finite: Tensor, inside: Tensor, rows: np.ndarray) -> None:
        if not bool(finite.all()):
            raise DataError(f"{self.store.path} holds NaN or inf (simulated with non_finite='keep'); first is row "
                            f"{int(rows[int((~finite).nonzero()[0])])}. Pass drop_invalid=True (--drop-invalid) to "
                            "drop such rows")
        raise DataError(f"{self.store.path}: row {int(rows[int((~inside).nonzero()[0])])} has theta outside the prior; "
                        "pass drop_invalid=True (--drop-invalid) to drop such rows")

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int,
                validation_fraction: float) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``split`` (``"train"`` shuffled per epoch, ``"validation"`` in file order), on the CPU."""
        return iter(StoreDataset(
            self.store, split, batch_size, validation_fraction, seed, shuffle=split == "train", epoch=epoch,
            buffer_rows=self.buffer_rows, row_filter=self._valid if self.drop_invalid else None,
        ))


class RunningMoments:
    """Mean and standard deviation over batches in one streaming pass (Chan et al. 1979), in float64.

    Matches :meth:`sbi_gen.nn.Standardize.fit` on the whole data: features are
    ``shape``; ``pooled_axes`` (axes of one sample) share one mean and std.
    """

    def __init__(self, shape: tuple[int, ...], pooled_axes: tuple[int, ...] = ()) -> None:
        self.shape, self.pooled_axes = tuple(shape), tuple(pooled_axes)
        self.count = 0
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.m2 = torch.zeros(shape, dtype=torch.float64)

    def update(self, batch: Tensor) -> None:
        """Add ``batch [b, *shape]``."""
        batch = batch.detach().to("cpu", torch.float64)
        dims = (0, *(axis + 1 for axis in self.pooled_axes))
        count = math.prod(batch.shape[d] for d in dims)
        if count == 0:
            return
        mean = batch.mean(dims, keepdim=True)
        m2 = ((batch - mean) ** 2).sum(dims, keepdim=True)[0].expand(self.shape)
        mean = mean[0].expand(self.shape)
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    def std(self, min_std: float = 1e-6) -> Tensor:
        """Sample standard deviation; features below ``min_std`` get 1 (as ``Standardize.fit``)."""
        std = (self.m2 / max(1, self.count - 1)).sqrt()
        return torch.where(std < min_std, torch.ones_like(std), std)

    @torch.no_grad()
    def apply_to(self, standardize) -> None:
        """Set a :class:`~sbi_gen.nn.Standardize` module's mean and std from these moments."""
        standardize.mean.copy_(self.mean)
        standardize.std.copy_(self.std())
