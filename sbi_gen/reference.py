"""Reference posteriors with known samples and densities (ground truth for calibration)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GaussianPosterior"]


class GaussianPosterior:
    """Independent Gaussians ``N(mean_b, covariance)`` for ``B`` observations.

    Arguments:
        mean: ``[B, d]`` posterior means.
        covariance: ``[d, d]`` shared, or ``[B, d, d]`` per observation.

    ``sample(n, generator)`` returns ``[n, B, d]`` (float32);
    ``log_prob(theta [..., B, d])`` returns ``[..., B]`` (float64).
    """

    def __init__(self, mean: Tensor, covariance: Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        covariance = torch.as_tensor(covariance, dtype=torch.float64)
        if covariance.ndim == 2:
            covariance = covariance.expand(self.mean.shape[0], -1, -1)
        self.covariance = covariance
        self.scale_tril = torch.linalg.cholesky(covariance)
        self._distribution = torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(n, *self.mean.shape, generator=generator, dtype=torch.float64)
        return (self.mean + torch.einsum("bij,nbj->nbi", self.scale_tril, noise)).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        return self._distribution.log_prob(torch.as_tensor(theta, dtype=torch.float64))

    def scaled(self, covariance_factor: float = 1.0, mean_shift: Tensor | float = 0.0) -> GaussianPosterior:
        """A miscalibrated copy: covariance times ``covariance_factor``, mean plus ``mean_shift``."""
        return GaussianPosterior(self.mean + mean_shift, self.covariance * covariance_factor)
