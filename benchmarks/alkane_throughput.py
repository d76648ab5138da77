"""Alkane benchmark: simulation throughput, reference-posterior cost and (optionally) flow C2ST.

Prints the wall time and simulations per second of 100,000 simulations of the
``alkane`` summary variant (N = 50 conformations of n-octane each) and of
1,000 simulations of ``alkane_set``, then the cost of reference-posterior
samples (parallel MCMC) for 5 observations. With ``--c2st``, it fits the
default flow on ``--train`` simulations and prints the C2ST accuracy against
the reference posterior (10,000 samples each) for 5 observations.

Usage: python benchmarks/alkane_throughput.py [--simulations 100000] [--threads 1] [--c2st]
       [--estimators flow,diffusion,flow_matching]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

import sbi_gen
from sbi_gen.calibration import c2st


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on a shared machine 1 is fastest (each op is small)")
    parser.add_argument("--c2st", action="store_true", help="fit a flow and report C2ST (minutes)")
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--estimators", default="flow",
                        help="comma-separated estimators for --c2st, e.g. flow,diffusion,flow_matching")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    simulator = sbi_gen.get_simulator("alkane")
    data, seconds = timed(sbi_gen.simulate, simulator, args.simulations, 0)
    print(f"alkane (N=50): {args.simulations} simulations in {seconds:.2f} s "
          f"= {args.simulations / seconds:,.0f} simulations/s on {args.threads} thread(s)")
    set_simulator = sbi_gen.get_simulator("alkane_set")
    _, seconds = timed(sbi_gen.simulate, set_simulator, 1000, 0)
    print(f"alkane_set (N=20): 1000 simulations in {seconds:.2f} s = {1000 / seconds:,.0f} simulations/s")

    observations = sbi_gen.simulate(simulator, 5, seed=99)
    reference = simulator.reference_posterior(observations.x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_samples, seconds = timed(reference.sample, 10_000, torch.Generator().manual_seed(1))
    print(f"reference posterior: 10,000 samples x 5 observations in {seconds:.2f} s, "
          f"max split-R-hat {reference.diagnostics['max_split_rhat']:.3f}")

    if args.c2st:
        train = data if len(data) == args.train else sbi_gen.simulate(simulator, args.train, seed=0)
        for name in args.estimators.split(","):
            estimator = sbi_gen.get_estimator(name)
            _, seconds = timed(lambda e=estimator: e.fit(train.theta, train.x, simulator.prior, progress=False))
            samples = estimator.sample(observations.x, 10_000, torch.Generator().manual_seed(0))
            scores = [c2st(ref_samples[:, b], samples[:, b], seed=b).accuracy for b in range(5)]
            print(f"{name} on {args.train} simulations: trained in {seconds:.0f} s; C2ST per observation "
                  f"{', '.join(f'{s:.3f}' for s in scores)}; mean {sum(scores) / 5:.3f}")


if __name__ == "__main__":
    main()
