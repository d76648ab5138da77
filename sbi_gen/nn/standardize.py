"""Z-scoring learned from training data, stored as buffers so it is saved with the model."""

from __future__ import annotations

import math

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
    def fit(self, data: Tensor, min_std: float = 1e-6, pooled_axes: tuple[int, ...] = ()) -> Standardize:
        """Set mean and std from ``data`` ``[n, *shape]``; near-constant features keep std 1.

        ``pooled_axes`` (axes of one sample, e.g. ``(0,)`` for the set axis of
        ``[N, *element]`` observations) share one mean and std, so that
        permuting along them commutes with the standardization.
        """
        data = data.to(torch.float64)
        dims = (0, *(axis + 1 for axis in pooled_axes))
        count = math.prod(data.shape[d] for d in dims)
        mean = data.mean(dims, keepdim=True)
        variance = ((data - mean) ** 2).sum(dims, keepdim=True) / max(1, count - 1)
        mean, std = mean[0].expand(self.mean.shape), variance[0].sqrt().expand(self.std.shape)
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
