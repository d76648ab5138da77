"""Map bounded parameters to an unbounded, standardized space and back.

Estimators learn densities of ``z = standardize(g(theta))`` where ``g`` sends
each parameter's support to the real line: a scaled logit for an interval, a
log for a half line, the identity for the real line. Whatever the network does
in ``z``, ``g^-1`` lands inside the prior, so no posterior mass leaks out of it;
densities pick up ``log |dz/dtheta|``.

With ``bounded="truncate"`` an interval is only z-scored (``g`` is the identity
there): the logit stretches the neighbourhood of a bound to infinity and bends a
posterior's shape everywhere else, which costs accuracy (sbibm's two moons:
C2ST 0.589 with the logit, 0.528 without, 10^4 simulations). The density the
network learns then has mass outside the box; the estimator keeps only draws
inside it and renormalizes (:mod:`sbi_gen.posterior_draws`). Half lines keep the log.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sbi_gen.nn.standardize import Standardize

__all__ = ["ParameterTransform"]

_EPS = 1e-12


class ParameterTransform(nn.Module):
    """``theta [..., d] <-> z [..., d]`` through the prior support, then z-scoring.

    Arguments:
        low, high: ``[d]`` support bounds (may be infinite).
        bounded: ``"logit"`` or ``"truncate"``: how a finite interval is mapped (module docstring).
    """

    def __init__(self, low: Tensor, high: Tensor, bounded: str = "logit") -> None:
        super().__init__()
        if bounded not in ("logit", "truncate"):
            raise ValueError(f"bounded must be 'logit' or 'truncate', got {bounded!r}")
        self.bounded = bounded
        low = torch.as_tensor(low, dtype=torch.float64)
        high = torch.as_tensor(high, dtype=torch.float64)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.standardize = Standardize((low.numel(),))

    @property
    def truncates(self) -> bool:
        """Whether ``inverse`` may return values outside the support (``bounded="truncate"`` with an interval)."""
        return self.bounded == "truncate" and bool((torch.isfinite(self.low) & torch.isfinite(self.high)).any())

    @property
    def _kinds(self) -> tuple[Tensor, Tensor, Tensor]:
        lo, hi = torch.isfinite(self.low), torch.isfinite(self.high)
        interval = lo & hi if self.bounded == "logit" else torch.zeros_like(lo)  # truncate: intervals as the line
        return interval, lo & ~hi, ~lo & hi

    def _to_unbounded(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        theta = theta.to(torch.float64)
        interval, lower, upper = self._kinds
        low = torch.where(torch.isfinite(self.low), self.low, torch.zeros_like(self.low))
        high = torch.where(torch.isfinite(self.high), self.high, torch.ones_like(self.high))
        width = torch.where(interval, high - low, torch.ones_like(low))
        p = ((theta - low) / width).clamp(_EPS, 1 - _EPS)
        above = (theta - low).clamp_min(_EPS)
        below = (high - theta).clamp_min(_EPS)
        u = torch.where(interval, torch.log(p) - torch.log1p(-p), theta)
        u = torch.where(lower, torch.log(above), u)
        u = torch.where(upper, torch.log(below), u)
        log_det = torch.where(interval, -torch.log(width) - torch.log(p) - torch.log1p(-p), torch.zeros_like(u))
        log_det = torch.where(lower, -torch.log(above), log_det)
        log_det = torch.where(upper, -torch.log(below), log_det)
        return u, log_det.sum(-1)

    def _from_unbounded(self, u: Tensor) -> Tensor:
        u = u.to(torch.float64)
        interval, lower, upper = self._kinds
        low = torch.where(torch.isfinite(self.low), self.low, torch.zeros_like(self.low))
        high = torch.where(torch.isfinite(self.high), self.high, torch.ones_like(self.high))
        theta = torch.where(interval, low + (high - low) * torch.sigmoid(u), u)
        theta = torch.where(lower, low + torch.exp(u), theta)
        theta = torch.where(upper, high - torch.exp(u), theta)
        return theta

    @torch.no_grad()
    def fit(self, theta: Tensor) -> ParameterTransform:
        """Learn the z-scoring from training parameters ``[n, d]`` (inside the support)."""
        u, _ = self._to_unbounded(theta)
        self.standardize.fit(u)
        return self

    def forward(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``z`` ``[..., d]`` (float32) and ``log |dz/dtheta|`` ``[...]`` (float64)."""
        u, log_det = self._to_unbounded(theta)
        z = (u - self.standardize.mean.double()) / self.standardize.std.double()
        return z.float(), log_det - torch.log(self.standardize.std.double()).sum()

    def inverse(self, z: Tensor) -> Tensor:
        """``theta`` ``[..., d]`` (float32) from ``z``; inside the support, except for ``truncate``d intervals."""
        u = z.double() * self.standardize.std.double() + self.standardize.mean.double()
        theta = self._from_unbounded(u)
        if self.truncates:
            return theta.float()  # the caller keeps the draws inside the box
        lowf, highf = self.low.to(theta), self.high.to(theta)
        # float32 rounding of a value near a bound can land exactly on it; keep it inside
        return torch.maximum(torch.minimum(theta, highf), lowf).float()

    def extra_repr(self) -> str:
        bounds = int(torch.isfinite(self.low).sum() + torch.isfinite(self.high).sum())
        return f"d={self.low.numel()}, bounds={bounds}, intervals={self.bounded}"


