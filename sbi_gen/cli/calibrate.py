"""``sbi-gen calibrate``: the calibration report of a saved model, optionally across simulation budgets."""

from __future__ import annotations

import argparse
from pathlib import Path

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
from sbi_gen.errors import DataError

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    cal = commands.add_parser(
        "calibrate",
        help="calibration report of a saved model: SBC, expected coverage, TARP, C2ST and a verdict",
        description="Simulate held-out test pairs, draw posterior samples for all of them in one call, and run SBC, "
        "expected coverage (if the model has log_prob), TARP, C2ST against the reference posterior (if the "
        "simulator has one) and a data-averaged-posterior check. Writes calibration.json, calibration.md and PNG "
        "plots, and prints the verdict: calibrated, overconfident, underconfident or biased.",
    )
    cal.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    cal.add_argument("-n", "--simulations", type=positive_int, default=1_000, help="test pairs (default: 1000)")
    cal.add_argument("--samples", type=positive_int, default=1_000,
                     help="posterior samples per test pair (default: 1000)")
    cal.add_argument("--simulator", help="registered simulator (default: the one recorded in the model)")
    cal.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    cal.add_argument("--alpha", type=float, default=0.01, help="family-wise level of the verdict (default: 0.01)")
    cal.add_argument("-o", "--out", help="report directory to create (default: MODEL/calibration)")
    add_seed_argument(cal)
    add_device_argument(cal)
    cal.add_argument("--observation", metavar="FILE",
                     help="also run the local C2ST (L-C2ST, Linhart et al. 2023) at these observations [B, *x_shape] "
                     "(.npy, .npz or .json): is the posterior right at each x? Needs simulations only, no "
                     "likelihood (lc2st.json, lc2st_observation_B.png)")
    cal.add_argument("--permutations", type=positive_int, default=50,
                     help="L-C2ST null classifiers trained on shuffled labels (default: 50)")
    cal.add_argument(
        "--budgets",
        help="also retrain the same estimator on each of these simulation budgets (e.g. 1e3,1e4,1e5) and plot "
        "coverage area, TARP ATC and C2ST versus budget (budgets.json, budgets.png)",
    )


def command(args: argparse.Namespace) -> int:
    from sbi_gen.calibration import calibrate_estimator, write_report
    from sbi_gen.calibration.budgets import parse_budgets
    from sbi_gen.estimator import load_estimator
    from sbi_gen.pipeline import prepare_run_dir

    if not 0 < args.alpha < 1:
        raise DataError(f"--alpha is a level in (0, 1), got {args.alpha}")
    budgets = parse_budgets(args.budgets) if args.budgets else None
    device = check_device(args)
    out = check_new_run_dir(args.out or Path(args.model) / "calibration")
    observations = load_observations(args.observation) if args.observation else None
    estimator = load_estimator(args.model, device=device)
    simulator = model_simulator(estimator, args.model, args.simulator, args.option)
    x_obs = observations_for(observations, estimator, args.observation) if args.observation else None
    if x_obs is not None and 1 / (1 + args.permutations) >= args.alpha:
        raise DataError(f"--permutations {args.permutations}: the smallest L-C2ST p-value would be "
                        f"{1 / (1 + args.permutations):.3g}, not below --alpha {args.alpha}; use more")
    report = calibrate_estimator(estimator, simulator, num_simulations=args.simulations, num_samples=args.samples,
                                 seed=args.seed, alpha=args.alpha)
    write_report(report, prepare_run_dir(out))
    verdict = report.verdict
    print(f"calibration over {args.simulations} test pairs x {args.samples} samples: {verdict.overall}")
    print("  per parameter: " + ", ".join(f"{k} {v}" for k, v in verdict.per_parameter.items()))
    print("  per diagnostic: " + ", ".join(f"{k} {v}" for k, v in verdict.per_diagnostic.items()))
    for note in report.notes:
        print(f"  note: {note}")
    print(f"report: {out / 'calibration.md'}")
    if x_obs is not None:
        _local_c2st(args, estimator, simulator, x_obs, out)
    if budgets:
        _budget_sweep(args, estimator, simulator, budgets, device, out)
    return 0


def _budget_sweep(args: argparse.Namespace, estimator, simulator, budgets, device: str, out: Path) -> None:
    from sbi_gen.calibration.budgets import budget_sweep, write_budget_sweep
    from sbi_gen.registry import get_estimator

    sweep = budget_sweep(
        lambda: get_estimator(estimator.name, device=device, **estimator.options.to_dict()), simulator,
        budgets, num_simulations=args.simulations, num_samples=args.samples,
        seed=args.seed, alpha=args.alpha, training_options={"progress": False},
    )
    write_budget_sweep(sweep, out)
    for point in sweep.points:
        c2st_text = f", C2ST {point.reference_c2st:.3f}" if point.reference_c2st is not None else ""
        area = f"{point.coverage_area:+.3f}" if point.coverage_area is not None else "n/a"
        print(f"  budget {point.budget}: {point.verdict}, coverage area {area}, ATC {point.tarp_atc:+.3f}"
              f"{c2st_text}")
    print(f"budget sweep: {out / 'budgets.png'}")


def _local_c2st(args: argparse.Namespace, estimator, simulator, x_obs, out: Path) -> None:
    """L-C2ST at each observation: lc2st.json, one P-P plot per observation, a verdict line each."""
    import json

    from sbi_gen.calibration.lc2st import lc2st, plot_lc2st
    from sbi_gen.seeding import RandomStreams

    results = lc2st(estimator.posterior, simulator, x_obs, num_simulations=args.simulations,
                    num_evaluation_samples=args.samples, num_permutations=args.permutations, alpha=args.alpha,
                    seed=RandomStreams(args.seed).seed("lc2st"))
    (out / "lc2st.json").write_text(json.dumps(
        {"method": "L-C2ST (Linhart et al. 2023, arXiv:2306.03580), MSE statistic, permutation null",
         "observation_file": str(args.observation), "observations": [r.to_dict() for r in results]}, indent=2))
    for b, result in enumerate(results):
        plot_lc2st(result, out / f"lc2st_observation_{b}.png", title=f"L-C2ST at observation {b}: {result.verdict}")
        print(f"  L-C2ST at observation {b}: {result.verdict} (T = {result.statistic:.4g}, p = {result.pvalue:.3g}, "
              f"{args.permutations} permutations, level {args.alpha})")
    print(f"local calibration: {out / 'lc2st.json'}")
