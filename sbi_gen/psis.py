"""Pareto-smoothed importance sampling's tail diagnostic ``k-hat`` (Vehtari et al. 2024, arXiv:1507.02646).

The largest importance weights are fitted by a generalized Pareto distribution
(GPD); its shape ``k`` says how heavy the weights' tail is. For ``k < 1/2``
the weights have finite variance and the central limit theorem applies; for
``1/2 <= k < 0.7`` estimates converge slowly but usably; above
``min(1 - 1 / log10(S), 0.7)`` (``S`` draws) the importance-sampling estimate,
and its quoted standard error, cannot be trusted however large the effective
sample size looks (Vehtari et al., section 3.2).

The fit follows the paper: the tail is the ``M = ceil(min(S / 5, 3 sqrt(S)))``
largest weights, their excesses over the next-largest weight are fitted by the
profile-likelihood posterior mean of Zhang and Stephens (2009,
Technometrics 51, 316), and ``k`` is shrunk towards 1/2 with the weak prior of
the paper's appendix, ``(M k + 10 * 0.5) / (M + 10)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["gpd_shape", "pareto_k_hat", "pareto_k_threshold"]


def gpd_shape(excess: Tensor) -> float:
    """Shape ``k`` of a generalized Pareto fitted to positive excesses ``[n]`` (Zhang & Stephens 2009).

    With ``t = k / sigma``, the profile maximum-likelihood shape is ``k(t) = mean(log(1 + t x))`` and
    the profile log-likelihood ``n (log(t / k(t)) - 1 - k(t))``; ``t`` is averaged over Zhang and
    Stephens' grid of ``30 + sqrt(n)`` values with weights ``exp(profile)``.
    """
    x = torch.sort(excess.to(torch.float64)).values
    n = len(x)
    if n < 5 or float(x[-1]) <= 0.0:
        return -math.inf  # no tail to speak of: every tail weight is the same
    m = 30 + int(math.sqrt(n))
    quartile = float(x[max(0, int(n / 4 + 0.5) - 1)])
    quartile = quartile if quartile > 0 else float(x[-1])
    j = torch.arange(1, m + 1, dtype=torch.float64)
    # Zhang & Stephens' grid is on b = -t; 1 + t x > 0 for every x holds on all of it
    t = -(1.0 / float(x[-1]) + (1.0 - torch.sqrt(m / (j - 0.5))) / (3.0 * quartile))
    k = torch.log1p(t[:, None] * x[None, :]).mean(1)
    profile = n * (torch.log(t / k) - 1.0 - k)
    weights = torch.softmax(torch.nan_to_num(profile, nan=-math.inf), 0)
    t_mean = float((weights * t).sum())
    return float(torch.log1p(t_mean * x).mean())


def pareto_k_hat(log_weights: Tensor) -> float:
    """PSIS ``k-hat`` of unnormalized log importance weights ``[S]`` (``-inf`` entries are zero weights).

    Returns ``nan`` when there are too few draws for a tail fit (fewer than 5 tail weights).
    """
    log_w = log_weights.to(torch.float64).flatten()
    log_w = log_w[log_w > -math.inf]
    s = len(log_w)
    tail = math.ceil(min(s / 5.0, 3.0 * math.sqrt(s)))
    if tail < 5 or s <= tail:
        return math.nan
    top = torch.topk(log_w, tail + 1).values  # descending: the tail, then the threshold
    scale = float(top[0])
    excess = torch.exp(top[:tail] - scale) - math.exp(float(top[tail]) - scale)
    k = gpd_shape(excess)
    return (tail * k + 10 * 0.5) / (tail + 10) if math.isfinite(k) else k


def pareto_k_threshold(num_draws: int) -> float:
    """The largest trustworthy ``k-hat`` for ``num_draws`` draws: ``min(1 - 1 / log10(S), 0.7)``."""
    return min(1.0 - 1.0 / math.log10(num_draws), 0.7) if num_draws > 10 else 0.0
