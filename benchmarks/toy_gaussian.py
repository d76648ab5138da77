"""Toy Gaussian benchmark: training time, sampling throughput and C2ST of the flow estimator.

Prints, for the default flow (neural spline coupling) and MAF, on d = 5 with
10,000 simulations: training wall time, posterior samples per second for
B = 1 and B = 100 observations, and the mean C2ST against the analytic
posterior over 5 held-out observations (10,000 samples each). The analytic
posterior's own sampler is the throughput baseline, measured in the same run.

Usage: python benchmarks/toy_gaussian.py [--simulations 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import throughput

import sbi_gen
from sbi_gen.calibration import c2st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    simulator = sbi_gen.get_simulator("toy_gaussian")
    data = sbi_gen.simulate(simulator, args.simulations, seed=1)
    observations = sbi_gen.simulate(simulator, 100, seed=99)
    reference = simulator.reference_posterior(observations.x[:5]).sample(10_000, torch.Generator().manual_seed(1))

    def analytic(x, n):
        return simulator.reference_posterior(x).sample(n)

    rows = [("analytic (baseline)", None, throughput(analytic, observations.x[:1], 10_000),
             throughput(analytic, observations.x, 1_000), float("nan"))]
    for flow in ("nsf", "maf"):
        estimator = sbi_gen.get_estimator("flow", flow=flow)
        start = time.perf_counter()
        estimator.fit(data.theta, data.x, simulator.prior, seed=0, progress=False)
        train_s = time.perf_counter() - start
        samples = estimator.sample(observations.x[:5], 10_000, torch.Generator().manual_seed(0))
        accuracy = sum(c2st(reference[:, b], samples[:, b], seed=b).accuracy for b in range(5)) / 5
        rows.append((f"flow={flow}", train_s, throughput(estimator.sample, observations.x[:1], 10_000),
                     throughput(estimator.sample, observations.x, 1_000), accuracy))

    base_1, base_100 = rows[0][2], rows[0][3]
    print(f"toy_gaussian d=5, {args.simulations} simulations, {args.threads} threads, torch {torch.__version__}")
    print(f"{'estimator':<22}{'train s':>9}{'samples/s B=1':>16}{'(x baseline)':>13}{'samples/s B=100':>17}"
          f"{'(x baseline)':>13}{'C2ST':>8}")
    for name, train_s, rate_1, rate_100, accuracy in rows:
        train_text = f"{train_s:9.1f}" if train_s is not None else f"{'-':>9}"
        print(f"{name:<22}{train_text}{rate_1:16.3g}{rate_1 / base_1:13.3f}{rate_100:17.3g}"
              f"{rate_100 / base_100:13.3f}{accuracy:8.3f}")


if __name__ == "__main__":
    main()
