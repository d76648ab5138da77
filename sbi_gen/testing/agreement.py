"""The reference density of the sample / log_prob agreement check: a Gaussian in logit coordinates of the prior box.

:class:`LogitGaussian` maps each bounded dimension of ``theta`` to the real line with
``z = logit((theta - low) / (high - low))`` (unbounded dimensions stay as they are), fits one
Gaussian per observation to draws in ``z``, and is that Gaussian pushed back: its samples lie
strictly inside the box and its density carries the Jacobian of the map. Any such ``r`` makes
the check valid; one close to the posterior makes it sensitive (see
:func:`sbi_gen.testing.check_estimator`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_gen.prior import Prior

__all__ = ["LogitGaussian", "mixture_weights"]


class LogitGaussian:
    """Per observation, a Gaussian fitted to ``draws [N, B, d]`` in logit coordinates of ``prior``'s box."""

    def __init__(self, prior: Prior, draws: Tensor) -> None:
        low, high = prior.low.to(torch.float64), prior.high.to(torch.float64)
        self.bounded = torch.isfinite(low) & torch.isfinite(high)
        self.low = torch.where(self.bounded, low, torch.zeros_like(low))
        self.width = torch.where(self.bounded, high - low, torch.ones_like(high))
        # only the fit clamps (1e-6 keeps z finite for draws on a bound); the density below is exact
        z, _, _ = self._to_z(draws.to(torch.float64), clamp=1e-6)
        mean = z.mean(0)  # [B, d]
        centred = z - mean
        covariance = torch.einsum("nbi,nbj->bij", centred, centred) / max(1, len(z) - 1)
        # a ridge of 1e-6 (z is of order one) keeps the Cholesky factor defined for degenerate draws
        covariance = covariance + 1e-6 * torch.eye(z.shape[-1], dtype=torch.float64)
        self.normal = torch.distributions.MultivariateNormal(mean, covariance_matrix=covariance)

    def _to_z(self, theta: Tensor, clamp: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """``z [..., d]``, the place in the box ``[..., d]`` (0.5 off it), whether ``theta`` is strictly inside."""
        unit = (theta - self.low) / self.width
        interior = ((unit > 0) & (unit < 1)) | ~self.bounded
        if clamp:
            unit = unit.clamp(clamp, 1 - clamp)
        safe = torch.where(interior, unit, torch.full_like(unit, 0.5))
        z = torch.where(self.bounded, torch.log(safe) - torch.log1p(-safe), theta)
        return z, safe, interior.all(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, d]`` float32 draws."""
        mean, scale = self.normal.loc, self.normal.scale_tril
        noise = torch.randn(n, *mean.shape, generator=generator, dtype=torch.float64)
        z = mean + torch.einsum("bij,nbj->nbi", scale, noise)
        return torch.where(self.bounded, self.low + self.width * torch.sigmoid(z), z).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density ``[..., B]`` of ``theta [..., B, d]`` (float64); ``-inf`` on and outside the box's faces."""
        theta = theta.to(torch.float64)
        z, unit, interior = self._to_z(theta)
        # |d theta / d z| = width * u (1 - u) per bounded dimension
        log_jacobian = torch.where(self.bounded, torch.log(self.width) + torch.log(unit) + torch.log1p(-unit),
                                   torch.zeros_like(z)).sum(-1)
        value = self.normal.log_prob(z) - log_jacobian
        return torch.where(interior, value, torch.full_like(value, -math.inf))


def mixture_weights(log_q: Tensor, log_r: Tensor) -> Tensor:
    """Mean over the first axis of ``w = 2 q / (q + r) = 2 sigmoid(log q - log r)`` in ``[0, 2]``: ``[B]``.

    A point where both densities vanish (``-inf`` twice) cannot occur for draws of either density;
    it counts as 1 (the expectation) if it does. A NaN in ``log_q`` stays NaN and fails the check.
    """
    log_q, log_r = log_q.to(torch.float64), log_r.to(torch.float64)
    weights = 2 * torch.sigmoid(log_q - log_r)
    neither = (log_q == -math.inf) & (log_r == -math.inf)
    return torch.where(neither, torch.ones_like(weights), weights).mean(0)
