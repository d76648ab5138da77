"""Simulation-based calibration (SBC) ranks and their uniformity test.

For ``N`` pairs ``(theta*_i, x*_i)`` drawn from the joint model and ``L``
posterior draws for each ``x*_i``, the rank of ``theta*_ik`` among the draws of
dimension ``k`` is uniform on ``{0, ..., L}`` when the posterior is correct
(Talts et al. 2018, "Validating Bayesian Inference Algorithms with
Simulation-Based Calibration", arXiv:1804.06788).

Uniformity is tested per dimension twice: a chi-square test on rank bins and a
Kolmogorov-Smirnov test on the ranks made continuous with a seeded uniform
jitter, ``(rank + U) / (L + 1) ~ U(0, 1)``. The ``2 d`` p-values are combined
with a Bonferroni correction, so the overall test keeps its level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

__all__ = ["SBCResult", "sbc_ranks", "sbc_test"]


@dataclass
class SBCResult:
    """Ranks and uniformity p-values per dimension, with the corrected overall p-value."""

    ranks: list[list[int]]
    num_posterior_samples: int
    num_bins: int
    chi2_pvalues: list[float]
    ks_pvalues: list[float]
    pvalue: float

    def rejects(self, alpha: float = 0.01) -> bool:
        """Whether uniformity is rejected at level ``alpha`` (after the correction)."""
        return self.pvalue < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sbc_ranks(posterior_samples: Tensor, theta_true: Tensor) -> Tensor:
    """Ranks ``[N, d]`` (in ``0..L``) of ``theta_true [N, d]`` among ``posterior_samples [L, N, d]``."""
    posterior_samples = torch.as_tensor(posterior_samples)
    theta_true = torch.as_tensor(theta_true)
    if posterior_samples.ndim != 3 or posterior_samples.shape[1:] != theta_true.shape:
        raise ValueError(
            f"posterior samples [L, N, d] must match theta [N, d]; got {list(posterior_samples.shape)} "
            f"and {list(theta_true.shape)}"
        )
    return (posterior_samples < theta_true.to(posterior_samples.dtype)).sum(0)


def _chi2_pvalue(ranks: np.ndarray, num_values: int, num_bins: int) -> float:
    edges = np.floor(np.arange(num_values) * num_bins / num_values).astype(int)
    expected = np.bincount(edges, minlength=num_bins) / num_values * len(ranks)
    observed = np.bincount(edges[ranks], minlength=num_bins)
    return float(stats.chisquare(observed, expected).pvalue)


def sbc_test(posterior_samples: Tensor, theta_true: Tensor, num_bins: int | None = None, seed: int = 0) -> SBCResult:
    """Rank ``theta_true [N, d]`` among ``posterior_samples [L, N, d]`` and test uniformity.

    Arguments:
        num_bins: chi-square bins; default ``min(20, L + 1, N // 5)`` (at least 2),
            so that each bin expects at least five ranks.
        seed: seeds the KS jitter.
    """
    ranks = sbc_ranks(posterior_samples, theta_true).cpu().numpy()
    num_posterior = int(torch.as_tensor(posterior_samples).shape[0])
    n, d = ranks.shape
    num_values = num_posterior + 1
    if num_bins is None:
        num_bins = max(2, min(20, num_values, n // 5))
    rng = np.random.default_rng(seed)
    chi2, ks = [], []
    for k in range(d):
        chi2.append(_chi2_pvalue(ranks[:, k], num_values, num_bins))
        continuous = (ranks[:, k] + rng.uniform(size=n)) / num_values
        ks.append(float(stats.kstest(continuous, "uniform").pvalue))
    pvalue = min(1.0, 2 * d * min(chi2 + ks))
    return SBCResult(ranks.T.tolist(), num_posterior, num_bins, chi2, ks, pvalue)
