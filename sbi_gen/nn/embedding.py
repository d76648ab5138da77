"""Embedding nets: summaries ``[B, features]`` of observations ``[B, *x_shape]``."""

from __future__ import annotations

import math

from torch import Tensor, nn

__all__ = ["DEFAULT_EMBEDDING_FEATURES", "MLPEmbedding"]

#: summary size of the learned embeddings when ``embedding_features`` is not given
DEFAULT_EMBEDDING_FEATURES = 32


class MLPEmbedding(nn.Module):
    """Flatten ``x`` and apply a multilayer perceptron.

    Arguments:
        x_shape: shape of one observation.
        output_features: size of the summary.
        hidden_features: width of the hidden layers.
        num_layers: number of hidden layers.
    """

    def __init__(
        self, x_shape: tuple[int, ...], output_features: int = DEFAULT_EMBEDDING_FEATURES, hidden_features: int = 64,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        features = math.prod(x_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(num_layers):
            layers += [nn.Linear(features, hidden_features), nn.GELU()]
            features = hidden_features
        layers.append(nn.Linear(features, output_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
