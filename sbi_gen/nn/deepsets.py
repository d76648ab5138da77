"""Permutation-invariant embedding of a set of i.i.d. elements (Deep Sets)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sbi_gen.nn.embedding import DEFAULT_EMBEDDING_FEATURES

__all__ = ["DeepSetsEmbedding"]

POOLINGS = ("mean", "sum", "max", "mean_max")


def _mlp(in_features: int, hidden_features: int, out_features: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    features = in_features
    for _ in range(num_layers):
        layers += [nn.Linear(features, hidden_features), nn.GELU()]
        features = hidden_features
    layers.append(nn.Linear(features, out_features))
    return nn.Sequential(*layers)


class DeepSetsEmbedding(nn.Module):
    """``rho(pool_i phi(x_i))``: one network ``phi`` per element, a symmetric pooling, then ``rho``.

    Observations are sets ``x [B, N, *element_shape]`` whose ``N`` elements are
    exchangeable (e.g. i.i.d. trials, conformations); any permutation of the
    set leaves the output unchanged, and with ``"mean"`` pooling the same net
    takes sets of any size ``N`` (Zaheer et al. 2017, "Deep Sets", NeurIPS,
    arXiv:1703.06114).

    Arguments:
        x_shape: shape of one observation, ``(N, *element_shape)``.
        output_features: size of the summary.
        hidden_features: width of the hidden layers of ``phi`` and ``rho``.
        latent_features: size of each element's embedding (default ``hidden_features``).
        num_layers: hidden layers of ``phi`` (``rho`` has one fewer, at least one).
        pooling: ``"mean"`` (default), ``"sum"``, ``"max"`` or ``"mean_max"`` (both, concatenated).

    Example:
        >>> net = DeepSetsEmbedding((20, 8, 3), 16)
        >>> x = torch.randn(4, 20, 8, 3)
        >>> torch.allclose(net(x), net(x[:, torch.randperm(20)]), atol=1e-5)
        True
    """

    def __init__(
        self,
        x_shape: tuple[int, ...],
        output_features: int = DEFAULT_EMBEDDING_FEATURES,
        hidden_features: int = 64,
        latent_features: int | None = None,
        num_layers: int = 2,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if len(x_shape) < 2:
            raise ValueError(f"deepsets needs x_shape (N, *element_shape) with a set axis, got {tuple(x_shape)}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.element_shape = tuple(x_shape[1:])
        self.pooling = pooling
        latent = latent_features or hidden_features
        self.phi = _mlp(math.prod(self.element_shape), hidden_features, latent, num_layers)
        pooled = 2 * latent if pooling == "mean_max" else latent
        self.rho = _mlp(pooled, hidden_features, output_features, max(1, num_layers - 1))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[2:]) != self.element_shape:
            raise ValueError(
                f"deepsets expects x [B, N, {', '.join(map(str, self.element_shape))}], got {list(x.shape)}"
            )
        h = self.phi(x.flatten(2))  # [B, N, latent]
        if self.pooling == "mean":
            pooled = h.mean(1)
        elif self.pooling == "sum":
            pooled = h.sum(1)
        elif self.pooling == "max":
            pooled = h.amax(1)
        else:
            pooled = torch.cat([h.mean(1), h.amax(1)], -1)
        return self.rho(pooled)
