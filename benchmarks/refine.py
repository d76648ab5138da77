"""Importance-sampling refinement throughput on the toy Gaussian.

Prints proposals weighted per second (sampling the proposal, its density, the
prior and the exact likelihood) for 100,000 proposals, with the flow as the
proposal and with the analytic posterior as the baseline proposal, measured in
the same run. The flow is trained briefly (throughput does not depend on how
well it is trained).

Usage: python benchmarks/refine.py [--proposals 100000] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from timing import best_seconds

import sbi_gen
from sbi_gen.refine import importance_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    simulator = sbi_gen.get_simulator("toy_gaussian")
    data = sbi_gen.simulate(simulator, 5_000, seed=1)
    estimator = sbi_gen.get_estimator("flow")
    estimator.fit(data.theta, data.x, simulator.prior, max_epochs=10, progress=False)
    x = sbi_gen.simulate(simulator, 1, seed=2).x
    proposals = {"analytic (baseline)": simulator.reference_posterior(x), "flow": estimator.posterior(x)}

    rates = {}
    print(f"toy_gaussian d=5, {args.proposals} proposals, {args.threads} threads, torch {torch.__version__}")
    for name, proposal in proposals.items():
        generator = torch.Generator().manual_seed(0)

        def refine(proposal=proposal, generator=generator):
            return importance_sample(proposal, simulator, x, args.proposals, generator=generator)

        best = best_seconds(refine)
        result = refine()
        rates[name] = args.proposals / best
        print(f"{name:<22} {rates[name]:12.4g} proposals/s  ({rates[name] / rates['analytic (baseline)']:.3f} x "
              f"baseline); efficiency {100 * result.efficiency:.1f}%")


if __name__ == "__main__":
    main()
