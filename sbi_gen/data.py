"""Simulated pairs ``(theta, x)``: drawing them, checking them, reading and writing them.

Users who run their own simulator elsewhere bring ``.npz`` (or HDF5, with
``h5py`` installed) files holding arrays ``theta [n, d]`` and
``x [n, *x_shape]``; :func:`check_pairs` gives every problem a clear message.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen.errors import DataError, ModelFileError
from sbi_gen.prior import Prior

__all__ = ["SimulationSet", "simulate", "check_pairs", "check_observations", "load_simulations", "save_simulations"]


@dataclass
class SimulationSet:
    """Pairs ``theta [n, d]`` and ``x [n, *x_shape]`` (float32) with JSON metadata."""

    theta: Tensor
    x: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.theta.shape[0]

    def split(self, n_first: int) -> tuple[SimulationSet, SimulationSet]:
        """The first ``n_first`` pairs and the rest."""
        return (
            SimulationSet(self.theta[:n_first], self.x[:n_first], dict(self.meta)),
            SimulationSet(self.theta[n_first:], self.x[n_first:], dict(self.meta)),
        )


def simulate(simulator, n: int, seed: int = 0, batch_size: int = 10_000) -> SimulationSet:
    """Draw ``n`` pairs: ``theta`` from the simulator's prior, then ``x`` from the simulator.

    The same ``seed`` gives the same pairs. Simulation runs in batches of
    ``batch_size`` to bound memory.
    """
    if n <= 0:
        raise ValueError(f"number of simulations must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    theta = simulator.prior.sample(n, generator)
    xs = [simulator.simulate(theta[i : i + batch_size], generator) for i in range(0, n, batch_size)]
    x = torch.cat(xs).float()
    expected = (n, *simulator.x_shape)
    if tuple(x.shape) != expected:
        raise DataError(f"simulator {simulator.name!r} returned x of shape {tuple(x.shape)}, expected {expected}")
    meta = {"simulator": simulator.describe(), "seed": seed, "num_simulations": n}
    return SimulationSet(theta, x, meta)


def _as_float_tensor(array: Any, what: str) -> Tensor:
    """``array`` as float32; complex, object, string or ragged data is a :class:`DataError` (never truncated)."""
    if isinstance(array, Tensor):
        if array.is_complex():
            raise DataError(f"{what} is complex; sbi-gen works with real arrays: split it into real and imaginary "
                            "parts (e.g. torch.view_as_real)")
        return array.float()
    try:
        values = np.asarray(array)
    except (TypeError, ValueError) as error:
        raise DataError(f"{what} is not a numeric array: {error}") from None
    if values.dtype.kind == "c":
        raise DataError(f"{what} is complex; sbi-gen works with real arrays: split it into real and imaginary "
                        "parts (e.g. np.stack([a.real, a.imag], -1))")
    if values.dtype.kind not in "biuf":
        raise DataError(f"{what} holds {values.dtype} values, not numbers")
    return torch.as_tensor(values, dtype=torch.float32)


def check_pairs(
    theta: Any,
    x: Any,
    prior: Prior | None = None,
    x_shape: tuple[int, ...] | None = None,
    drop_invalid: bool = False,
) -> tuple[Tensor, Tensor, dict[str, int]]:
    """Validate training pairs; return float32 tensors and a report of dropped rows.

    Arguments:
        theta: ``[n, d]`` parameters.
        x: ``[n, *x_shape]`` observations.
        prior: if given, ``theta`` must have ``prior.dim`` columns and lie in its support.
        x_shape: if given, the expected shape of one observation.
        drop_invalid: drop rows with non-finite values or ``theta`` outside the
            prior instead of raising; the report counts them.

    Returns:
        ``(theta, x, report)`` with ``report = {"non_finite": k, "outside_prior": m}``.
    """
    theta, x = _as_float_tensor(theta, "theta"), _as_float_tensor(x, "x")
    if theta.ndim == 1:
        theta = theta[:, None]
    if theta.ndim != 2:
        raise DataError(f"theta must have shape [n, d], got {tuple(theta.shape)}")
    if x.ndim == 1:
        x = x[:, None]
    if theta.shape[0] != x.shape[0]:
        raise DataError(f"theta has {theta.shape[0]} rows but x has {x.shape[0]}: pairs must match one to one")
    if theta.shape[0] == 0:
        raise DataError("no simulations given (theta and x are empty)")
    if prior is not None and theta.shape[1] != prior.dim:
        raise DataError(f"theta has {theta.shape[1]} columns but the prior has {prior.dim} parameters {prior.names}")
    if x_shape is not None and tuple(x.shape[1:]) != tuple(x_shape):
        raise DataError(f"each x must have shape {tuple(x_shape)}, got {tuple(x.shape[1:])}")
    finite = torch.isfinite(theta).all(1) & torch.isfinite(x.reshape(len(x), -1)).all(1)
    inside = prior.contains(theta) | ~finite if prior is not None else torch.ones_like(finite)
    report = {"non_finite": int((~finite).sum()), "outside_prior": int((~inside).sum())}
    if drop_invalid:
        keep = finite & inside
        if not bool(keep.any()):
            raise DataError(f"every row is invalid ({report}); nothing left to train on")
        return theta[keep], x[keep], report
    if report["non_finite"]:
        bad_theta = int((~torch.isfinite(theta).all(1)).sum())
        raise DataError(
            f"{report['non_finite']} row(s) hold NaN or inf ({bad_theta} in theta, the rest in x); first is row "
            f"{int((~finite).nonzero()[0])}. Fix the simulator, or pass drop_invalid=True (--drop-invalid) to drop them"
        )
    if prior is not None:
        prior.check_contains(theta, "theta")
    return theta, x, report


def check_observations(x_obs: Any, x_shape: tuple[int, ...]) -> Tensor:
    """Return observations as ``[B, *x_shape]`` float32; a single ``x_shape`` array becomes ``B = 1``."""
    x = _as_float_tensor(x_obs, "x_obs")
    if tuple(x.shape) == tuple(x_shape):
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != tuple(x_shape):
        raise DataError(
            f"observations must have shape [B, {', '.join(map(str, x_shape))}] or "
            f"[{', '.join(map(str, x_shape))}], got {list(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        rows = (~torch.isfinite(x.reshape(len(x), -1)).all(1)).nonzero().flatten().tolist()
        raise DataError(f"observations hold NaN or inf (rows {rows[:10]}); the posterior is undefined there")
    return x


def save_simulations(path: str | os.PathLike, data: SimulationSet) -> Path:
    """Write ``theta``, ``x`` and the metadata (as JSON) to an ``.npz`` file, atomically.

    The file appears complete or not at all: it is written next to its
    destination and renamed into place, so an existing file is never left
    half-written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"simulations are saved as .npz, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(
                file,
                theta=data.theta.cpu().numpy(),
                x=data.x.cpu().numpy(),
                meta=np.array(json.dumps(data.meta)),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_simulations(path: str | os.PathLike) -> SimulationSet:
    """Read pairs from ``.npz`` or HDF5 (``.h5``/``.hdf5``) holding arrays ``theta`` and ``x``.

    An HDF5 simulation store written by ``sbi-gen simulate`` (see
    :mod:`sbi_gen.store`) is read whole; it must be complete. Never unpickles:
    object arrays in an ``.npz`` are refused.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no simulation file at {path}")
    if path.suffix in (".h5", ".hdf5"):
        return _load_hdf5(path)
    if path.suffix != ".npz":
        raise DataError(f"{path}: simulation files are .npz or .h5/.hdf5 holding arrays theta and x, got "
                        f"{path.suffix or 'no suffix'!r} (an .npy file holds one array: save both with np.savez)")
    try:
        with _open_npz(path) as archive:
            missing = {"theta", "x"} - set(archive.files)
            if missing:
                raise DataError(f"{path} lacks the array(s) {sorted(missing)}; it holds {sorted(archive.files)}")
            theta, x = archive["theta"], archive["x"]
            meta = json.loads(str(archive["meta"])) if "meta" in archive.files else {}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as error:
        reason = f"{type(error).__name__}: {error}"
        raise ModelFileError(f"{path} is not a readable .npz simulation file ({reason})") from None
    except ValueError as error:
        raise ModelFileError(f"{path} could not be read without unpickling ({error})") from None
    return SimulationSet(_as_float_tensor(theta, "theta"), _as_float_tensor(x, "x"), meta)


def _open_npz(path: Path):
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not an .npz archive with arrays theta and x")
    return loaded


def _load_hdf5(path: Path) -> SimulationSet:
    try:
        import h5py
    except ImportError:
        raise ModelFileError(f"reading {path.name} needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r", locking=False) as file:
            is_store = file.attrs.get("format") == "sbi-gen-simulations"
    except OSError as error:
        raise ModelFileError(f"{path} is not a readable HDF5 file ({error})") from None
    if is_store:
        from sbi_gen.store import SimulationStore

        return SimulationStore.open(path).to_simulation_set()
    try:
        with h5py.File(path, "r") as file:
            missing = {"theta", "x"} - set(file.keys())
            if missing:
                raise DataError(f"{path} lacks the dataset(s) {sorted(missing)}; it holds {sorted(file.keys())}")
            groups = [key for key in ("theta", "x") if not isinstance(file[key], h5py.Dataset)]
            if groups:
                raise DataError(f"{path}: {', '.join(groups)} must be dataset(s) of numbers, not group(s)")
            theta, x = file["theta"][()], file["x"][()]
            meta = json.loads(file.attrs["meta"]) if "meta" in file.attrs else {}
    except OSError as error:
        raise ModelFileError(f"{path} is not a readable HDF5 file ({error})") from None
    return SimulationSet(_as_float_tensor(theta, "theta"), _as_float_tensor(x, "x"), meta)
