"""Simulated pairs ``(theta, x)`` on disk: ``.npz`` files and HDF5 files.

Users who run their own simulator elsewhere bring ``.npz`` (or HDF5, with
``h5py`` installed) files holding arrays ``theta [n, d]`` and
``x [n, *x_shape]``; :func:`~sbi_gen.pairs.check_pairs` gives every problem a clear message.
Simulating pairs is :mod:`sbi_gen.simulation`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from sbi_gen.errors import DataError, ModelFileError
from sbi_gen.pairs import SimulationSet, as_float_tensor

__all__ = ["load_simulations", "open_pairs", "save_simulations"]


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
    return SimulationSet(as_float_tensor(theta, "theta"), as_float_tensor(x, "x"), meta)


def open_pairs(path: str | os.PathLike):
    """Pairs on disk as a training pair source: a simulation store is opened to be streamed (never read whole);
    an ``.npz`` or plain HDF5 file is read into a :class:`~sbi_gen.pairs.SimulationSet`."""
    from sbi_gen.store import SimulationStore, is_store

    return SimulationStore.open(path) if is_store(path) else load_simulations(path)


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
    return SimulationSet(as_float_tensor(theta, "theta"), as_float_tensor(x, "x"), meta)
