"""Built-in embedding nets: ``mlp`` (default), ``identity`` (for small, informative x),
``deepsets`` (permutation-invariant, for sets of i.i.d. elements ``x [N, *element_shape]``) and
``gw_svd`` (whitened strain projected on an SVD basis of the simulator's waveforms, then a residual
MLP; :mod:`sbi_gen_plugins.svd_embedding`)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from sbi_gen.hookspecs import EmbeddingCapabilities, EmbeddingSpec, hookimpl
from sbi_gen.nn import DeepSetsEmbedding, MLPEmbedding
from sbi_gen_plugins.svd_embedding import gw_svd_embedding

__all__ = ["IdentityEmbedding"]


class IdentityEmbedding(nn.Module):
    """Flatten ``x``; ``output_features``, if given, must equal the number of entries of ``x``."""

    def __init__(self, x_shape: tuple[int, ...], output_features: int | None = None) -> None:
        super().__init__()
        size = math.prod(x_shape)
        if output_features not in (None, size):
            raise ValueError(f"identity embedding keeps all {size} entries of x, not {output_features}")
        self.flatten = nn.Flatten()

    def forward(self, x: Tensor) -> Tensor:
        return self.flatten(x)


@hookimpl
def sbi_gen_embeddings() -> list[EmbeddingSpec]:
    return [
        EmbeddingSpec("mlp", "multilayer perceptron on flattened x (hidden_features, num_layers)", MLPEmbedding),
        EmbeddingSpec("identity", "flattened x, unchanged (for low-dimensional summaries)", IdentityEmbedding),
        EmbeddingSpec(
            "deepsets",
            "permutation-invariant set embedding rho(pool phi(x_i)) for x [N, *element] (pooling, hidden_features)",
            DeepSetsEmbedding,
            # estimators standardize x with one mean / std along this axis, so the whole
            # pipeline (not only the embedding) is invariant to permutations of the set
            EmbeddingCapabilities(set_axis=0),
        ),
        EmbeddingSpec(
            "gw_svd",
            "whitened strain [n_det, 2, n_bins] projected on an SVD basis of the simulator's noise-free waveforms "
            "(DINGO), then a residual MLP (simulator, simulator_options, num_basis, num_waveforms, trainable)",
            gw_svd_embedding,
        ),
    ]
