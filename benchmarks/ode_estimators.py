"""ODE-based estimators on the toy Gaussian: training time, sampling throughput, C2ST and log_prob cost.

Prints, for ``diffusion`` (VP-SDE, probability-flow ODE) and ``flow_matching``
next to the default ``flow`` as the baseline measured in the same run, on
d = 5 with 10,000 simulations: training wall time (each estimator's own
training defaults, unless ``--max-epochs`` caps them), posterior samples per
second for B = 1 and B = 100 observations, network evaluations per sample
(rows through the vector-field net or the flow's conditioners, divided by the
samples drawn), the mean C2ST against the analytic
posterior over 5 held-out observations, the time of ``log_prob`` for 1,000
points (200 x 5 observations) and the mean and mean absolute error of that
``log_prob`` against the analytic log-density at posterior samples.

Usage: python benchmarks/ode_estimators.py [--simulations 10000] [--samples 10000] [--threads 1] [--max-epochs N]
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import throughput

import sbi_gen
from sbi_gen.calibration import c2st

#: the networks whose forward passes are counted: the ODE plugins' field, the flows' conditioners
NETWORK_CLASSES = ("VectorFieldNet", "ResidualNet", "MADE")


def evaluations_per_sample(estimator, x: torch.Tensor, n: int) -> float:
    """Rows pushed through the estimator's networks per sample, drawing ``n`` samples for each ``x [B, ...]``."""
    rows = [0]

    def count(module, inputs, output):
        rows[0] += len(inputs[0])

    hooks = [m.register_forward_hook(count) for m in estimator.core.modules() if type(m).__name__ in NETWORK_CLASSES]
    try:
        estimator.sample(x, n, torch.Generator().manual_seed(0))
    finally:
        for hook in hooks:
            hook.remove()
    return rows[0] / (n * len(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=10_000, help="C2ST samples per observation (each side)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on training epochs for every estimator")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    simulator = sbi_gen.get_simulator("toy_gaussian")
    data = sbi_gen.simulate(simulator, args.simulations, seed=1)
    observations = sbi_gen.simulate(simulator, 100, seed=99)
    posterior = simulator.reference_posterior(observations.x[:5])
    reference = posterior.sample(args.samples, torch.Generator().manual_seed(1))
    theta = posterior.sample(200, torch.Generator().manual_seed(2)).float()
    log_p = posterior.log_prob(theta)
    training = {"max_epochs": args.max_epochs} if args.max_epochs else {}

    rows = []
    for name in ("flow", "diffusion", "flow_matching"):
        estimator = sbi_gen.get_estimator(name)
        start = time.perf_counter()
        history = estimator.fit(data.theta, data.x, simulator.prior, seed=0, progress=False, **training)
        train_s = time.perf_counter() - start
        samples = estimator.sample(observations.x[:5], args.samples, torch.Generator().manual_seed(0))
        accuracy = sum(c2st(reference[:, b], samples[:, b], seed=b).accuracy for b in range(5)) / 5
        start = time.perf_counter()
        log_q = estimator.log_prob(theta, observations.x[:5])
        log_prob_s = time.perf_counter() - start
        error = log_q - log_p
        rows.append((name, train_s, len(history.train_loss), throughput(estimator.sample, observations.x[:1], 10_000),
                     throughput(estimator.sample, observations.x, 1_000), accuracy, log_prob_s,
                     float(error.mean()), float(error.abs().mean()),
                     evaluations_per_sample(estimator, observations.x[:1], 100)))

    print(f"toy_gaussian d=5, {args.simulations} simulations, C2ST on {args.samples} samples x 5 observations, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'estimator':<15}{'train s':>9}{'epochs':>8}{'samples/s B=1':>15}{'B=100':>10}{'C2ST':>8}"
          f"{'log_prob s':>12}{'mean err':>10}{'mean |err|':>12}{'net evals/sample':>18}")
    for name, train_s, epochs, rate_1, rate_100, accuracy, log_prob_s, mean_error, abs_error, evals in rows:
        print(f"{name:<15}{train_s:9.1f}{epochs:8d}{rate_1:15.3g}{rate_100:10.3g}{accuracy:8.3f}"
              f"{log_prob_s:12.2f}{mean_error:10.3f}{abs_error:12.3f}{evals:18.1f}")


if __name__ == "__main__":
    main()
