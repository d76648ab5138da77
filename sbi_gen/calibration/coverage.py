"""Expected coverage of highest-posterior-density regions.

For a test pair ``(theta*, x*)`` and ``L`` draws ``theta_j ~ q(theta | x*)``,
``theta*`` lies in the HPD region of credibility ``g`` when fewer than a
fraction ``g`` of the draws are denser than it. The *rank*
``r = #{j : q(theta_j | x*) > q(theta* | x*)}`` is uniform on ``{0..L}`` for
the true posterior, and the empirical coverage at nominal level ``g`` is the
ECDF of ``r / (L + 1)`` at ``g`` (Hermans et al. 2022, "A Trust Crisis in
Simulation-Based Inference? Your Posterior Approximations Can Be
Unfaithful", arXiv:2110.06581).

Summary: the signed area between the coverage curve and the diagonal,
``A = int_0^1 (coverage(g) - g) dg = 1/2 - mean(u)`` with mid-ranks
``u = (r + 1/2) / (L + 1)``. ``A < 0``: regions too small, overconfident (or
biased: HPD regions cannot tell a shift from a squeeze); ``A > 0``:
conservative, underconfident. At family level ``alpha`` the curve is flagged
when a z-test on ``A`` or the simultaneous ECDF test
(:mod:`sbi_gen.calibration.bands`) rejects at ``alpha / 2``. If the area test
rejects, the sign of ``A`` names the direction; if only the ECDF test does,
the label is ``miscalibrated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen.calibration.bands import (
    binomial_interval,
    coverage_label,
    ecdf_at,
    normal_interval,
    simultaneous_ecdf_band,
)

__all__ = ["CoverageResult", "coverage_ranks", "expected_coverage"]


@dataclass
class CoverageResult:
    """Coverage curve with its simultaneous binomial band, the signed area and a label."""

    label: str
    nominal: list[float]
    empirical: list[float]
    band_lower: list[float]
    band_upper: list[float]
    area: float
    area_ci: tuple[float, float]
    area_pvalue: float
    ecdf_pvalue: float
    pvalue: float
    level: float
    levels: dict[str, dict[str, float]]
    num_pairs: int
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage_ranks(log_prob_samples: Tensor, log_prob_true: Tensor) -> np.ndarray:
    """Number of draws denser than ``theta*``: ``[N]`` from ``log_prob_samples [L, N]``, ``log_prob_true [N]``."""
    log_prob_samples = torch.as_tensor(log_prob_samples, dtype=torch.float64)
    log_prob_true = torch.as_tensor(log_prob_true, dtype=torch.float64).reshape(-1)
    if log_prob_samples.ndim != 2 or log_prob_samples.shape[1] != len(log_prob_true):
        raise ValueError(
            f"log_prob_samples [L, N] must match log_prob_true [N]; got {list(log_prob_samples.shape)} and "
            f"{list(log_prob_true.shape)}"
        )
    return (log_prob_samples > log_prob_true).sum(0).cpu().numpy()


def expected_coverage(
    log_prob_samples: Tensor, log_prob_true: Tensor, alpha: float = 0.01, seed: int = 0,
    report_levels: tuple[float, ...] = (0.5, 0.68, 0.95),
) -> CoverageResult:
    """Expected HPD coverage from densities of ``L`` draws ``[L, N]`` and of ``theta*`` ``[N]``.

    Arguments:
        alpha: level of the check (split between the area and ECDF tests);
            the band is simultaneous at ``1 - alpha``.
        seed: seeds the simulated band.
        report_levels: nominal levels whose coverage is reported with a
            Clopper-Pearson interval.
    """
    ranks = coverage_ranks(log_prob_samples, log_prob_true)
    num_samples = int(torch.as_tensor(log_prob_samples).shape[0])
    n, num_values = len(ranks), num_samples + 1
    band = simultaneous_ecdf_band(n, num_values, level=1 - alpha, seed=seed)
    u = (ranks + 0.5) / num_values
    mean, low, high = normal_interval(u, 1 - alpha / 2)
    area = 0.5 - mean
    null_sd = np.sqrt((num_values**2 - 1) / 12) / num_values
    area_p, ecdf_p, pvalue, label = coverage_label(area, null_sd, n, ranks, band, alpha)
    levels = {}
    for g in report_levels:
        inside = int((ranks < g * num_values).sum())
        ci = binomial_interval(inside, n, 1 - alpha)
        levels[f"{g:g}"] = {"nominal": g, "empirical": inside / n, "ci_low": ci[0], "ci_high": ci[1]}
    return CoverageResult(
        label, band.points, ecdf_at(ranks, band).tolist(), band.lower, band.upper, area, (0.5 - high, 0.5 - low),
        area_p, ecdf_p, pvalue, 1 - alpha, levels, n, num_samples,
    )
