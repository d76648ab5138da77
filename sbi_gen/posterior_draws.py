"""Checks and truncation of an estimator's posterior draws: finite, and inside the prior's box.

:func:`require_finite` refuses draws holding NaN or inf (a broken model).

An estimator with ``bounded_support="truncate"`` learns a density ``q(theta | x)``
on the whole line for parameters with a finite interval (no logit, see
:mod:`sbi_gen.nn.support`). Its posterior is ``q`` restricted to the prior's
support ``S`` and renormalized::

    q_S(theta | x) = q(theta | x) 1[theta in S] / a(x),    a(x) = P_q(theta in S | x).

Draws come from rejection (draw, keep those inside, draw again for the rest), the
acceptance ``a(x)`` from the fraction inside of :data:`ACCEPTANCE_DRAWS` draws per
observation, made with a fixed seed so that ``log_prob`` is a deterministic function
of its inputs. Its Monte Carlo error, ``sqrt((1 - a) / (a M))`` in ``log a``, is
0.016 nats at ``a = 1/2`` and ``M = 4096``; sbi corrects its NPE densities for the
same "leakage" the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sbi_gen.errors import UntrustworthyResultError
from sbi_gen.prior import Prior

__all__ = ["draw_inside", "log_acceptance", "require_finite", "ACCEPTANCE_DRAWS", "MIN_ACCEPTANCE"]

#: draws per observation behind each acceptance estimate
ACCEPTANCE_DRAWS = 4096
#: below this acceptance an observation's posterior lies (almost) outside the prior: an error, not a crawl
MIN_ACCEPTANCE = 1e-3
#: at most this many raw draws (all observations together) are held at once
_MAX_BATCH = 4_000_000


def _outside_error(acceptance: Tensor) -> UntrustworthyResultError:
    worst = int(acceptance.argmin())
    return UntrustworthyResultError(
        f"observation {worst}: only {float(acceptance[worst]):.2g} of the estimator's posterior draws lie inside "
        f"the prior (need {MIN_ACCEPTANCE:g}): the observation is outside what the model was trained on, or the "
        "model is broken"
    )


def draw_inside(draw: Callable[[int], Tensor], prior: Prior, n: int, num_observations: int) -> Tensor:
    """``[n, B, d]`` draws inside the prior's support, from ``draw(m) -> [m, B, d]`` raw draws (CPU).

    Each observation keeps its first ``n`` draws inside, in the order drawn. Raises
    :class:`UntrustworthyResultError` when an observation accepts less than :data:`MIN_ACCEPTANCE`.
    """
    out = torch.empty(n, num_observations, prior.dim)
    filled = torch.zeros(num_observations, dtype=torch.long)
    drawn, accepted = 0, torch.zeros(num_observations)
    m = max(1, min(n, _MAX_BATCH // max(1, num_observations)))
    while bool((filled < n).any()):
        theta = draw(m)
        require_finite(theta)  # a NaN would fail the support test and be dropped unseen
        inside = prior.contains(theta.double())  # [m, B]
        rank = filled + torch.cumsum(inside, 0) - 1  # where each accepted draw goes
        keep = inside & (rank < n)
        rows, columns = keep.nonzero(as_tuple=True)
        out[rank[rows, columns], columns] = theta[rows, columns].float()
        filled = torch.minimum(filled + inside.sum(0), torch.tensor(n))
        drawn += m
        accepted += inside.sum(0)
        acceptance = accepted / drawn
        if drawn >= 1000 and bool((acceptance < MIN_ACCEPTANCE).any()):
            raise _outside_error(acceptance)
        missing = (n - filled).clamp_min(0)
        need = float((missing / acceptance.clamp_min(MIN_ACCEPTANCE)).max())
        m = max(1, min(int(1.2 * need) + 16, _MAX_BATCH // max(1, num_observations)))
    return out


def log_acceptance(draw: Callable[[int, torch.Generator], Tensor], prior: Prior) -> Tensor:
    """``log a(x)`` ``[B]`` (float64) from :data:`ACCEPTANCE_DRAWS` draws ``draw(m, generator) -> [m, B, d]``.

    The draws use a generator seeded with 0, so the estimate is the same on every call.
    """
    generator = torch.Generator().manual_seed(0)
    theta = draw(ACCEPTANCE_DRAWS, generator)
    acceptance = prior.contains(theta.double()).double().mean(0)
    if bool((acceptance < MIN_ACCEPTANCE).any()):
        raise _outside_error(acceptance)
    return torch.log(acceptance)


def require_finite(theta: Tensor) -> None:
    """Raise :class:`UntrustworthyResultError` if any draw ``[n, B, d]`` holds NaN or inf."""
    bad = ~torch.isfinite(theta).all(-1)
    if bool(bad.any()):
        rows = bad.any(0).nonzero().flatten().tolist()
        raise UntrustworthyResultError(
            f"{int(bad.sum())} of {bad.numel()} posterior samples hold NaN or inf (observations {rows[:10]}): "
            "the model is broken (diverged training or damaged weights); retrain it"
        )
