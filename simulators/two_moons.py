"""Two moons: a 2-D benchmark with a bimodal crescent posterior, exact likelihood and exact posterior.

Model (Greenberg, Nonnenmacher and Macke 2019, "Automatic Posterior
Transformation for Likelihood-Free Inference", ICML, the two-moons example; as
fixed by the sbibm benchmark, Lueckmann et al. 2021, "Benchmarking
Simulation-Based Inference", AISTATS, arXiv:2101.04653, supplement, task
"Two Moons", and sbibm's ``tasks/two_moons``)::

    theta ~ U(-1, 1)^2
    a ~ U(-pi/2, pi/2),   r ~ N(0.1, 0.01^2)
    p = (r cos a + 0.25, r sin a)
    x = p + g(theta),     g(theta) = (-|theta_1 + theta_2| / sqrt 2, (theta_2 - theta_1) / sqrt 2)

Likelihood. ``(a, r) -> u = p - (0.25, 0) = r (cos a, sin a)`` is one-to-one
(``r < 0`` maps to ``u_1 < 0``) with Jacobian ``|r|``, so with ``rho = |u|`` and
the signed radius ``s = sign(u_1) rho``::

    p(x | theta) = N(s; 0.1, 0.01^2) / (pi rho),     u = x - g(theta) - (0.25, 0).

(sbibm's ``_likelihood`` keeps only ``N(rho; 0.1, 0.01^2)``: it lacks the
``1 / (pi rho)`` factor, which tilts its density by about 10 % across the
crescent; its reference samples come from the simulator and are unaffected.)

Posterior (exact). ``g`` is a rotation by 45 degrees followed by folding the
first coordinate, so on each half-plane ``z_1 = (theta_1 + theta_2) / sqrt 2``
of fixed sign it is an isometry. Draw ``(a, r)``, set ``q = p - x``; a solution
needs ``q_1 >= 0``; pick the sign ``sigma`` of ``z_1`` with probability 1/2:
``z = (sigma q_1, -q_2)``, ``theta = R^T z``. The candidate then has density
``p(x | theta) / 2`` on the plane (unit Jacobian), so keeping only candidates
inside the prior box gives exact posterior draws (rejection sampling). The two
solutions are mirror images, ``(theta_1, theta_2) <-> (-theta_2, -theta_1)``,
which maps the box onto itself: both lie inside or neither does, and the two
crescents carry exactly equal mass. Candidates with ``q_1 < 0`` (possible when
``x_1 > 0.25``) have no solution and are rejected; sbibm's reference sampler
keeps them with the wrong sign, which matters for none of its ten observations.

The acceptance probability equals ``2 Z(x)`` (``Z`` the evidence, prior density
1/4) and is computed by quadrature: for fixed ``a`` and ``sigma`` every
constraint is linear in ``r``, so the accepted ``r`` form an interval of
normal probability ``Phi(hi) - Phi(lo)``; ``a`` is integrated by Gauss-Legendre.
This gives the normalized ``log_prob`` and sizes the rejection batches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import Parameter, UniformPrior
from sbi_gen.simulator import Simulator

__all__ = ["TwoMoons", "TwoMoonsPosterior"]

RADIUS_MEAN, RADIUS_STD, OFFSET = 0.1, 0.01, 0.25
_SQRT_HALF = math.sqrt(0.5)


def _shift(theta: Tensor) -> Tensor:
    """``g(theta)`` ``[..., 2]`` of ``theta [..., 2]`` (float64)."""
    theta = theta.to(torch.float64)
    t1, t2 = theta[..., 0], theta[..., 1]
    return torch.stack([-(t1 + t2).abs() * _SQRT_HALF, (t2 - t1) * _SQRT_HALF], -1)


def _check(theta: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``theta [..., B, 2]`` and ``x [B, 2]`` as float64, or a :class:`DataError` naming the shape."""
    theta, x = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[-1] != 2:
        raise DataError(f"two_moons: x must be [B, 2], got shape {list(x.shape)}")
    if theta.ndim < 2 or theta.shape[-1] != 2 or theta.shape[-2] not in (1, x.shape[0]):
        raise DataError(f"two_moons: theta must be [..., B, 2] with B = {x.shape[0]}, got shape {list(theta.shape)}")
    return theta, x


class TwoMoons(Simulator):
    """The two-moons benchmark (module docstring): ``theta [2]`` in ``[-1, 1]^2``, ``x [2]``."""

    def __init__(self) -> None:
        self.options = {}
        self.prior = UniformPrior([-1.0, -1.0], [1.0, 1.0],
                                  [Parameter("theta_1", "", r"$\theta_1$"), Parameter("theta_2", "", r"$\theta_2$")])
        self.x_shape = (2,)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        theta = torch.as_tensor(theta)
        if theta.ndim != 2 or theta.shape[1] != 2:
            raise DataError(f"two_moons: theta must be [n, 2], got shape {list(theta.shape)}")
        n = theta.shape[0]
        angle = math.pi * (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5)
        radius = RADIUS_MEAN + RADIUS_STD * torch.randn(n, generator=generator, dtype=torch.float64)
        p = torch.stack([radius * torch.cos(angle) + OFFSET, radius * torch.sin(angle)], -1)
        return (p + _shift(theta)).float()

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        theta, x = _check(theta, x)
        u = x - _shift(theta)
        u1, u2 = u[..., 0] - OFFSET, u[..., 1]
        rho = torch.hypot(u1, u2)
        signed = torch.where(u1 >= 0, rho, -rho)
        log_normal = -0.5 * ((signed - RADIUS_MEAN) / RADIUS_STD) ** 2 - math.log(RADIUS_STD * math.sqrt(2 * math.pi))
        return log_normal - math.log(math.pi) - torch.log(rho)

    def reference_posterior(self, x: Tensor, **options: Any) -> TwoMoonsPosterior:
        """Exact posterior for ``x [B, 2]`` (rejection sampling of the inverted simulator); ``options`` go to
        :class:`TwoMoonsPosterior`."""
        return TwoMoonsPosterior(self, x, **options)


class TwoMoonsPosterior:
    """Exact two-moons posterior for ``B`` observations ``x [B, 2]``.

    ``sample(n, generator)`` returns i.i.d. draws ``[n, B, 2]`` (float32);
    ``log_prob(theta [..., B, 2])`` the normalized log density ``[..., B]`` (float64);
    ``acceptance`` ``[B]`` is the rejection sampler's acceptance probability (``2 Z(x)``).

    Arguments:
        min_acceptance: raise if an observation accepts less often (it is then
            all but impossible under the prior, and sampling would crawl).
        quadrature_nodes: nodes of the composite Gauss-Legendre rule in the angle (16 per panel).
    """

    def __init__(self, simulator: TwoMoons, x: Tensor, min_acceptance: float = 1e-6,
                 quadrature_nodes: int = 4096) -> None:
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise DataError(f"two_moons: x must be [B, 2], got shape {list(x.shape)}")
        self.simulator, self.x = simulator, x
        self.acceptance = _acceptance(x, quadrature_nodes)
        worst = int(self.acceptance.argmin())
        if float(self.acceptance[worst]) < min_acceptance:
            raise DataError(f"two_moons: observation {worst}, x = {x[worst].tolist()}, is (almost) impossible under "
                            f"the prior: the rejection sampler would accept {float(self.acceptance[worst]):.3g} "
                            f"< min_acceptance = {min_acceptance:g} of its candidates")
        self.log_evidence = torch.log(self.acceptance / 2)

    def log_prob(self, theta: Tensor) -> Tensor:
        theta, x = _check(theta, self.x)
        log_p = self.simulator.log_likelihood(theta, x) + self.simulator.prior.log_prob(theta)
        return log_p - self.log_evidence

    def _candidates(self, m: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """``m`` candidates per observation ``[m, B, 2]`` and whether each is accepted ``[m, B]``."""
        b = self.x.shape[0]
        angle = math.pi * (torch.rand(m, b, generator=generator, dtype=torch.float64) - 0.5)
        radius = RADIUS_MEAN + RADIUS_STD * torch.randn(m, b, generator=generator, dtype=torch.float64)
        sign = torch.where(torch.rand(m, b, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
        q1 = radius * torch.cos(angle) + OFFSET - self.x[:, 0]
        z1, z2 = sign * q1, self.x[:, 1] - radius * torch.sin(angle)
        theta = torch.stack([z1 - z2, z1 + z2], -1) * _SQRT_HALF
        accepted = (q1 >= 0) & (theta.abs() <= 1).all(-1)
        return theta, accepted

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        b = self.x.shape[0]
        out = torch.empty(n, b, 2, dtype=torch.float64)
        filled = torch.zeros(b, dtype=torch.long)
        while bool((filled < n).any()):
            missing = (n - filled).clamp_min(0)
            # expected draws for the neediest observation, with margin; bounded to cap memory
            m = int(((missing / self.acceptance).max() * 1.1 + 100).clamp(max=2_000_000 // b + 100))
            theta, accepted = self._candidates(m, generator)
            for j in range(b):
                kept = theta[accepted[:, j], j][: int(missing[j])]
                out[filled[j] : filled[j] + len(kept), j] = kept
                filled[j] += len(kept)
        return out.float()


def _acceptance(x: Tensor, nodes: int) -> Tensor:
    """``P(candidate accepted)`` ``[B]`` for ``x [B, 2]`` by quadrature over the angle (module docstring)."""
    # composite Gauss-Legendre: ``panels`` equal panels of 16 nodes on [-1, 1], mapped to a = pi t / 2
    panels = max(1, nodes // 16)
    points, weights = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(-1.0, 1.0, panels + 1)
    half = 0.5 * (edges[1:] - edges[:-1])
    points = ((edges[:-1] + half)[:, None] + half[:, None] * points).reshape(-1)
    weights = (half[:, None] * weights).reshape(-1)
    angle = 0.5 * math.pi * points[:, None, None]  # [K, 1, 1]
    x1, x2 = x[:, 0].numpy()[None, :, None], x[:, 1].numpy()[None, :, None]  # [1, B, 1]
    sign = np.array([1.0, -1.0])[None, None, :]  # [1, 1, 2]
    cos, sin = np.cos(angle), np.sin(angle)
    # constraints alpha + beta r >= 0: q1 >= 0 and |theta_i| <= 1, theta = (z1 -/+ z2) / sqrt 2 with
    # z1 = sign (OFFSET - x1 + r cos), z2 = x2 - r sin
    z1_a, z1_b = sign * (OFFSET - x1), sign * cos
    z2_a, z2_b = x2 + 0 * sign, -sin + 0 * sign
    rows = [(OFFSET - x1 + 0 * sign, cos + 0 * sign)]
    for t_a, t_b in ((z1_a - z2_a, z1_b - z2_b), (z1_a + z2_a, z1_b + z2_b)):
        rows += [(1 + t_a * _SQRT_HALF, t_b * _SQRT_HALF), (1 - t_a * _SQRT_HALF, -t_b * _SQRT_HALF)]
    low = np.full(np.broadcast_shapes(angle.shape, x1.shape, sign.shape), -np.inf)
    high = np.full_like(low, np.inf)
    for alpha, beta in rows:
        alpha, beta = np.broadcast_to(alpha, low.shape), np.broadcast_to(beta, low.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -alpha / beta
        low = np.where(beta > 0, np.maximum(low, bound), low)
        high = np.where(beta < 0, np.minimum(high, bound), high)
        low = np.where((beta == 0) & (alpha < 0), np.inf, low)  # constraint violated for every r
    mass = np.clip(ndtr((high - RADIUS_MEAN) / RADIUS_STD) - ndtr((low - RADIUS_MEAN) / RADIUS_STD), 0, None)
    # average over sign (1/2) and angle (density 1/pi on an interval of length pi: weights / 2)
    return torch.as_tensor((weights[:, None] * mass.mean(-1)).sum(0) / 2)


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(
            "two_moons",
            "sbibm two moons: 2-D bimodal crescent posterior; exact likelihood and exact reference posterior",
            TwoMoons,
        )
    ]
