"""``sbi-gen run``: the main job (simulate, train, sample held-out observations, report C2ST and SBC)."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from sbi_gen.cli.common import (
    add_redraw_argument,
    add_seed_argument,
    add_training_arguments,
    check_device,
    check_new_run_dir,
    parse_options,
    positive_int,
    training_options,
)

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
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
    run.add_argument("-n", "--simulations", type=positive_int, default=10_000, help="training pairs (default: 10000)")
    run.add_argument("--observations", type=positive_int, default=5, help="held-out observations (default: 5)")
    run.add_argument("--samples", type=positive_int, default=5_000,
                     help="posterior samples per observation (default: 5000)")
    run.add_argument("--sbc", type=positive_int, default=200, help="simulations for the SBC check (default: 200)")
    run.add_argument("-o", "--out", help="run directory to create (default: runs/SIMULATOR-ESTIMATOR-TIME)")
    add_seed_argument(run)
    run.add_argument("--no-calibration", action="store_true", help="skip the calibration report (calibration/)")
    add_redraw_argument(run)
    run.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                     help="refine each held-out posterior by importance sampling with the exact likelihood and "
                     "report efficiency and evidence (default: when the simulator has a likelihood); the draws of "
                     "an untrustworthy refinement are withheld from refined.npz")
    run.add_argument("--refine-proposals", type=positive_int, default=10_000,
                     help="importance-sampling proposals per held-out observation (default: 10000)")
    add_training_arguments(run)


def command(args: argparse.Namespace) -> int:
    from sbi_gen.pipeline import RunConfig, run

    device = check_device(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = check_new_run_dir(args.out or Path("runs") / f"{args.simulator}-{args.estimator}-{stamp}")
    config = RunConfig(
        simulator=args.simulator, simulator_options=parse_options(args.option), estimator=args.estimator,
        estimator_options=parse_options(args.estimator_option, "--estimator-option"),
        num_simulations=args.simulations, num_observations=args.observations, num_posterior_samples=args.samples,
        num_sbc=args.sbc, seed=args.seed, device=device, training_options=training_options(args),
        calibration_report=not args.no_calibration, redraw=args.redraw, refine=args.refine,
        refine_proposals=args.refine_proposals,
    )
    run(config, out)
    return 0
