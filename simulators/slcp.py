"""SLCP: a simple likelihood with a complex, four-mode posterior, with an exact likelihood.

Model (Papamakarios, Sterratt and Murray 2019, "Sequential Neural Likelihood:
Fast Likelihood-free Inference with Autoregressive Flows", AISTATS, experiment
"simple likelihood, complex posterior"; as fixed by the sbibm benchmark,
Lueckmann et al. 2021, "Benchmarking Simulation-Based Inference", AISTATS,
arXiv:2101.04653, supplement, task "SLCP", and sbibm's ``tasks/slcp``)::

    theta ~ U(-3, 3)^5
    m = (theta_1, theta_2),  s_1 = theta_3^2,  s_2 = theta_4^2,  rho = tanh(theta_5)
    S = [[s_1^2 + eps, rho s_1 s_2], [rho s_1 s_2, s_2^2 + eps]]
    x_k ~ N(m, S) i.i.d.,  k = 1..4

``eps = 1e-6`` is sbibm's jitter (``jitter`` option; 0 gives the paper's model).
``x`` is flattened to ``[8] = (x_11, x_12, x_21, ...)`` as in sbibm, or kept as a
set ``[4, 2]`` with ``as_set=True`` (for a permutation-invariant embedding).

Likelihood: ``sum_k log N(x_k; m, S)`` in closed form, with
``det S = s_1^2 s_2^2 / cosh^2(theta_5) + eps (s_1^2 + s_2^2) + eps^2`` (no cancellation).

Reference posterior: the posterior is invariant under flipping the sign of
``theta_3`` or ``theta_4`` (four mirror-image modes); the mean ``(theta_1,
theta_2)`` is integrated out analytically and the folded 3-D marginal is
sampled by MCMC; see :mod:`sbi_gen_simulators.slcp_reference`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import Parameter, UniformPrior
from sbi_gen.simulator import Simulator
from sbi_gen_simulators.slcp_reference import SLCPPosterior, covariance

__all__ = ["SLCP"]

_PARAMETERS = tuple(Parameter(f"theta_{i}", "", rf"$\theta_{i}$") for i in range(1, 6))


class SLCP(Simulator):
    """SLCP (module docstring): ``theta [5]`` in ``[-3, 3]^5``, ``x [8]`` (or ``[4, 2]`` with ``as_set``).

    Arguments:
        num_draws: i.i.d. 2-D draws per simulation (4 in the benchmark).
        as_set: ``x_shape = (num_draws, 2)`` instead of the flattened ``(2 num_draws,)``.
        jitter: added to both variances (sbibm: 1e-6; the paper: 0).
    """

    def __init__(self, num_draws: int = 4, as_set: bool = False, jitter: float = 1e-6) -> None:
        if num_draws < 1:
            raise ValueError(f"num_draws must be positive, got {num_draws}")
        if jitter < 0:
            raise ValueError(f"jitter must be non-negative, got {jitter}")
        self.options = {"num_draws": num_draws, "as_set": as_set, "jitter": jitter}
        self.num_draws, self.jitter = int(num_draws), float(jitter)
        self.prior = UniformPrior([-3.0] * 5, [3.0] * 5, _PARAMETERS)
        self.x_shape = (self.num_draws, 2) if as_set else (2 * self.num_draws,)

    def _moments(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Mean ``[..., 2]``, then ``v_1, v_2, c, det S`` ``[...]`` of ``theta [..., 5]`` (float64)."""
        theta = theta.to(torch.float64)
        return theta[..., :2], *covariance(theta[..., 2], theta[..., 3], theta[..., 4], self.jitter)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        theta = torch.as_tensor(theta)
        if theta.ndim != 2 or theta.shape[1] != 5:
            raise DataError(f"slcp: theta must be [n, 5], got shape {list(theta.shape)}")
        mean, v1, v2, c, det = self._moments(theta)
        l11 = torch.sqrt(v1)  # Cholesky factor of S; l22 from det S, without cancellation
        l21 = torch.where(v1 > 0, c / l11, torch.zeros_like(c))
        l22 = torch.where(v1 > 0, torch.sqrt(det / v1), torch.sqrt(v2))
        noise = torch.randn(theta.shape[0], self.num_draws, 2, generator=generator, dtype=torch.float64)
        x1 = mean[:, None, 0] + l11[:, None] * noise[..., 0]
        x2 = mean[:, None, 1] + l21[:, None] * noise[..., 0] + l22[:, None] * noise[..., 1]
        return torch.stack([x1, x2], -1).reshape(theta.shape[0], *self.x_shape).float()

    def _draws(self, x: Tensor) -> Tensor:
        """Observations ``[B, *x_shape]`` as draws ``[B, num_draws, 2]`` (float64)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 1 + len(self.x_shape) or tuple(x.shape[1:]) != self.x_shape:
            raise DataError(f"slcp: x must be [B, {', '.join(map(str, self.x_shape))}], got shape {list(x.shape)}")
        return x.reshape(x.shape[0], self.num_draws, 2)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        draws = self._draws(x)
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.ndim < 2 or theta.shape[-1] != 5 or theta.shape[-2] not in (1, draws.shape[0]):
            raise DataError(f"slcp: theta must be [..., B, 5] with B = {draws.shape[0]}, "
                            f"got shape {list(theta.shape)}")
        mean, v1, v2, c, det = (value[..., None] for value in self._moments(theta))
        d1, d2 = draws[..., 0] - mean[..., 0, :], draws[..., 1] - mean[..., 1, :]  # [..., B, K]
        quadratic = ((v2 * d1**2 - 2 * c * d1 * d2 + v1 * d2**2) / det).sum(-1)
        log_det = torch.log(det[..., 0])
        return -0.5 * quadratic - 0.5 * self.num_draws * log_det - self.num_draws * math.log(2 * math.pi)

    def reference_posterior(self, x: Tensor, **options: Any) -> SLCPPosterior:
        """Posterior for ``x [B, *x_shape]`` (:class:`~sbi_gen_simulators.slcp_reference.SLCPPosterior`).

        ``options``: ``quadrature_nodes``, ``max_rounds``, and for the sampler
        (:class:`~sbi_gen.reference.MCMCPosterior`) ``chains``,
        ``thin``, ``warmup``, ``init_draws``, ...
        """
        return SLCPPosterior(self, x, **options)


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(
            "slcp",
            "sbibm SLCP: 4 Gaussian draws, 5 parameters, four-mode posterior; exact likelihood, MCMC reference",
            SLCP,
        )
    ]
