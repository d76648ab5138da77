"""``sbi-gen train``: an estimator trained on a simulator's pairs or on the user's own file."""

from __future__ import annotations

import argparse

from sbi_gen.cli.common import (
    add_redraw_argument,
    add_seed_argument,
    add_training_arguments,
    check_device,
    check_new_run_dir,
    load_prior_spec,
    parse_options,
    positive_int,
    training_options,
)
from sbi_gen.errors import DataError
from sbi_gen.seeding import RandomStreams

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train an estimator on a simulator or on your own (theta, x) file",
        description="Train an amortized posterior. Either name a simulator (pairs are simulated), or give "
        "--data FILE (an .npz or HDF5 file with arrays theta [n, d] and x [n, ...]) together with the prior: "
        "a simulator name, or --prior with a JSON spec such as "
        '\'{"type": "uniform", "low": [0, 0], "high": [1, 5]}\'. A training run that never reaches a finite '
        "validation loss saves nothing and exits with status 3.",
    )
    train.add_argument("simulator", nargs="?", help="registered simulator (gives the prior, and pairs if no --data)")
    train.add_argument("--data", help="your own pairs (.npz / .h5 with arrays theta and x), or a store from "
                       "`sbi-gen simulate` (streamed from disk; its recorded prior is the default)")
    train.add_argument("--prior", help="prior spec as JSON text or a .json file (with --data and no simulator)")
    train.add_argument("--drop-invalid", action="store_true", help="drop non-finite rows and theta outside the prior")
    train.add_argument("-n", "--simulations", type=positive_int, default=10_000,
                       help="pairs to simulate (default: 10000)")
    train.add_argument("-e", "--estimator", default="flow", help="registered estimator (default: flow)")
    train.add_argument("--estimator-option", action="append", metavar="KEY=VALUE", help="estimator option")
    train.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    train.add_argument("-o", "--out", required=True, help="model directory to create")
    add_seed_argument(train, note="; the same seed as `sbi-gen run` gives the same pairs and fit")
    add_redraw_argument(train)
    add_training_arguments(train)


def _data_source(args: argparse.Namespace, simulator):
    """``(pairs, prior)``: the pairs (a store to stream, a set in memory, or signals to re-draw pairs from) and
    the prior the flags name."""
    from sbi_gen.data import open_pairs
    from sbi_gen.pairs import SimulationSet
    from sbi_gen.redraw import RedrawnPairs
    from sbi_gen.registry import get_simulator
    from sbi_gen.simulation import training_pairs
    from sbi_gen.store import is_store

    if not args.data:
        pairs, _ = training_pairs(simulator, args.simulations, RandomStreams(args.seed).seed("simulate"), args.redraw)
        return pairs, simulator.prior
    if args.redraw is not None:
        raise DataError("--redraw/--no-redraw choose how simulated pairs are made; with --data the file decides "
                        "(a file of signals from `sbi-gen simulate --signals` is always re-drawn)")
    if simulator is None and not args.prior and not is_store(args.data):  # checked before a file is read
        raise DataError("--data needs the prior: name a simulator or pass --prior SPEC")
    source = open_pairs(args.data)
    # the simulator's prior, else --prior, else the one a store records
    prior = simulator.prior if simulator else load_prior_spec(args.prior) if args.prior else source.prior
    if isinstance(source, SimulationSet) and source.meta.get("content") == "signal":
        described = source.meta.get("simulator", {})
        if simulator is None and not described.get("name"):
            raise DataError(f"--data {args.data} holds signals but names no simulator: name the simulator")
        simulator = simulator or get_simulator(described["name"], **described.get("options", {}))
        source = RedrawnPairs(source, simulator, prior)
    return source, prior


def command(args: argparse.Namespace) -> int:
    from sbi_gen.pipeline import prepare_run_dir
    from sbi_gen.registry import get_estimator, get_registry, get_simulator
    from sbi_gen.store import SimulationStore

    if args.data is None and args.simulator is None:
        raise DataError("name a simulator, or give --data FILE with the prior (a simulator name or --prior SPEC)")
    if args.simulator and args.prior:
        raise DataError("give either a simulator (its prior is used) or --prior, not both")
    device = check_device(args)
    out = check_new_run_dir(args.out)
    simulator = get_simulator(args.simulator, **parse_options(args.option)) if args.simulator else None
    estimator_options = parse_options(args.estimator_option, "--estimator-option")
    if simulator is not None:
        estimator_options = get_registry().estimator_options_for(
            args.estimator, simulator.name, estimator_options, simulator.options
        )
    estimator = get_estimator(args.estimator, device=device, **estimator_options)
    pairs, prior = _data_source(args, simulator)
    # the streams of `sbi-gen run`: the same --seed trains on the same pairs with the same training seed
    training = estimator.training_config(**training_options(args), seed=RandomStreams(args.seed).seed("train"))
    history = estimator.fit(pairs, prior=prior, training=training, drop_invalid=args.drop_invalid)
    if simulator is not None or hasattr(pairs, "simulator"):  # named, or the one re-drawing pairs from signals
        estimator.metadata["simulator"] = (simulator or pairs.simulator).describe()
    elif isinstance(pairs, SimulationStore) and pairs.meta["simulator"].get("name") and not args.prior:
        estimator.metadata["simulator"] = pairs.meta["simulator"]
    estimator.save(prepare_run_dir(out))
    dropped = estimator.metadata["data"]["dropped"]
    print(
        f"trained on {estimator.metadata['data']['num_pairs']} pairs (dropped: {dropped['non_finite']} non-finite, "
        f"{dropped['outside_prior']} outside the prior) for {len(history.train_loss)} epochs; "
        f"best validation loss {history.best_validation_loss:.4f}; model saved to {out}"
    )
    return 0
