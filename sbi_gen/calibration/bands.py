"""Confidence intervals and simultaneous ECDF bands for uniform ranks.

Every calibration diagnostic here reduces, per test pair, to an integer rank
``r`` in ``{0, ..., V - 1}`` that is uniform when the posterior is right: the
SBC rank of ``theta*`` (Talts et al. 2018, arXiv:1804.06788), the number of
posterior draws denser than ``theta*`` (expected coverage; Hermans et al.
2022, arXiv:2110.06581) or closer to a reference point (TARP; Lemos et al.
2023, arXiv:2302.03026). Their ECDFs are checked with one tool.

The ECDF ``F_k = #{r < c_k} / N`` is evaluated at cut points ``c_k`` with
nominal values ``p_k = c_k / V``; under uniformity ``N F_k ~ Binomial(N, p_k)``
exactly. A *simultaneous* band (Säilynoja, Bürkner & Vehtari 2022, "Graphical
test for discrete uniformity and its applications in goodness-of-fit
evaluation and multiple sample comparison", arXiv:2103.10522) widens the
pointwise binomial intervals to level ``gamma`` chosen so that a uniform ECDF
stays inside *all* of them with probability ``level``. We find ``gamma`` by
their simulation method: the ``1 - level`` quantile, over uniform samples, of
the smallest two-sided binomial tail probability along the curve. The same
simulations give the p-value of the observed curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import stats

__all__ = [
    "ECDFBand",
    "binomial_interval",
    "coverage_label",
    "ecdf_at",
    "ecdf_pvalue",
    "normal_interval",
    "simultaneous_ecdf_band",
]


def binomial_interval(successes: int, trials: int, level: float) -> tuple[float, float]:
    """Clopper-Pearson interval of a binomial proportion at confidence ``level``."""
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


def normal_interval(values: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean of ``values [N]`` with its CLT interval at ``level``: ``(mean, low, high)``."""
    mean = float(np.mean(values))
    half = float(stats.norm.ppf(0.5 + level / 2) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


@dataclass
class ECDFBand:
    """Nominal values ``points [K]`` and the band ``lower, upper [K]`` of a uniform ECDF.

    ``gamma`` is the pointwise level that makes the band simultaneous at ``level``.
    """

    num_draws: int
    num_values: int
    level: float
    gamma: float
    points: list[float]
    lower: list[float]
    upper: list[float]
    cuts: list[int] = field(repr=False)
    null_min_tail: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        keys = ("num_draws", "num_values", "level", "gamma", "points", "lower", "upper")
        return {key: getattr(self, key) for key in keys}


def _cut_points(num_values: int, num_points: int) -> np.ndarray:
    k = min(num_points, num_values - 1)
    cuts = np.round(np.arange(1, k + 1) * num_values / (k + 1)).astype(int)
    return np.unique(np.clip(cuts, 1, num_values - 1))


def _min_tail(counts: np.ndarray, num_draws: int, points: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability along each curve of ``counts [..., K]``."""
    low = stats.binom.cdf(counts, num_draws, points)
    high = stats.binom.sf(counts - 1, num_draws, points)
    return np.minimum(1.0, 2 * np.minimum(low, high)).min(-1)


@lru_cache(maxsize=16)
def simultaneous_ecdf_band(
    num_draws: int, num_values: int, level: float = 0.99, num_points: int = 100,
    num_simulations: int = 2000, seed: int = 0,
) -> ECDFBand:
    """Simultaneous band for the ECDF of ``num_draws`` uniform ranks in ``{0..num_values-1}``.

    Arguments:
        num_draws: ``N``, ranks per ECDF (test pairs).
        num_values: ``V``, possible rank values (``L + 1`` for ``L`` posterior draws).
        level: simultaneous coverage of the band.
        num_points: at most this many evaluation points ``K``.
        num_simulations: uniform samples used to calibrate ``gamma`` and p-values.
    """
    if num_draws < 1 or num_values < 2:
        raise ValueError(f"need at least one rank and two rank values, got N={num_draws}, V={num_values}")
    cuts = _cut_points(num_values, num_points)
    points = cuts / num_values
    rng = np.random.default_rng(seed)
    uniform = np.sort(rng.uniform(size=(num_simulations, num_draws)), axis=1)
    # count u < p_k in every sorted row at once: offset row i by i and search the flat array
    offsets = np.arange(num_simulations)[:, None]
    flat = (uniform + offsets).ravel()
    counts = np.searchsorted(flat, (points[None, :] + offsets).ravel()).reshape(num_simulations, -1)
    counts -= offsets * num_draws
    null_min_tail = np.sort(_min_tail(counts, num_draws, points))
    gamma = float(np.quantile(null_min_tail, 1 - level))
    lower = stats.binom.ppf(gamma / 2, num_draws, points) / num_draws
    upper = stats.binom.ppf(1 - gamma / 2, num_draws, points) / num_draws
    return ECDFBand(num_draws, num_values, level, gamma, points.tolist(), lower.tolist(), upper.tolist(),
                    cuts.tolist(), null_min_tail)


def ecdf_at(ranks: np.ndarray, band: ECDFBand) -> np.ndarray:
    """ECDF ``[K]`` of integer ``ranks [N]`` at the band's points: the fraction below each cut."""
    return np.searchsorted(np.sort(np.asarray(ranks)), np.asarray(band.cuts), side="left") / len(ranks)


def ecdf_pvalue(ranks: np.ndarray, band: ECDFBand) -> float:
    """P-value of the simultaneous test: how often a uniform ECDF strays as far as this one."""
    counts = np.round(ecdf_at(ranks, band) * band.num_draws)
    observed = _min_tail(counts, band.num_draws, np.asarray(band.points))
    below = np.searchsorted(band.null_min_tail, observed, side="right")
    return float((1 + below) / (1 + len(band.null_min_tail)))


def coverage_label(
    signed_area: float, null_sd: float, n: int, ranks: np.ndarray, band: ECDFBand, alpha: float
) -> tuple[float, float, float, str]:
    """Test a coverage curve two ways and name what is wrong with it.

    ``signed_area`` (negative: coverage below nominal) is tested with a two-sided
    normal test of sd ``null_sd / sqrt(n)``, the ranks with the simultaneous ECDF
    band; each gets ``alpha / 2``. Returns ``(area_p, ecdf_p, pvalue, label)``
    with the Bonferroni-combined ``pvalue`` and ``label`` one of
    ``overconfident`` / ``underconfident`` (area rejects), ``miscalibrated``
    (only the ECDF rejects) or ``calibrated``.
    """
    area_p = float(2 * stats.norm.sf(abs(signed_area) / (null_sd / np.sqrt(n))))
    ecdf_p = ecdf_pvalue(ranks, band)
    pvalue = min(1.0, 2 * min(area_p, ecdf_p))
    if area_p < alpha / 2:
        label = "overconfident" if signed_area < 0 else "underconfident"
    else:
        label = "miscalibrated" if ecdf_p < alpha / 2 else "calibrated"
    return area_p, ecdf_p, pvalue, label
