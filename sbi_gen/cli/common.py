"""What every ``sbi-gen`` command shares: argument types, option parsing, input files and output paths.

Each helper turns a bad argument into one :class:`~sbi_gen.errors.DataError`
(or an argparse error) that names the option or file and the problem, so that
the command exits with status 2 and no traceback, before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sbi_gen.errors import DataError

__all__ = [
    "positive_int", "positive_float", "seed_int", "add_seed_argument", "parse_options", "add_device_argument",
    "check_device", "add_format_argument", "output_file_and_format", "write_new_netcdf", "load_observations",
    "observations_for", "load_prior_spec", "new_output_file", "model_simulator",
]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (``1e4`` is accepted when it is whole)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(value)


def seed_int(text: str) -> int:
    """argparse type: a seed, a whole number >= 0 (the root of :class:`~sbi_gen.seeding.RandomStreams`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def add_seed_argument(parser: argparse.ArgumentParser, default: int | None = 0, note: str = "") -> None:
    """``--seed``: the one seed of a command; every step draws from its own named stream of it."""
    parser.add_argument("--seed", type=seed_int, default=default,
                        help=f"random seed, a whole number >= 0 (default: 0){note}")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def parse_options(pairs: Sequence[str] | None, flag: str = "--option") -> dict[str, Any]:
    """``["dim=3", "flow=maf"]`` -> ``{"dim": 3, "flow": "maf"}`` (values parsed as JSON when possible)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"{flag} takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: the one device flag of every command that computes."""
    parser.add_argument("--device", default="cpu",
                        help="where the network runs: cpu, cuda, cuda:N, mps or auto (default: cpu); "
                        "a device that is not available is an error, never a fall-back")


def check_device(args: argparse.Namespace) -> str:
    """The ``--device`` of ``args``, resolved now so a missing GPU fails before any work or output."""
    from sbi_gen.device import resolve_device

    return str(resolve_device(args.device))


def load_observations(path: str, flag: str = "--observation") -> np.ndarray:
    """Observations from ``.npy``, ``.npz`` (array ``x``) or ``.json`` (a list of numbers or nested lists)."""
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{flag}: no observation file at {source}")
    if source.stat().st_size == 0:
        raise DataError(f"{flag}: {source} is empty")
    try:
        if source.suffix == ".npy":
            array = np.load(source, allow_pickle=False)
        elif source.suffix == ".npz":
            with np.load(source, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise DataError(f"{flag}: {source} has no array 'x' (it holds {archive.files})")
                array = archive["x"]
        elif source.suffix == ".json":
            value = json.loads(source.read_text())
            if not isinstance(value, (list, int, float)):
                raise DataError(f"{flag}: {source} must hold a number or a (nested) list of numbers, "
                                f"got a JSON {type(value).__name__}")
            array = np.asarray(value, dtype=np.float64)
        else:
            raise DataError(f"{flag}: observations must be .npy, .npz or .json, got {source.name!r}")
    except DataError:
        raise
    except (ValueError, TypeError, OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"{flag}: {source} is not a readable numeric array ({type(error).__name__}: {error})") from None
    if array.dtype.kind not in "biuf":
        raise DataError(f"{flag}: {source} holds {array.dtype} values; observations must be real numbers")
    if array.size == 0:
        raise DataError(f"{flag}: {source} holds no values (shape {list(array.shape)})")
    return array


def observations_for(array: np.ndarray, estimator, path: str, flag: str = "--observation"):
    """``array`` as observations ``[B, *x_shape]`` of ``estimator``; a wrong shape (explained by what the model
    was trained on) or a NaN names the file."""
    from sbi_gen.pairs import check_observations

    try:
        return check_observations(array, estimator.x_shape, estimator.metadata.get("simulator"))
    except DataError as error:
        raise DataError(f"{flag} {path}: {error}") from None


def load_prior_spec(text: str):
    """A prior from ``--prior``: JSON text or the path of a ``.json`` file."""
    from sbi_gen.prior import prior_from_config

    source = Path(text)
    if source.suffix == ".json" and not text.lstrip().startswith("{"):
        if not source.is_file():
            raise DataError(f"--prior: no prior file at {source}")
        raw, where = source.read_text(), str(source)
    else:
        raw, where = text, "--prior"
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error}); give JSON text or a .json file") from None
    try:
        return prior_from_config(spec)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: invalid prior spec ({error})") from None


def new_output_file(path: str, suffix: str = ".npz", flag: str = "-o/--out") -> Path:
    """``path`` for a new result file: it must end in ``suffix``, not exist, and its folder must be writable."""
    out = Path(path)
    if out.suffix != suffix:
        raise DataError(f"{flag}: the output must be a {suffix} file, got {out.name!r} (the file written is "
                        f"exactly the path given)")
    if out.exists():
        raise DataError(f"{flag}: {out} exists; sbi-gen never overwrites results: choose another path")
    check_writable_folder(out.parent, flag)
    return out


#: output formats of posterior draws, by the suffix of -o/--out ("" : -o names a new folder)
OUTPUT_SUFFIXES = {"npz": ".npz", "netcdf": ".nc", "bilby": ""}


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--format npz|netcdf``: how posterior draws are written (the one owner of that flag)."""
    parser.add_argument("--format", choices=tuple(OUTPUT_SUFFIXES),
                        help="output format: npz; netcdf (an ArviZ InferenceData, needs the export extra); bilby "
                        "(a new folder -o DIR with one bilby result file per observation); default: from the -o "
                        "suffix (.npz or .nc)")


def output_file_and_format(args: argparse.Namespace) -> tuple[Path, str]:
    """``(out, format)`` from ``-o/--out`` and ``--format``, checked before any work (the suffix must match)."""
    fmt = args.format or ("netcdf" if Path(args.out).suffix == ".nc" else "npz")
    if fmt == "bilby":
        return check_new_run_dir(args.out), fmt
    out = new_output_file(args.out, OUTPUT_SUFFIXES[fmt])
    if fmt == "netcdf":
        from sbi_gen.export import require_export_extra

        require_export_extra()  # the extra is missing: say so now, not after sampling
    return out, fmt


def write_new_netcdf(out: Path, tree) -> None:
    """Write the ``InferenceData`` ``tree`` to the new file ``out``, never replacing a file that appeared meanwhile."""
    from sbi_gen.export import write_netcdf

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".nc")
    os.close(handle)
    try:
        Path(tmp).unlink()
        write_netcdf(tmp, tree)
        os.link(tmp, out)
    except FileExistsError:
        raise DataError(f"{out} appeared while the result was computed; it was left alone and nothing was "
                        "written") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable_folder(folder: Path, flag: str) -> None:
    """Refuse (before any work) a folder that cannot be created or written."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{flag}: {existing} is a file, so {folder} cannot be a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{flag}: cannot write into {existing} (permission denied)")


def model_simulator(estimator, model: str, name: str | None, option_pairs):
    """The simulator named on the command line, or the one recorded in the saved model."""
    from sbi_gen.registry import get_simulator

    recorded = estimator.metadata.get("simulator") or {}
    name = name or recorded.get("name")
    if not name:
        raise DataError(f"{model} records no simulator: name one with --simulator")
    options = {**(recorded.get("options", {}) if name == recorded.get("name") else {}), **parse_options(option_pairs)}
    return get_simulator(name, **options)


def check_new_run_dir(path: str | Path, flag: str = "-o/--out") -> Path:
    """A directory that will be created for results: absent or empty, in a writable place (nothing is created)."""
    from sbi_gen.pipeline import check_run_dir

    out = check_run_dir(path)
    check_writable_folder(out.parent if not out.exists() else out, flag)
    return out


def write_new_npz(out: Path, **arrays: Any) -> None:
    """Write ``arrays`` to the new file ``out`` atomically, never replacing a file that appeared meanwhile."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.link(tmp, out)  # fails if out exists: a result is never overwritten
    except FileExistsError:
        raise DataError(f"{out} appeared while the result was computed; it was left alone and nothing was "
                        "written") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def add_redraw_argument(parser: argparse.ArgumentParser) -> None:
    """``--redraw`` / ``--no-redraw``: re-draw the simulator's cheap part for every training batch."""
    parser.add_argument("--redraw", action=argparse.BooleanOptionalAction, default=None,
                        help="simulate signals (the expensive part) once and re-draw the noise and the cheap "
                        "parameters for every batch (default: when the simulator has the signal split, as gw does)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training-loop flags shared by ``train`` and ``run``."""
    group = parser.add_argument_group("training (defaults: the estimator's own, see its docstring)")
    group.add_argument("--max-epochs", type=positive_int, help="upper bound on epochs (flow: 300)")
    group.add_argument("--batch-size", type=positive_int, help="pairs per step (flow: 256)")
    group.add_argument("--learning-rate", type=positive_float, help="AdamW step size (flow: 1e-3)")
    group.add_argument("--patience", type=positive_int, help="early-stopping patience in epochs (flow: 20)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_argument(parser)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line; the rest stay the estimator's defaults."""
    given = {
        "max_epochs": args.max_epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "patience": args.patience,
    }
    return {**{key: value for key, value in given.items() if value is not None}, "progress": not args.no_progress}
