"""The ``sbi-gen`` command: plugins, simulate, train, sample, run, calibrate, refine."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbi_gen.benchmark.cli import add_parser as add_benchmark_parser
from sbi_gen.errors import DataError, SbiGenError

__all__ = ["main", "build_parser"]


def _parse_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["dim=3", "flow=maf"]`` -> ``{"dim": 3, "flow": "maf"}`` (values parsed as JSON when possible)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DataError(f"options are KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (defaults: the estimator's own, see its docstring)")
    group.add_argument("--max-epochs", type=int, help="upper bound on epochs (flow: 300)")
    group.add_argument("--batch-size", type=int, help="pairs per step (flow: 128)")
    group.add_argument("--learning-rate", type=float, help="AdamW step size (flow: 5e-4)")
    group.add_argument("--patience", type=int, help="early-stopping patience in epochs (flow: 20)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line; the rest stay the estimator's defaults."""
    given = {
        "max_epochs": args.max_epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "patience": args.patience,
    }
    return {
        **{key: value for key, value in given.items() if value is not None},
        "device": args.device, "progress": not args.no_progress, "seed": args.seed,
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sbi-gen`` (one sub-command per job)."""
    parser = argparse.ArgumentParser(
        prog="sbi-gen",
        description="Amortized simulation-based inference: train a neural posterior q(theta | x) on simulations "
        "and check that it is calibrated.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sim = commands.add_parser(
        "simulate",
        help="draw (theta, x) pairs from a simulator into an HDF5 store (.h5) or an .npz file",
        description="Simulate pairs. An .h5 output is a simulation store written chunk by chunk: an interrupted "
        "run keeps every finished chunk and --resume completes it; chunks run in this process, on a local Dask "
        "cluster (--workers N) or on an existing Dask scheduler (--scheduler ADDRESS), with the same pairs "
        "whatever runs them. An .npz output is simulated in memory and written at the end.",
    )
    sim.add_argument("simulator", nargs="?", help="registered simulator name (see `sbi-gen plugins`)")
    sim.add_argument("-n", "--num", type=int, help="number of pairs (default: 10000)")
    sim.add_argument("-o", "--out", required=True, help="output .h5 store or .npz file (new, unless --resume)")
    sim.add_argument("--seed", type=int, help="random seed (default: 0)")
    sim.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    store = sim.add_argument_group("simulation store (.h5 output)")
    store.add_argument("--chunk-size", type=int, help="pairs per chunk (default: 10000)")
    store.add_argument("--resume", action="store_true", help="simulate the missing chunks of an existing store")
    store.add_argument("--workers", type=int, help="run chunks on a local Dask cluster of N worker processes")
    store.add_argument("--scheduler", metavar="ADDRESS", help="run chunks on an existing Dask scheduler")
    finite = store.add_mutually_exclusive_group()
    finite.add_argument("--drop-non-finite", dest="non_finite", action="store_const", const="drop",
                        help="rows with NaN or inf are counted and never read back (the default)")
    finite.add_argument("--keep-non-finite", dest="non_finite", action="store_const", const="keep",
                        help="rows with NaN or inf are counted and read back (training then needs --drop-invalid)")
    store.add_argument("--sync-write", action="store_true",
                       help="write each chunk in the simulating thread: a killed process then loses at most one "
                       "chunk (default: chunks are written on a background thread while the next is simulated, "
                       "so kill -9 can lose two; Ctrl-C and simulator errors finish the write either way)")
    store.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    train = commands.add_parser(
        "train",
        help="train an estimator on a simulator or on your own (theta, x) file",
        description="Train an amortized posterior. Either name a simulator (pairs are simulated), or give "
        "--data FILE (an .npz or HDF5 file with arrays theta [n, d] and x [n, ...]) together with the prior: "
        "a simulator name, or --prior with a JSON spec such as "
        '\'{"type": "uniform", "low": [0, 0], "high": [1, 5]}\'.',
    )
    train.add_argument("simulator", nargs="?", help="registered simulator (gives the prior, and pairs if no --data)")
    train.add_argument("--data", help="your own pairs (.npz / .h5 with arrays theta and x), or a store from "
                       "`sbi-gen simulate` (streamed from disk; its recorded prior is the default)")
    train.add_argument("--prior", help="prior spec as JSON text or a .json file (with --data and no simulator)")
    train.add_argument("--drop-invalid", action="store_true", help="drop non-finite rows and theta outside the prior")
    train.add_argument("-n", "--simulations", type=int, default=10_000, help="pairs to simulate (default: 10000)")
    train.add_argument("-e", "--estimator", default="flow", help="registered estimator (default: flow)")
    train.add_argument("--estimator-option", action="append", metavar="KEY=VALUE", help="estimator option")
    train.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    train.add_argument("-o", "--out", required=True, help="model directory to create")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _training_arguments(train)

    sample = commands.add_parser("sample", help="draw posterior samples for observations from a saved model")
    sample.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    sample.add_argument(
        "--observation", required=True,
        help="observations [B, *x_shape] or one [*x_shape]: .npy, .npz (array 'x') or .json",
    )
    sample.add_argument("-n", "--num", type=int, default=10_000, help="samples per observation (default: 10000)")
    sample.add_argument("-o", "--out", required=True, help="output .npz with samples [n, B, d]")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sample.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")

    run = commands.add_parser(
        "run",
        help="the main job: simulate, train, sample held-out observations, report C2ST and SBC",
        description="Simulate training pairs, train an amortized posterior, sample it for held-out observations, "
        "and report the C2ST against the reference posterior (when the simulator has one) and an SBC check. "
        "Everything goes to a new run directory.",
    )
    run.add_argument(
        "simulator", nargs="?", default="toy_gaussian", help="registered simulator (default: toy_gaussian)"
    )
    run.add_argument("-e", "--estimator", default="flow", help="registered estimator (default: flow)")
    run.add_argument("--estimator-option", action="append", metavar="KEY=VALUE", help="estimator option")
    run.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    run.add_argument("-n", "--simulations", type=int, default=10_000, help="training pairs (default: 10000)")
    run.add_argument("--observations", type=int, default=5, help="held-out observations (default: 5)")
    run.add_argument("--samples", type=int, default=5_000, help="posterior samples per observation (default: 5000)")
    run.add_argument("--sbc", type=int, default=200, help="simulations for the SBC check (default: 200)")
    run.add_argument("-o", "--out", help="run directory to create (default: runs/SIMULATOR-ESTIMATOR-TIME)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--no-calibration", action="store_true", help="skip the calibration report (calibration/)")
    _training_arguments(run)

    cal = commands.add_parser(
        "calibrate",
        help="calibration report of a saved model: SBC, expected coverage, TARP, C2ST and a verdict",
        description="Simulate held-out test pairs, draw posterior samples for all of them in one call, and run SBC, "
        "expected coverage (if the model has log_prob), TARP, C2ST against the reference posterior (if the "
        "simulator has one) and a data-averaged-posterior check. Writes calibration.json, calibration.md and PNG "
        "plots, and prints the verdict: calibrated, overconfident, underconfident or biased.",
    )
    cal.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    cal.add_argument("-n", "--simulations", type=int, default=1_000, help="test pairs (default: 1000)")
    cal.add_argument("--samples", type=int, default=1_000, help="posterior samples per test pair (default: 1000)")
    cal.add_argument("--simulator", help="registered simulator (default: the one recorded in the model)")
    cal.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    cal.add_argument("--alpha", type=float, default=0.01, help="family-wise level of the verdict (default: 0.01)")
    cal.add_argument("-o", "--out", help="report directory to create (default: MODEL/calibration)")
    cal.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    cal.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    cal.add_argument(
        "--budgets",
        help="also retrain the same estimator on each of these simulation budgets (e.g. 1e3,1e4,1e5) and plot "
        "coverage area, TARP ATC and C2ST versus budget (budgets.json, budgets.png)",
    )

    refine = commands.add_parser(
        "refine",
        help="importance-sample a saved model's posterior with the simulator's exact likelihood",
        description="Draw proposals from the model's posterior for each observation, weight them by "
        "likelihood x prior / proposal density, and report the log evidence with its standard error, the "
        "effective sample size and the sample efficiency. Efficiency below --min-efficiency flags the "
        "amortized posterior as untrustworthy for that observation (exit status 3). Needs a model with "
        "log_prob and a simulator with log_likelihood.",
    )
    refine.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    refine.add_argument("--observation", required=True, help="observations [B, *x_shape] or one: .npy, .npz or .json")
    refine.add_argument("-n", "--samples", type=int, default=10_000, help="proposals per observation (default: 10000)")
    refine.add_argument("--min-efficiency", type=float, default=0.01, help="trust threshold on ESS / N (default: 0.01)")
    refine.add_argument("--simulator", help="registered simulator (default: the one recorded in the model)")
    refine.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    refine.add_argument("-o", "--out", required=True, help="output .npz: resampled [n, B, d] and log weights [n, B]")
    refine.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_benchmark_parser(commands)
    return parser


def _model_simulator(estimator, model: str, name: str | None, option_pairs):
    """The simulator named on the command line, or the one recorded in the saved model."""
    from sbi_gen.registry import get_simulator

    recorded = estimator.metadata.get("simulator") or {}
    name = name or recorded.get("name")
    if not name:
        raise DataError(f"{model} records no simulator: name one with --simulator")
    options = {**(recorded.get("options", {}) if name == recorded.get("name") else {}), **_parse_options(option_pairs)}
    return get_simulator(name, **options)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from sbi_gen.registry import get_registry

    registry = get_registry()
    conflict = None
    try:
        registry.names("simulator")
    except SbiGenError as error:
        conflict = str(error)
    plugins = registry.describe()
    if args.json:
        print(json.dumps({"plugins": plugins, "error": conflict}, indent=2))
        return 1 if conflict else 0
    for plugin in plugins:
        status = f"FAILED: {plugin['error']}" if plugin["error"] else "ok"
        print(f"{plugin['name']}  ({plugin['distribution']} {plugin['version']}, {plugin['module']})  {status}")
        for kind, names in plugin["registered"].items():
            for name in names:
                spec = registry.spec(kind[:-1], name)
                print(f"    {kind[:-1]:<10} {name:<16} {spec.description}")
    if conflict:
        print(f"error: {conflict}", file=sys.stderr)
        return 1
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sbi_gen.data import save_simulations, simulate
    from sbi_gen.registry import get_simulator

    out = Path(args.out)
    if out.suffix in (".h5", ".hdf5"):
        return _simulate_store(args, out)
    store_only = {"--resume": args.resume, "--workers": args.workers, "--scheduler": args.scheduler,
                  "--sync-write": args.sync_write,
                  "--chunk-size": args.chunk_size, "--keep-non-finite/--drop-non-finite": args.non_finite}
    given = [flag for flag, value in store_only.items() if value]
    if given:
        raise DataError(f"{', '.join(given)} need(s) an HDF5 store: give an .h5 --out")
    if args.simulator is None:
        raise DataError("name the simulator to run (see `sbi-gen plugins`)")
    if out.exists():
        raise FileExistsError(f"{out} exists; sbi-gen never overwrites simulations: choose another --out")
    simulator = get_simulator(args.simulator, **_parse_options(args.option))
    data = simulate(simulator, args.num or 10_000, seed=args.seed or 0)
    save_simulations(out, data)
    print(f"wrote {len(data)} pairs (theta {list(data.theta.shape)}, x {list(data.x.shape)}) to {out}")
    return 0


def _check_resume(args: argparse.Namespace, out: Path) -> None:
    """With --resume, whatever else is given must match what the store records."""
    from sbi_gen.store import SimulationStore

    meta = SimulationStore.open(out).meta
    recorded = {"simulator": meta["simulator"]["name"], "num": meta["num_simulations"], "seed": meta["seed"],
                "chunk_size": meta["chunk_size"], "non_finite": meta["non_finite"]}
    for key, value in recorded.items():
        given = getattr(args, key)
        if given is not None and given != value:
            raise DataError(f"{out} was started with {key}={value!r}; --resume got {given!r} (leave it out to use "
                            "the recorded value)")
    options = _parse_options(args.option)
    if options and {**meta["simulator"]["options"], **options} != meta["simulator"]["options"]:
        raise DataError(f"{out} was started with simulator options {meta['simulator']['options']}; --resume got "
                        f"{options}")


def _simulate_store(args: argparse.Namespace, out: Path) -> int:
    from sbi_gen.executors import make_executor, resume_store, simulate_to_store
    from sbi_gen.registry import get_simulator
    from sbi_gen.store import SimulationStore

    if args.resume:
        if not out.exists():
            raise DataError(f"--resume: no store at {out} to complete")
        _check_resume(args, out)
        if SimulationStore.open(out).is_complete:
            print(f"{out} is already complete; nothing to simulate")
            return 0
    elif out.exists():
        raise FileExistsError(f"{out} exists; sbi-gen never overwrites simulations: choose another --out, or "
                              "--resume an interrupted run")
    elif args.simulator is None:
        raise DataError("name the simulator to run (see `sbi-gen plugins`)")
    simulator = None if args.resume else get_simulator(args.simulator, **_parse_options(args.option))
    try:
        with make_executor(args.workers, args.scheduler) as executor:
            if args.resume:
                report = resume_store(out, executor, progress=not args.no_progress,
                                      background_write=not args.sync_write)
            else:
                report = simulate_to_store(
                    simulator, args.num or 10_000, out, seed=args.seed or 0, chunk_size=args.chunk_size or 10_000,
                    executor=executor, non_finite=args.non_finite or "drop", progress=not args.no_progress,
                    background_write=not args.sync_write,
                )
    except KeyboardInterrupt:
        store = SimulationStore.open(out) if out.exists() else None
        done = f"{int(store.status().sum())} of {store.num_chunks} chunks are complete in {out}; " if store else ""
        print(f"sbi-gen simulate: interrupted; {done}`sbi-gen simulate --resume -o {out}` completes it",
              file=sys.stderr)
        return 130
    print(report.summary())
    return 0


def _load_prior_spec(text: str):
    from sbi_gen.prior import prior_from_config

    source = Path(text)
    raw = source.read_text() if source.suffix == ".json" and source.exists() else text
    try:
        return prior_from_config(json.loads(raw))
    except json.JSONDecodeError as error:
        raise DataError(f"--prior must be JSON text or a .json file: {error}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from sbi_gen.data import load_simulations, simulate
    from sbi_gen.pipeline import prepare_run_dir
    from sbi_gen.registry import get_estimator, get_registry, get_simulator
    from sbi_gen.store import SimulationStore, is_store

    if args.data is None and args.simulator is None:
        raise DataError("name a simulator, or give --data FILE with the prior (a simulator name or --prior SPEC)")
    if args.simulator and args.prior:
        raise DataError("give either a simulator (its prior is used) or --prior, not both")
    simulator = get_simulator(args.simulator, **_parse_options(args.option)) if args.simulator else None
    store = SimulationStore.open(args.data) if args.data and is_store(args.data) else None
    if store is not None:  # streamed from disk; the prior defaults to the one recorded in the store
        prior = simulator.prior if simulator else _load_prior_spec(args.prior) if args.prior else store.prior
    elif args.data:
        if simulator is None and not args.prior:
            raise DataError("--data needs the prior: name a simulator or pass --prior SPEC")
        data = load_simulations(args.data)
        prior = simulator.prior if simulator else _load_prior_spec(args.prior)
    else:
        data = simulate(simulator, args.simulations, seed=args.seed)
        prior = simulator.prior
    out = prepare_run_dir(args.out)
    estimator_options = _parse_options(args.estimator_option)
    if simulator is not None:
        estimator_options = get_registry().estimator_options_for(
            args.estimator, simulator.name, estimator_options, simulator.options
        )
    estimator = get_estimator(args.estimator, device=args.device, **estimator_options)
    if store is not None:
        training = estimator.training_config(**_training_options(args))
        history = estimator.fit(store, None, prior, training, drop_invalid=args.drop_invalid)
    else:
        training = estimator.training_config(**_training_options(args))
        history = estimator.fit(data.theta, data.x, prior, training, drop_invalid=args.drop_invalid)
    if simulator is not None:
        estimator.metadata["simulator"] = simulator.describe()
    elif store is not None and store.meta["simulator"].get("name") and not args.prior:
        estimator.metadata["simulator"] = store.meta["simulator"]
    estimator.save(out)
    dropped = estimator.metadata["data"]["dropped"]
    print(
        f"trained on {estimator.metadata['data']['num_pairs']} pairs (dropped: {dropped['non_finite']} non-finite, "
        f"{dropped['outside_prior']} outside the prior) for {len(history.train_loss)} epochs; "
        f"best validation loss {history.best_validation_loss:.4f}; model saved to {out}"
    )
    return 0


def _load_observations(path: str) -> np.ndarray:
    source = Path(path)
    if not source.exists():
        raise DataError(f"no observation file at {source}")
    if source.suffix == ".npy":
        return np.load(source, allow_pickle=False)
    if source.suffix == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise DataError(f"{source} has no array 'x' (it holds {archive.files})")
            return archive["x"]
    if source.suffix == ".json":
        return np.asarray(json.loads(source.read_text()), dtype=np.float32)
    raise DataError(f"observations must be .npy, .npz or .json, got {source.name!r}")


def _cmd_sample(args: argparse.Namespace) -> int:
    from sbi_gen.estimator import load_estimator

    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    estimator = load_estimator(args.model, device=args.device)
    samples = estimator.sample(_load_observations(args.observation), args.num, torch.Generator().manual_seed(args.seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, samples=samples.cpu().numpy(), parameters=np.array(estimator.prior.names))
    print(f"wrote samples {list(samples.shape)} [n, B, d] for parameters {estimator.prior.names} to {out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sbi_gen.pipeline import RunConfig, run

    config = RunConfig(
        simulator=args.simulator, simulator_options=_parse_options(args.option), estimator=args.estimator,
        estimator_options=_parse_options(args.estimator_option), num_simulations=args.simulations,
        num_observations=args.observations, num_posterior_samples=args.samples, num_sbc=args.sbc, seed=args.seed,
        training_options=_training_options(args), calibration_report=not args.no_calibration,
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run(config, args.out or Path("runs") / f"{args.simulator}-{args.estimator}-{stamp}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from sbi_gen.calibration import calibrate_estimator, write_report
    from sbi_gen.estimator import load_estimator
    from sbi_gen.pipeline import prepare_run_dir

    estimator = load_estimator(args.model, device=args.device)
    simulator = _model_simulator(estimator, args.model, args.simulator, args.option)
    out = prepare_run_dir(args.out or Path(args.model) / "calibration")
    report = calibrate_estimator(estimator, simulator, num_simulations=args.simulations, num_samples=args.samples,
                                 seed=args.seed, alpha=args.alpha)
    write_report(report, out)
    verdict = report.verdict
    print(f"calibration over {args.simulations} test pairs x {args.samples} samples: {verdict.overall}")
    print("  per parameter: " + ", ".join(f"{k} {v}" for k, v in verdict.per_parameter.items()))
    print("  per diagnostic: " + ", ".join(f"{k} {v}" for k, v in verdict.per_diagnostic.items()))
    for note in report.notes:
        print(f"  note: {note}")
    print(f"report: {out / 'calibration.md'}")
    if args.budgets:
        from sbi_gen.calibration.budgets import budget_sweep, parse_budgets, write_budget_sweep
        from sbi_gen.registry import get_estimator

        sweep = budget_sweep(
            lambda: get_estimator(estimator.name, device=args.device, **estimator.options), simulator,
            parse_budgets(args.budgets), num_simulations=args.simulations, num_samples=args.samples,
            seed=args.seed, alpha=args.alpha, training_options={"progress": False},
        )
        write_budget_sweep(sweep, out)
        for point in sweep.points:
            c2st_text = f", C2ST {point.reference_c2st:.3f}" if point.reference_c2st is not None else ""
            area = f"{point.coverage_area:+.3f}" if point.coverage_area is not None else "n/a"
            print(f"  budget {point.budget}: {point.verdict}, coverage area {area}, ATC {point.tarp_atc:+.3f}"
                  f"{c2st_text}")
        print(f"budget sweep: {out / 'budgets.png'}")
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    from sbi_gen.data import check_observations
    from sbi_gen.estimator import load_estimator
    from sbi_gen.refine import importance_sample

    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    estimator = load_estimator(args.model)
    if not estimator.capabilities.get("has_log_prob"):
        raise DataError(f"estimator {estimator.name!r} has no log_prob; importance sampling needs proposal densities")
    simulator = _model_simulator(estimator, args.model, args.simulator, args.option)
    observations = check_observations(_load_observations(args.observation), estimator.x_shape)
    generator = torch.Generator().manual_seed(args.seed)
    method = estimator.capabilities.get("log_prob_method", "exact")
    results = [
        importance_sample(estimator.posterior(x[None]), simulator, x, args.samples, generator=generator,
                          min_efficiency=args.min_efficiency, log_prob_method=method)
        for x in observations
    ]
    for b, result in enumerate(results):
        print(f"observation {b}: {result.diagnosis}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        resampled=torch.stack([r.resampled for r in results], 1).numpy(),
        proposals=torch.stack([r.samples for r in results], 1).numpy(),
        log_weights=torch.stack([r.log_weights for r in results], 1).numpy(),
        summary=np.array(json.dumps([r.to_dict() for r in results])),
        parameters=np.array(estimator.prior.names),
    )
    print(f"wrote resampled posterior samples {[args.samples, len(results), estimator.prior.dim]} to {out}")
    return 0 if all(r.trustworthy for r in results) else 3


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from sbi_gen.benchmark.cli import command

    return command(args)


COMMANDS = {"plugins": _cmd_plugins, "simulate": _cmd_simulate, "train": _cmd_train, "sample": _cmd_sample,
            "run": _cmd_run, "calibrate": _cmd_calibrate, "refine": _cmd_refine, "benchmark": _cmd_benchmark}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sbi-gen`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (SbiGenError, FileExistsError, ValueError) as error:
        print(f"sbi-gen {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

