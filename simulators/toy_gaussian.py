"""Toy linear-Gaussian simulator with an exact conjugate posterior.

Model (``d`` parameters, ``m`` data dimensions)::

    theta ~ N(0, prior_scale^2 I_d)
    x = A theta + b + eps,        eps ~ N(0, noise_scale^2 I_m)

``A`` (``[m, d]``) and ``b`` (``[m]``) are drawn once from ``matrix_seed``:
``A = I + 0.3 G / sqrt(d)`` with ``G`` standard normal (the identity padded or
cut when ``m != d``), ``b ~ N(0, 0.1^2)``. The posterior is Gaussian with
covariance ``S = (I / prior_scale^2 + A^T A / noise_scale^2)^-1`` and mean
``S A^T (x - b) / noise_scale^2`` (e.g. Bishop 2006, "Pattern Recognition and
Machine Learning", eq. 2.116-2.117).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import GaussianPrior
from sbi_gen.reference import GaussianPosterior
from sbi_gen.simulator import Simulator

__all__ = ["ToyGaussian"]


class ToyGaussian(Simulator):
    """Linear-Gaussian model with an analytic posterior.

    Arguments:
        dim: number of parameters ``d``.
        x_dim: number of data dimensions ``m`` (defaults to ``d``).
        noise_scale: standard deviation of the observation noise.
        prior_scale: standard deviation of the prior.
        matrix_seed: seed of ``A`` and ``b``.
    """

    def __init__(
        self, dim: int = 5, x_dim: int | None = None, noise_scale: float = 0.5, prior_scale: float = 1.0,
        matrix_seed: int = 0,
    ) -> None:
        if dim < 1 or (x_dim is not None and x_dim < 1):
            raise ValueError(f"dim and x_dim must be positive, got dim={dim}, x_dim={x_dim}")
        if noise_scale <= 0 or prior_scale <= 0:
            raise ValueError("noise_scale and prior_scale must be positive")
        x_dim = dim if x_dim is None else x_dim
        self.options = {"dim": dim, "x_dim": x_dim, "noise_scale": noise_scale, "prior_scale": prior_scale,
                        "matrix_seed": matrix_seed}
        self.noise_scale, self.prior_scale = float(noise_scale), float(prior_scale)
        self.prior = GaussianPrior(torch.zeros(dim), torch.full((dim,), prior_scale**2))
        self.x_shape = (x_dim,)
        generator = torch.Generator().manual_seed(matrix_seed)
        mixing = torch.randn(x_dim, dim, generator=generator, dtype=torch.float64)
        self.matrix = torch.eye(x_dim, dim, dtype=torch.float64) + 0.3 * mixing / math.sqrt(dim)
        self.offset = 0.1 * torch.randn(x_dim, generator=generator, dtype=torch.float64)
        precision = torch.eye(dim, dtype=torch.float64) / prior_scale**2 + self.matrix.T @ self.matrix / noise_scale**2
        self.posterior_covariance = torch.linalg.inv(precision)
        self.posterior_covariance = 0.5 * (self.posterior_covariance + self.posterior_covariance.T)

    def _mean_x(self, theta: Tensor) -> Tensor:
        return theta.to(torch.float64) @ self.matrix.T + self.offset

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(theta.shape[0], self.x_shape[0], generator=generator, dtype=torch.float64)
        return (self._mean_x(theta) + self.noise_scale * noise).float()

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        residual = (x.to(torch.float64) - self._mean_x(theta)) / self.noise_scale
        m = self.x_shape[0]
        return -0.5 * (residual**2).sum(-1) - m * math.log(self.noise_scale) - 0.5 * m * math.log(2 * math.pi)

    def log_evidence(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` ``[B]``: ``x ~ N(b, prior_scale^2 A A^T + noise_scale^2 I)``."""
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, self.x_shape[0])
        covariance = self.prior_scale**2 * self.matrix @ self.matrix.T
        covariance = covariance + self.noise_scale**2 * torch.eye(self.x_shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.offset, covariance).log_prob(x)

    def reference_posterior(self, x: Tensor) -> GaussianPosterior:
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, self.x_shape[0])
        mean = (x - self.offset) @ self.matrix @ self.posterior_covariance.T / self.noise_scale**2
        return GaussianPosterior(mean, self.posterior_covariance)


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(
            "toy_gaussian",
            "linear-Gaussian model x = A theta + b + noise with an analytic posterior (d = 5 by default)",
            ToyGaussian,
        )
    ]
