"""Built-in embedding nets: ``mlp`` (default), ``identity`` (for small, informative x),
``deepsets`` (permutation-invariant, for sets of i.i.d. elements ``x [N, *element_shape]``) and
``gw_svd`` (whitened strain projected on an SVD basis of the simulator's waveforms, then a residual
MLP; :mod:`sbi_gen_plugins.svd_embedding`) and ``proxy_context`` (GNPE's aligned data with its
proxies, :mod:`sbi_gen.gnpe`: another embedding of the data, the proxies appended)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from sbi_gen.hookspecs import EmbeddingCapabilities, EmbeddingSpec, hookimpl
from sbi_gen.nn import DeepSetsEmbedding, MLPEmbedding
from sbi_gen_plugins.svd_embedding import gw_svd_embedding

__all__ = ["IdentityEmbedding", "ProxyContextEmbedding", "proxy_context_embedding"]


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


class ProxyContextEmbedding(nn.Module):
    """``x_a [B, *x_shape]``, flattened to ``[data (prod(data_shape)), k proxies]`` ->
    ``[inner(data) [B, m], proxies [B, k]]``, ``m + k`` features.

    The layout is :meth:`sbi_gen.gnpe.ProxyAlignment.context`'s: the aligned data flattened, then the
    ``k`` proxies (standardized with the rest by the estimator)."""

    def __init__(self, inner: nn.Module, data_shape: tuple[int, ...], num_proxies: int) -> None:
        super().__init__()
        self.inner, self.data_shape, self.num_proxies = inner, tuple(data_shape), int(num_proxies)

    def forward(self, x: Tensor) -> Tensor:
        flat, size = x.reshape(x.shape[0], -1), math.prod(self.data_shape)
        return torch.cat([self.inner(flat[:, :size].reshape(x.shape[0], *self.data_shape)), flat[:, size:]], 1)


def proxy_context_embedding(
    x_shape: tuple[int, ...], output_features: int, data_shape: tuple[int, ...] | None = None, num_proxies: int = 0,
    embedding: str = "mlp", embedding_options: dict[str, Any] | None = None, registry: Any = None,
) -> ProxyContextEmbedding:
    """The ``proxy_context`` embedding: ``embedding`` (with ``embedding_options``) on the first
    ``prod(data_shape)`` entries of ``x`` (reshaped to ``data_shape``; default: all but the proxies, flat)
    into ``output_features - num_proxies`` features, the last ``num_proxies`` entries appended."""
    total, num_proxies = math.prod(x_shape), int(num_proxies)
    data_shape = (total - num_proxies,) if data_shape is None else tuple(int(s) for s in data_shape)
    if num_proxies < 0 or math.prod(data_shape) + num_proxies != total:
        raise ValueError(f"proxy_context embeds x of prod(data_shape) + num_proxies entries, got x_shape "
                         f"{tuple(x_shape)} ({total}) for data_shape={list(data_shape)}, num_proxies={num_proxies}")
    if output_features <= num_proxies:
        raise ValueError(f"proxy_context needs output_features > num_proxies = {num_proxies}, got {output_features}")
    from sbi_gen.registry import get_registry

    inner = (registry or get_registry()).embedding(embedding, data_shape, output_features - num_proxies,
                                                   **(embedding_options or {}))
    return ProxyContextEmbedding(inner, data_shape, num_proxies)


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
        EmbeddingSpec(
            "proxy_context",
            "GNPE context: an embedding of the aligned data with the proxies appended (data_shape, num_proxies, "
            "embedding, embedding_options)",
            proxy_context_embedding,
        ),
    ]
