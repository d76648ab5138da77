"""Training data streamed from a simulation store, a chunk at a time, and streaming standardization.

:class:`StoreDataset` is a shuffled ``torch.utils.data.IterableDataset`` over a
store's complete chunks; :class:`StorePairs` adapts a store to the
``PairSource`` protocol of :func:`sbi_gen.training.train`, with one checking
pass; :class:`RunningMoments` computes the standardization in that pass. The
file format itself lives in :mod:`sbi_gen.store`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from sbi_gen.errors import DataError
from sbi_gen.pairs import valid_rows
from sbi_gen.prior import Prior
from sbi_gen.store import SimulationStore

__all__ = ["StoreDataset", "StorePairs", "RunningMoments", "store_pairs"]


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

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one stored ``x`` (of one signal, in a store of signals)."""
        return self.store.x_shape

    def describe(self) -> dict[str, str]:
        """JSON record of the source for a model's metadata."""
        return {"store": str(self.store.path)}

    def _valid(self, theta: Tensor, x: Tensor) -> Tensor:
        finite, inside = valid_rows(theta, x, self.prior)
        return finite & inside

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
                finite, inside = valid_rows(theta, x, self.prior)
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


def store_pairs(store: SimulationStore, prior: Prior | None = None, drop_invalid: bool = False,
                buffer_rows: int | None = None):
    """A simulation store as a training pair source: a :class:`StorePairs` over its pairs, or, for a store
    of signals (``sbi-gen simulate --signals``), :class:`~sbi_gen.redraw.RedrawnPairs` over them with the
    simulator the store names (rebuilt from the registry)."""
    from sbi_gen.redraw import RedrawnPairs
    from sbi_gen.registry import get_registry

    pairs = StorePairs(store, prior or store.prior, drop_invalid=drop_invalid, buffer_rows=buffer_rows)
    if store.meta.get("content", "pairs") != "signal":
        return pairs
    described = store.meta["simulator"]
    simulator = get_registry().simulator(described["name"], **described["options"])
    return RedrawnPairs(pairs, simulator, prior or store.prior)


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
