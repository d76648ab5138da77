"""Z-scoring learned from training data, stored as buffers so it is saved with the model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Standardize"]


class Standardize(nn.Module):
    """``(v - mean) / std`` per feature; features are the trailing ``shape`` dims.

    Arguments:
        shape: shape of one sample, e.g. ``(d,)`` or ``x_shape``.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, data: Tensor, min_std: float = 1e-6) -> Standardize:
        """Set mean and std from ``data`` ``[n, *shape]``; near-constant features keep std 1."""
        data = data.to(torch.float64)
        mean, std = data.mean(0), data.std(0)
        std = torch.where(std < min_std, torch.ones_like(std), std)
        self.mean.copy_(mean)
        self.std.copy_(std)
        return self

    def forward(self, value: Tensor) -> Tensor:
        return (value - self.mean) / self.std

    def inverse(self, value: Tensor) -> Tensor:
        return value * self.std + self.mean

    def log_abs_det(self) -> Tensor:
        """``log |d forward / d value|`` summed over features (a scalar)."""
        return -torch.log(self.std).sum()
