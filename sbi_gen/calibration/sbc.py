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

:func:`sbc_check` adds what a verdict needs, per dimension (ranks ``r`` in
``0..L``, ``N`` test pairs, every test two-sided):

- *bias*: the mean normalized rank ``r / L`` (0.5 when calibrated), with a
  normal interval and z-test. Low ranks mean ``theta*`` sits below most draws:
  the posterior is shifted up.
- *dispersion*: the fraction of ``theta*`` inside the central 50% rank
  interval (the empirical coverage of the central 50% credible interval),
  with a Clopper-Pearson interval and an exact binomial test. Below nominal:
  U-shaped ranks, an overconfident posterior; above: hump-shaped ranks, an
  underconfident one.
- *shape*: chi-square, KS and the simultaneous ECDF test
  (:mod:`sbi_gen.calibration.bands`), combined by Bonferroni.

The label of a dimension at family level ``alpha`` (each of the three tests at
``alpha / (3 d)``): ``biased`` if the bias test rejects; otherwise
``overconfident`` / ``underconfident`` if the dispersion test rejects;
otherwise ``miscalibrated`` if only the shape test rejects; else
``calibrated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from sbi_gen.calibration.bands import (
    ECDFBand,
    binomial_interval,
    ecdf_at,
    ecdf_pvalue,
    normal_interval,
    simultaneous_ecdf_band,
)

__all__ = ["ParameterCheck", "SBCCheck", "SBCResult", "sbc_check", "sbc_ranks", "sbc_test"]


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


@dataclass
class ParameterCheck:
    """Bias, dispersion and shape statistics of one dimension's ranks, and its label."""

    name: str
    label: str
    rank_mean: float
    rank_mean_ci: tuple[float, float]
    bias_pvalue: float
    central_coverage: float
    central_nominal: float
    central_coverage_ci: tuple[float, float]
    dispersion_pvalue: float
    ecdf_pvalue: float
    shape_pvalue: float
    level: float
    ecdf: list[float]


@dataclass
class SBCCheck:
    """SBC per dimension, with the simultaneous ECDF band shared by all dimensions."""

    uniformity: SBCResult
    parameters: list[ParameterCheck]
    band: dict[str, Any]
    alpha: float
    pvalue: float

    @property
    def ranks(self) -> np.ndarray:
        """Ranks ``[N, d]``."""
        return np.asarray(self.uniformity.ranks).T

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _central_set(num_values: int) -> tuple[int, int]:
    """Rank values ``[start, stop)`` of the central half of ``0..num_values-1``."""
    width = max(1, round(num_values / 2))
    start = (num_values - width) // 2
    return start, start + width


def _parameter_check(
    name: str, ranks: np.ndarray, num_values: int, chi2: float, ks: float, band: ECDFBand, alpha_each: float
) -> ParameterCheck:
    n = len(ranks)
    level = 1 - alpha_each
    mean, low, high = normal_interval(ranks / (num_values - 1), level)
    null_sd = np.sqrt((num_values**2 - 1) / 12) / (num_values - 1)
    bias_p = float(2 * stats.norm.sf(abs(mean - 0.5) / (null_sd / np.sqrt(n))))
    start, stop = _central_set(num_values)
    inside = int(((ranks >= start) & (ranks < stop)).sum())
    nominal = (stop - start) / num_values
    dispersion_p = float(stats.binomtest(inside, n, nominal).pvalue)
    ecdf_p = ecdf_pvalue(ranks, band)
    shape_p = min(1.0, 3 * min(chi2, ks, ecdf_p))
    if bias_p < alpha_each:
        label = "biased"
    elif dispersion_p < alpha_each:
        label = "overconfident" if inside / n < nominal else "underconfident"
    elif shape_p < alpha_each:
        label = "miscalibrated"
    else:
        label = "calibrated"
    return ParameterCheck(
        name, label, mean, (low, high), bias_p, inside / n, nominal, binomial_interval(inside, n, level),
        dispersion_p, ecdf_p, shape_p, level, ecdf_at(ranks, band).tolist(),
    )


def sbc_check(
    posterior_samples: Tensor, theta_true: Tensor, names: list[str] | None = None, alpha: float = 0.01, seed: int = 0
) -> SBCCheck:
    """SBC of ``theta_true [N, d]`` among ``posterior_samples [L, N, d]``, labelled per dimension.

    Arguments:
        names: parameter names (default ``theta_0, ...``).
        alpha: family-wise level over all ``3 d`` tests (see the module docstring).
        seed: seeds the KS jitter and the simulated ECDF band.
    """
    uniformity = sbc_test(posterior_samples, theta_true, seed=seed)
    ranks = np.asarray(uniformity.ranks).T
    n, d = ranks.shape
    num_values = uniformity.num_posterior_samples + 1
    names = names or [f"theta_{k}" for k in range(d)]
    alpha_each = alpha / (3 * d)
    band = simultaneous_ecdf_band(n, num_values, level=1 - alpha, seed=seed)
    checks = [
        _parameter_check(names[k], ranks[:, k], num_values, uniformity.chi2_pvalues[k], uniformity.ks_pvalues[k],
                         band, alpha_each)
        for k in range(d)
    ]
    pvalue = min(1.0, 3 * d * min(min(c.bias_pvalue, c.dispersion_pvalue, c.shape_pvalue) for c in checks))
    return SBCCheck(uniformity, checks, band.to_dict(), alpha, pvalue)
