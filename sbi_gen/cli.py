"""The ``sbi-gen`` command: plugins, simulate, train, sample, run."""

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
    group = parser.add_argument_group("training")
    group.add_argument("--max-epochs", type=int, default=300, help="upper bound on epochs (default: 300)")
    group.add_argument("--batch-size", type=int, default=256, help="pairs per step (default: 256)")
    group.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW step size (default: 1e-3)")
    group.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs (default: 20)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _training_config(args: argparse.Namespace):
    from sbi_gen.training import TrainingConfig

    return TrainingConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        patience=args.patience, device=args.device, progress=not args.no_progress, seed=args.seed,
    )


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

    sim = commands.add_parser("simulate", help="draw (theta, x) pairs from a simulator into an .npz file")
    sim.add_argument("simulator", help="registered simulator name (see `sbi-gen plugins`)")
    sim.add_argument("-n", "--num", type=int, default=10_000, help="number of pairs (default: 10000)")
    sim.add_argument("-o", "--out", required=True, help="output .npz file (must not exist)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sim.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")

    train = commands.add_parser(
        "train",
        help="train an estimator on a simulator or on your own (theta, x) file",
        description="Train an amortized posterior. Either name a simulator (pairs are simulated), or give "
        "--data FILE (an .npz or HDF5 file with arrays theta [n, d] and x [n, ...]) together with the prior: "
        "a simulator name, or --prior with a JSON spec such as "
        '\'{"type": "uniform", "low": [0, 0], "high": [1, 5]}\'.',
    )
    train.add_argument("simulator", nargs="?", help="registered simulator (gives the prior, and pairs if no --data)")
    train.add_argument("--data", help="your own pairs: .npz / .h5 with arrays theta and x")
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
    run.add_argument("simulator", nargs="?", default="toy_gaussian", help="registered simulator (default: toy_gaussian)")
    run.add_argument("-e", "--estimator", default="flow", help="registered estimator (default: flow)")
    run.add_argument("--estimator-option", action="append", metavar="KEY=VALUE", help="estimator option")
    run.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    run.add_argument("-n", "--simulations", type=int, default=10_000, help="training pairs (default: 10000)")
    run.add_argument("--observations", type=int, default=5, help="held-out observations (default: 5)")
    run.add_argument("--samples", type=int, default=5_000, help="posterior samples per observation (default: 5000)")
    run.add_argument("--sbc", type=int, default=200, help="simulations for the SBC check (default: 200)")
    run.add_argument("-o", "--out", help="run directory to create (default: runs/SIMULATOR-ESTIMATOR-TIME)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _training_arguments(run)
    return parser


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
    if out.exists():
        raise FileExistsError(f"{out} exists; sbi-gen never overwrites simulations: choose another --out")
    simulator = get_simulator(args.simulator, **_parse_options(args.option))
    data = simulate(simulator, args.num, seed=args.seed)
    save_simulations(out, data)
    print(f"wrote {len(data)} pairs (theta {list(data.theta.shape)}, x {list(data.x.shape)}) to {out}")
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
    from sbi_gen.registry import get_estimator, get_simulator

    if args.data is None and args.simulator is None:
        raise DataError("name a simulator, or give --data FILE with the prior (a simulator name or --prior SPEC)")
    if args.simulator and args.prior:
        raise DataError("give either a simulator (its prior is used) or --prior, not both")
    simulator = get_simulator(args.simulator, **_parse_options(args.option)) if args.simulator else None
    if args.data:
        if simulator is None and not args.prior:
            raise DataError("--data needs the prior: name a simulator or pass --prior SPEC")
        data = load_simulations(args.data)
        prior = simulator.prior if simulator else _load_prior_spec(args.prior)
    else:
        data = simulate(simulator, args.simulations, seed=args.seed)
        prior = simulator.prior
    out = prepare_run_dir(args.out)
    estimator = get_estimator(args.estimator, device=args.device, **_parse_options(args.estimator_option))
    history = estimator.fit(data.theta, data.x, prior, _training_config(args), drop_invalid=args.drop_invalid)
    if simulator is not None:
        estimator.metadata["simulator"] = simulator.describe()
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
        training=_training_config(args),
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run(config, args.out or Path("runs") / f"{args.simulator}-{args.estimator}-{stamp}")
    return 0


COMMANDS = {"plugins": _cmd_plugins, "simulate": _cmd_simulate, "train": _cmd_train, "sample": _cmd_sample,
            "run": _cmd_run}


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

