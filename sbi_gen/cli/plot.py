"""``sbi-gen plot``: corner plots (and posterior predictive checks) of a saved model or a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sbi_gen.cli.common import (
    add_device_argument,
    add_seed_argument,
    check_device,
    check_new_run_dir,
    load_observations,
    model_simulator,
    observations_for,
    positive_int,
)
from sbi_gen.errors import DataError, SbiGenError
from sbi_gen.model_files import CONFIG_FILE
from sbi_gen.seeding import RandomStreams

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help="corner plots and posterior predictive checks of a saved model or a run directory",
        description="Draw a corner plot of the posterior of each observation: 1-D and 2-D marginals with 68% and "
        "95% credible contours, axes labelled with each parameter's label and unit, the true parameters marked "
        "when known, the simulator's reference posterior (when it has one) and an IS-refined posterior "
        "(--refined) overlaid. With --predictive, also simulate from posterior draws and plot them against the "
        "observation. Writes OUT/corner/observation_{b}.png (and OUT/predictive/observation_{b}.png).",
    )
    plot.add_argument("source", metavar="MODEL_OR_RUN",
                      help="model directory (`sbi-gen train`) or run directory (`sbi-gen run`)")
    plot.add_argument(
        "--observation", metavar="FILE",
        help="observations [B, *x_shape] or one [*x_shape]: .npy, .npz (array 'x', and 'theta_true' if known, as "
        "in a run's observations.npz) or .json; default for a run directory: its observations and samples",
    )
    plot.add_argument("--truth", metavar="FILE",
                      help="true parameters [B, d] or [d]: .npy, .json or .npz (array 'theta_true')")
    plot.add_argument("--refined", metavar="FILE.npz",
                      help="output of `sbi-gen refine` for the same observations: its 'resampled' [n, B, d] is "
                      "overlaid")
    plot.add_argument("--samples", type=positive_int, metavar="N",
                      help="posterior samples per observation (default: 5000, or a run directory's own samples)")
    plot.add_argument("--no-reference", action="store_true",
                      help="do not draw (nor compute) the simulator's reference posterior")
    plot.add_argument("--predictive", action="store_true",
                      help="also plot posterior predictive checks (needs the simulator: recorded in the model, or "
                      "--simulator)")
    plot.add_argument("--predictive-draws", type=positive_int, default=200, metavar="N",
                      help="posterior draws simulated per observation for --predictive (default: 200)")
    plot.add_argument("--simulator", help="registered simulator (default: the one recorded in the model)")
    plot.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    plot.add_argument("-o", "--out", help="directory to create for the plots (default: MODEL_OR_RUN/plots)")
    add_seed_argument(plot)
    add_device_argument(plot)


def _model_dir(source: Path) -> tuple[Path, bool]:
    """The model directory of ``source`` and whether ``source`` is a run directory."""
    if (source / CONFIG_FILE).is_file():
        return source, False
    if (source / "model" / CONFIG_FILE).is_file():
        return source / "model", True
    raise DataError(f"MODEL_OR_RUN: {source} is neither a model directory (no {CONFIG_FILE}) nor a run directory "
                    f"(no model/{CONFIG_FILE})")


def _npz_array(path: Path, key: str, flag: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{flag}: no file at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataError(f"{flag}: {path} has no array {key!r} (it holds {archive.files})")
            return np.asarray(archive[key], dtype=np.float64)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{flag}: {path} is not a readable .npz file ({type(error).__name__}: {error})") from None


def _truth(truth_file: str | None, observation_file: str) -> np.ndarray | None:
    """The ``--truth`` file's parameters, else the observation file's ``theta_true`` (an ``.npz``), else ``None``."""
    if truth_file is not None:
        if Path(truth_file).suffix == ".npz":
            return _npz_array(Path(truth_file), "theta_true", "--truth")
        return load_observations(truth_file, "--truth")
    if Path(observation_file).suffix != ".npz":
        return None
    with np.load(observation_file, allow_pickle=False) as archive:  # already read as the observations
        return np.asarray(archive["theta_true"], dtype=np.float64) if "theta_true" in archive.files else None


def _check_shape(array: np.ndarray, shape: list[int], flag: str, path: str, what: str) -> np.ndarray:
    if list(array.shape) != shape:
        raise DataError(f"{flag} {path}: expected {what} of shape {shape}, got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise DataError(f"{flag} {path}: {what} hold NaN or inf")
    return array


def command(args: argparse.Namespace) -> int:
    from sbi_gen.estimator import load_estimator
    from sbi_gen.pipeline import prepare_run_dir
    from sbi_gen.plots import write_plots

    source = Path(args.source)
    model, is_run = _model_dir(source)
    out = check_new_run_dir(args.out or source / "plots")
    device = check_device(args)
    if args.observation is None and not is_run:
        raise DataError(f"--observation is needed: {source} is a model directory, not a run directory")
    observation_file = args.observation or str(source / "observations.npz")
    observations = load_observations(observation_file)
    truth_file = args.truth or observation_file
    truth = _truth(args.truth, observation_file)
    estimator = load_estimator(model, device=device)
    x = observations_for(observations, estimator, observation_file)
    batch, d = len(x), estimator.prior.dim
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64)
        truth = _check_shape(truth.reshape(1, -1) if truth.ndim == 1 and batch == 1 else truth, [batch, d],
                             "--truth", truth_file, f"true parameters for {batch} observation(s)")
    refined = None
    if args.refined:
        refined = _npz_array(Path(args.refined), "resampled", "--refined")
        _check_shape(refined, [len(refined), batch, d], "--refined", args.refined,
                     f"resampled posterior samples [n, B, d] for {batch} observation(s)")
    samples = None
    if is_run and args.observation is None and args.samples is None and (source / "samples.npz").is_file():
        samples = _npz_array(source / "samples.npz", "samples", "samples.npz")
        _check_shape(samples, [len(samples), batch, d], "samples.npz", str(source / "samples.npz"),
                     f"posterior samples [n, B, d] for {batch} observation(s)")

    simulator = _simulator(estimator, args)
    streams = RandomStreams(args.seed)
    if samples is None:
        samples = estimator.posterior(x).sample(args.samples or 5_000, streams.generator("sample")).numpy()
    reference = None
    if simulator is not None and simulator.capabilities.has_reference_posterior and not args.no_reference:
        reference = simulator.reference_posterior(x).sample(len(samples), streams.generator("reference"))
    record = write_plots(
        prepare_run_dir(out), estimator.prior, samples, x, truth, simulator=simulator if args.predictive else None,
        reference=reference, refined=refined, generator=streams.generator("predictive"), name=estimator.name,
        num_draws=args.predictive_draws,
    )
    overlays = [what for what, there in (("true parameters", truth is not None), ("reference posterior",
                reference is not None), ("IS-refined posterior", refined is not None)) if there]
    print(f"wrote {len(record['corner'])} corner plot(s) of {len(samples)} samples each to {out / 'corner'}"
          + (f" (with the {', the '.join(overlays)})" if overlays else ""))
    if "predictive" in record:
        print(f"wrote {len(record['predictive'])} posterior predictive check(s) to {out / 'predictive'}")
    return 0


def _simulator(estimator, args: argparse.Namespace):
    """The simulator for the reference overlay and the predictive check; ``None`` where optional and absent."""
    needed = args.predictive or args.simulator is not None or args.option
    try:
        simulator = model_simulator(estimator, args.source, args.simulator, args.option)
    except SbiGenError as error:
        if args.predictive:
            raise DataError(f"--predictive needs the simulator: {error}") from None
        if needed:
            raise
        print(f"note: no reference posterior drawn ({error})")
        return None
    if tuple(simulator.x_shape) != tuple(estimator.x_shape) or simulator.prior.dim != estimator.prior.dim:
        which = f"--simulator {args.simulator}" if args.simulator else f"the recorded simulator {simulator.name!r}"
        raise DataError(
            f"{which}: its theta [{simulator.prior.dim}] and x {list(simulator.x_shape)} do not match the model's "
            f"theta [{estimator.prior.dim}] and x {list(estimator.x_shape)}"
        )
    return simulator
