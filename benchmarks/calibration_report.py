"""Calibration report benchmark: wall time of a full report for N test pairs x L samples.

Times ``calibrate`` + ``write_report`` (simulate test pairs, draw all samples in
one call, densities, SBC, expected coverage, TARP, C2ST against the reference
on 5 observations, data-averaged-posterior check, plots) with the toy
Gaussian's exact posterior as the estimator, and prints the time of each step
and the verdict. ``--flow`` also trains the default flow on 10,000 simulations
and times its report (training time is printed separately, not included).

Usage: python benchmarks/calibration_report.py [--pairs 1000] [--samples 1000] [--threads 1] [--flow]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import sbi_gen
from sbi_gen.calibration import calibrate, calibrate_estimator, write_report


def timed_report(name: str, make_report) -> None:
    start = time.perf_counter()
    report = make_report()
    with tempfile.TemporaryDirectory() as out:
        write_report(report, out)
    total = time.perf_counter() - start
    steps = ", ".join(f"{key[:-2]} {value:.2f}" for key, value in report.timings.items())
    print(f"{name:<28} total {total:6.2f} s  verdict {report.verdict.overall:<14} ({steps})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flow", action="store_true", help="also train a flow and time its report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    simulator = sbi_gen.get_simulator("toy_gaussian")
    print(f"full calibration report, N = {args.pairs} test pairs x L = {args.samples} samples, d = 5, "
          f"{args.threads} thread(s); step times in s")
    timed_report("exact posterior", lambda: calibrate(simulator.reference_posterior, simulator, args.pairs,
                                                      args.samples))
    if args.flow:
        data = sbi_gen.simulate(simulator, 10_000, seed=0)
        estimator = sbi_gen.get_estimator("flow")
        start = time.perf_counter()
        estimator.fit(data.theta, data.x, simulator.prior, progress=False)
        print(f"(flow trained on 10,000 simulations in {time.perf_counter() - start:.1f} s)")
        timed_report("flow (nsf, 10k simulations)", lambda: calibrate_estimator(
            estimator, simulator, num_simulations=args.pairs, num_samples=args.samples))


if __name__ == "__main__":
    main()
