"""Local C2ST (L-C2ST): is the posterior right *at this observation*? Needs simulations only, no likelihood.

Linhart, Gramfort and Rodrigues 2023, "L-C2ST: Local Diagnostics for
Posterior Approximations in Simulation-Based Inference", NeurIPS,
arXiv:2306.03580. Global diagnostics (SBC, coverage, TARP) average over the
data; a posterior can pass them and still be wrong at the one observation a
physicist cares about. L-C2ST trains one classifier on ``N`` calibration
pairs to tell

- class 1: ``(theta_i, x_i)`` from the joint ``p(theta) p(x | theta)``, from
- class 0: ``(theta'_i, x_i)`` with ``theta'_i ~ q(theta | x_i)`` (one draw each),

so that its output ``d(theta, x)`` estimates ``P(class 1 | theta, x)``. If
``q(. | x_o) = p(. | x_o)``, the optimal classifier is ``1/2`` everywhere on
``x_o``'s slice, whatever happens elsewhere. The statistic is
``T(x_o) = mean_k (d(theta_k, x_o) - 1/2)^2`` over ``theta_k ~ q(. | x_o)``
(the paper's MSE statistic); it is 0 for a perfect posterior and grows with
the local discrepancy. Its null distribution comes from the paper's
permutation scheme: the class labels are shuffled, a classifier is retrained
on each shuffle (``num_permutations`` of them) and ``T`` is recomputed at
the same points; the p-value is ``(1 + #{T_null >= T}) / (1 + P)``, exact
under exchangeability of the labels (the global null), so a calibrated
posterior is flagged with probability at most ``alpha``.

The classifiers are the batched MLPs of :mod:`sbi_gen.calibration.c2st`
(two ReLU layers of ``min(10 D, 256)`` units on z-scored ``[theta, x]``,
Adam, early stopping on a validation tenth), all ``1 + P`` trained at once.
Observations are flattened; very long ones (a GW strain) make ``D`` and the
cost large: summarize them first if needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from sbi_gen.calibration.c2st import _BatchedMLP, _train
from sbi_gen.seeding import RandomStreams

__all__ = ["LC2STResult", "lc2st", "draw_calibration_pairs"]

MAX_HIDDEN = 256


@dataclass
class LC2STResult:
    """L-C2ST at one observation: the statistic, its permutation null, the p-value and the verdict."""

    statistic: float
    null_statistics: list[float]
    pvalue: float
    alpha: float
    num_calibration_pairs: int
    num_evaluation_samples: int
    probabilities: list[float]  #: d(theta_k, x_o) of the trained classifier, for the P-P plot
    null_probabilities: list[list[float]]  #: the same for each null classifier

    @property
    def rejects(self) -> bool:
        """Whether the posterior at this observation is flagged at level :attr:`alpha`."""
        return self.pvalue < self.alpha

    @property
    def verdict(self) -> str:
        return "locally miscalibrated" if self.rejects else "consistent with the true posterior"

    def to_dict(self, with_probabilities: bool = False) -> dict[str, Any]:
        data = {**asdict(self), "rejects": self.rejects, "verdict": self.verdict}
        if not with_probabilities:
            data.pop("probabilities"), data.pop("null_probabilities")
        return data


def draw_calibration_pairs(posterior_fn: Callable[[Tensor], Any], simulator: Any, num_simulations: int,
                           streams: RandomStreams) -> tuple[Tensor, Tensor, Tensor]:
    """``(theta [N, d], theta_q [N, d], x [N, *x_shape])``: joint pairs and one posterior draw for each ``x``."""
    from sbi_gen.simulation import simulate

    pairs = simulate(simulator, num_simulations, seed=streams.seed("calibration_pairs"))
    theta_q = posterior_fn(pairs.x).sample(1, streams.generator("calibration_draws"))[0]
    return pairs.theta, theta_q.to(pairs.theta), pairs.x


def lc2st(
    posterior_fn: Callable[[Tensor], Any], simulator: Any, x_obs: Tensor, *, num_simulations: int = 2000,
    num_evaluation_samples: int = 1000, num_permutations: int = 50, alpha: float = 0.05, seed: int = 0,
    max_epochs: int = 100, patience: int = 5, calibration: tuple[Tensor, Tensor, Tensor] | None = None,
) -> list[LC2STResult]:
    """L-C2ST of ``posterior_fn`` at each observation of ``x_obs [B, *x_shape]`` (module docstring).

    Arguments:
        posterior_fn: ``x [N, *x_shape] -> posterior`` with ``sample(n, generator) -> [n, N, d]``
            (``estimator.posterior``).
        simulator: gives the ``num_simulations`` calibration pairs (its prior and ``simulate``).
        num_evaluation_samples: draws from ``q(. | x_o)`` where the classifiers are evaluated.
        num_permutations: classifiers trained on shuffled labels for the null distribution;
            the smallest attainable p-value is ``1 / (1 + num_permutations)``.
        alpha: level of each observation's test.
        calibration: ``(theta, theta_q, x)`` from :func:`draw_calibration_pairs`, to reuse.

    The classifiers are trained once, on the calibration pairs, and evaluated at every observation.
    """
    if num_permutations < 1 or not 0 < alpha < 1:
        raise ValueError(f"need num_permutations >= 1 and alpha in (0, 1), got {num_permutations}, {alpha}")
    if 1 / (1 + num_permutations) >= alpha:
        raise ValueError(f"with {num_permutations} permutations the smallest p-value is "
                         f"{1 / (1 + num_permutations):.3g}, not below alpha = {alpha}: use more permutations")
    streams = RandomStreams(seed)
    theta, theta_q, x = calibration or draw_calibration_pairs(posterior_fn, simulator, num_simulations, streams)
    features = torch.cat([torch.cat([theta, x.reshape(len(x), -1)], 1), torch.cat([theta_q, x.reshape(len(x), -1)], 1)])
    labels = torch.cat([torch.ones(len(theta)), torch.zeros(len(theta_q))])
    mean, std = features.mean(0), features.std(0).clamp_min(1e-12)
    data = (features - mean) / std
    generator = streams.generator("classifiers")
    count = 1 + num_permutations  # classifier 0 sees the true labels, the others shuffled ones
    rows = [torch.arange(len(data))] + [torch.randperm(len(data), generator=generator) for _ in range(num_permutations)]
    inputs = torch.stack([data[r] for r in rows])  # permuting the rows against fixed labels = shuffling labels
    order = torch.randperm(len(data), generator=generator)
    num_validation = max(1, len(data) // 10)
    split = (order[num_validation:], order[:num_validation], order[:0])
    width = min(10 * data.shape[1], MAX_HIDDEN)
    model = _BatchedMLP(count, [data.shape[1], width, width, 1], generator)
    _train(model, inputs, labels, torch.arange(count), [split] * count, generator, max_epochs, patience)

    x_obs = torch.as_tensor(x_obs, dtype=torch.float32)
    draws = posterior_fn(x_obs).sample(num_evaluation_samples, streams.generator("evaluation"))  # [n, B, d]
    results = []
    with torch.no_grad():
        for b in range(len(x_obs)):
            flat_x = x_obs[b].reshape(1, -1).expand(num_evaluation_samples, -1)
            points = (torch.cat([draws[:, b].to(flat_x), flat_x], 1) - mean) / std
            probabilities = torch.sigmoid(model(points.expand(count, -1, -1)))  # [count, n]
            statistics = ((probabilities - 0.5) ** 2).mean(1)
            observed, null = float(statistics[0]), statistics[1:]
            pvalue = (1 + int((null >= observed).sum())) / (1 + num_permutations)
            results.append(LC2STResult(
                statistic=observed, null_statistics=null.tolist(), pvalue=pvalue, alpha=alpha,
                num_calibration_pairs=len(theta), num_evaluation_samples=num_evaluation_samples,
                probabilities=probabilities[0].tolist(), null_probabilities=probabilities[1:].tolist(),
            ))
    return results


def plot_lc2st(result: LC2STResult, path, title: str = "") -> None:
    """P-P plot of the classifier's predicted probabilities at ``x_o`` against the permutation null band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, 1, 101)
    def ecdf(values):
        return np.searchsorted(np.sort(values), grid, side="right") / len(values)

    null = np.array([ecdf(p) for p in result.null_probabilities])
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.fill_between(grid, np.quantile(null, 0.025, 0), np.quantile(null, 0.975, 0), color="0.85",
                      label="95% of the permutation null")
    axis.plot(grid, ecdf(result.probabilities), color="C3", label="trained classifier")
    axis.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--")
    axis.set(xlabel="predicted probability of the true joint", ylabel="empirical CDF over q(theta | x_o)",
             title=title or f"L-C2ST: {result.verdict} (p = {result.pvalue:.3g})")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
