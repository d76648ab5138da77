"""Embedding ``gw_svd``: projection onto an SVD basis of noise-free whitened waveforms, then a residual MLP.

The first layer of DINGO's embedding network (Dax, Green, Gair, Macke, Buonanno
and Schoelkopf 2021, "Real-time gravitational wave science with neural posterior
estimation", Phys. Rev. Lett. 127, 241103, arXiv:2106.12594) projects the
whitened frequency-domain strain onto a reduced basis obtained by a singular
value decomposition of simulated noise-free waveforms; dense residual blocks
follow. This module does the same for simulators of whitened strain
``x [n_det, 2, n_bins]`` that expose ``whitened_waveform(theta)`` (complex
``[..., n_det, n_bins]``), such as ``gw`` and ``gw_network``.

Basis. ``num_waveforms`` parameters are drawn from the simulator's prior
(``seed``), their whitened noise-free waveforms written per detector as real
vectors ``[Re h(f_1..f_n), Im h(f_1..f_n)]`` (the layout of ``x``), and each
detector gets the ``num_basis`` leading right singular vectors ``V_d`` of its
``num_waveforms x 2 n_bins`` matrix (through the eigenvectors of its Gram
matrix, on the bins where some waveform is non-zero).

Real, not complex, SVD. The estimator z-scores the real and imaginary parts of
every bin as separate features, so the data the embedding sees are not exactly
complex-linear images of the strain; a real basis is exact in those
coordinates and is an ordinary linear layer when trained. Nothing is lost:
``phi_c`` is uniform, so the waveform set is closed under phase rotations and the
real singular vectors come in pairs ``(v, i v)`` spanning what ``num_basis / 2``
complex vectors would. Detectors get separate bases because their PSDs, antenna
patterns and delays differ.

Standardized inputs. Estimators standardize ``x`` per feature before the
embedding: ``x_std = (x - m) / s`` with ``s^2 = 1 + Var(h)`` (unit-variance
whitened noise plus the spread of the signals) and ``m = E[h] ~ 0``. For the
default ``gw`` prior the signal variance reaches 0.74 in the most sensitive bins
(``s`` up to 1.32), so the standardization is not the identity. The layer
therefore computes ``c = V^T (sigma * x_std)`` with ``sigma = sqrt(1 + Var(h))``
predicted from the same waveforms: ``sigma / s = 1`` up to sampling error
(~1 %), so ``c = V^T (x - m)``, the basis acting on whitened data, where the
noise is white (``c`` has unit-variance noise) and the signals lie in the span
of ``V``. Then ``c`` is nearly a sufficient statistic: the log-likelihood
``<h, x> - |h|^2 / 2`` depends on ``x`` only through ``V^T x`` when ``h`` is in
the span. The offset ``V^T m`` is a constant that the next linear layer absorbs.

Frozen by default (``trainable=False``). Because of the sufficiency argument
the SVD projection already keeps the information, and freezing it keeps
``n_det x 2 n_bins x num_basis`` (about 10^6) parameters out of the optimizer,
which matters for the 10^4 - 10^5 simulations typical here; ``trainable=True``
trains it from the SVD initialization, as DINGO does.

Construction. :class:`SVDResidualEmbedding` is a plain module that is handed
its basis; it knows nothing of simulators or of the registry.
:func:`gw_svd_embedding`, the registered ``gw_svd`` factory, does the rest
outside the module: it takes a built simulator, or builds the named one through
the registry that resolves the embedding (passed in as ``registry``), checks
that its ``x_shape`` is the one to embed, and computes the basis with
:func:`waveform_basis`.

Saving. ``basis``, ``scale`` and ``singular_values`` are buffers (``basis`` a
parameter when trainable), saved in ``weights.safetensors``, so a loaded model
never depends on recomputing the SVD; when an estimator is loaded
(:func:`sbi_gen.nn.loading_weights`) the factory builds no simulator and runs no
SVD. Bases of named simulators are cached in memory per (simulator, options,
sizes, seed), so retraining in one process (e.g. ``sbi-gen calibrate
--budgets``) computes each once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from sbi_gen.nn import weights_will_be_loaded
from sbi_gen.nn.embedding import DEFAULT_EMBEDDING_FEATURES

__all__ = ["ResidualBlock", "SVDResidualEmbedding", "gw_svd_embedding", "waveform_basis"]

#: waveforms simulated at once while building a basis
_CHUNK = 1024


class ResidualBlock(nn.Module):
    """``v + W2 elu(LN(W1 elu(LN(v))))`` on ``[B, features]``; starts as the identity (``W2 = 0``)."""

    def __init__(self, features: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(features), nn.ELU(), nn.Linear(features, features),
            nn.LayerNorm(features), nn.ELU(), nn.Dropout(dropout), nn.Linear(features, features),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, v: Tensor) -> Tensor:
        return v + self.net(v)


def _options_key(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=repr)


#: (simulator name, options, num_basis, num_waveforms, seed) -> (basis, scale, singular values)
_BASES: OrderedDict[tuple, tuple[Tensor, Tensor, Tensor]] = OrderedDict()
_MAX_CACHED = 4


def waveform_basis(
    simulator: Any, num_basis: int, num_waveforms: int, seed: int, cache_key: tuple | None = None,
    aligned_half_widths: list[float] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """SVD basis of a simulator's noise-free whitened waveforms (module docstring).

    Arguments:
        simulator: a built simulator with ``prior``, ``x_shape = (n_det, 2, n_bins)`` and
            ``whitened_waveform(theta) -> complex [..., n_det, n_bins]``.
        num_basis, num_waveforms, seed: basis size, prior draws, their seed.
        cache_key: if given, results are kept in memory under it (and returned as copies).
        aligned_half_widths: for a GNPE network (:mod:`sbi_gen.gnpe`): each waveform is first aligned
            on proxies drawn with this kernel, as the network's data will be.

    Returns:
        ``basis`` ``[n_det, 2 n_bins, num_basis]`` (orthonormal columns, float32),
        ``scale`` ``[n_det, 2, n_bins]``: ``sqrt(1 + Var(h))`` per feature, the standard
        deviation an estimator's standardization of ``x`` will find (float32), and
        ``singular_values`` ``[n_det, num_basis]`` (float32, in whitened units).
    """
    if cache_key is None:
        return _compute_basis(simulator, num_basis, num_waveforms, seed, aligned_half_widths)
    if cache_key not in _BASES:
        _BASES[cache_key] = _compute_basis(simulator, num_basis, num_waveforms, seed, aligned_half_widths)
        while len(_BASES) > _MAX_CACHED:
            _BASES.popitem(last=False)
    _BASES.move_to_end(cache_key)
    return tuple(t.clone() for t in _BASES[cache_key])


def _compute_basis(sim: Any, num_basis: int, num_waveforms: int, seed: int,
                   aligned_half_widths: list[float] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    name = getattr(sim, "name", "") or type(sim).__name__
    if not callable(getattr(sim, "whitened_waveform", None)):
        raise TypeError(
            f"simulator {name!r} has no whitened_waveform(theta): the gw_svd embedding needs the noise-free "
            "whitened strain [..., n_det, n_bins] of simulators such as 'gw' and 'gw_network'"
        )
    n_det, _, n_bins = sim.x_shape
    generator = torch.Generator().manual_seed(seed)
    theta = sim.prior.sample(num_waveforms, generator)
    alignment = None
    if aligned_half_widths is not None:
        from sbi_gen.gnpe import ProxyAlignment

        alignment = ProxyAlignment(sim, half_widths=aligned_half_widths)
    data = torch.empty(n_det, num_waveforms, 2 * n_bins, dtype=torch.float32)
    total = torch.zeros(n_det, 2 * n_bins, dtype=torch.float64)
    total_sq = torch.zeros(n_det, 2 * n_bins, dtype=torch.float64)
    for start in range(0, num_waveforms, _CHUNK):
        h = sim.whitened_waveform(theta[start : start + _CHUNK].double())  # [c, n_det, n_bins] complex
        real = torch.view_as_real(h).transpose(-1, -2)  # [c, n_det, 2, n_bins], the layout of x
        if alignment is not None:
            real = alignment.simulator.align(real, alignment.draw_proxies(theta[start : start + _CHUNK], generator))
        real = real.reshape(h.shape[0], n_det, 2 * n_bins)
        total += real.sum(0)
        total_sq += (real**2).sum(0)
        data[:, start : start + h.shape[0]] = real.transpose(0, 1)
    mean = total / num_waveforms
    variance = ((total_sq - num_waveforms * mean**2) / max(1, num_waveforms - 1)).clamp_min(0.0)
    scale = torch.sqrt(1.0 + variance).reshape(n_det, 2, n_bins)
    basis = torch.zeros(n_det, 2 * n_bins, num_basis, dtype=torch.float32)
    values = torch.zeros(n_det, num_basis, dtype=torch.float32)
    for d in range(n_det):
        active = (data[d] != 0).any(0)
        vectors, singular = _leading_right_singular_vectors(data[d][:, active], num_basis, name)
        basis[d, active] = vectors
        values[d] = singular
    return basis, scale.float(), values


def _leading_right_singular_vectors(matrix: Tensor, k: int, simulator: str) -> tuple[Tensor, Tensor]:
    """Leading ``k`` right singular vectors ``[D, k]`` and singular values ``[k]`` of ``matrix [N, D]``.

    Through the eigenvectors of the smaller Gram matrix in float32 (10^4 x 2,734: ~5 s on one
    core, with the same held-out mismatches as float64), re-orthonormalized in float64.
    """
    n, dim = matrix.shape
    if k > min(n, dim):
        raise ValueError(
            f"num_basis={k} exceeds what {n} waveforms of simulator {simulator!r} with {dim} non-zero real "
            f"features can span; lower num_basis or raise num_waveforms"
        )
    small_side = n < dim
    gram = matrix @ matrix.T if small_side else matrix.T @ matrix
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    eigenvalues, eigenvectors = eigenvalues.flip(0)[:k], eigenvectors.flip(1)[:, :k]
    if not bool(eigenvalues[-1] > 1e-6 * eigenvalues[0]):
        raise ValueError(
            f"the waveforms of simulator {simulator!r} span fewer than num_basis={k} directions "
            f"(singular value {k} is {float(eigenvalues[-1].clamp_min(0).sqrt()):.3g}, the first "
            f"{float(eigenvalues[0].sqrt()):.3g}); lower num_basis"
        )
    vectors = matrix.T @ eigenvectors if small_side else eigenvectors
    vectors = torch.linalg.qr(vectors.double()).Q  # keeps the order of the leading spans
    return vectors.float(), eigenvalues.sqrt()


def _strain_shape(x_shape: tuple[int, ...]) -> tuple[int, int, int]:
    x_shape = tuple(int(s) for s in x_shape)
    if len(x_shape) != 3 or x_shape[1] != 2:
        raise ValueError(f"gw_svd embeds whitened strain x [n_det, 2 (real, imaginary), n_bins], got {x_shape}")
    return x_shape


def gw_svd_embedding(
    x_shape: tuple[int, ...],
    output_features: int = DEFAULT_EMBEDDING_FEATURES,
    simulator: Any = "gw",
    simulator_options: dict[str, Any] | None = None,
    num_basis: int = 256,
    num_waveforms: int = 10_000,
    seed: int = 0,
    trainable: bool = False,
    hidden_features: int = 128,
    num_blocks: int = 2,
    dropout: float = 0.0,
    aligned_half_widths: list[float] | None = None,
    registry: Any = None,
) -> SVDResidualEmbedding:
    """The ``gw_svd`` embedding for ``x [B, *x_shape]``: the basis of ``simulator``'s waveforms, then the MLP.

    Arguments:
        x_shape: ``(n_det, 2, n_bins)``; must equal the simulator's ``x_shape``.
        output_features: size of the summary.
        simulator: a registered simulator's name (built through ``registry`` with ``simulator_options``),
            or a built simulator; its prior and ``whitened_waveform`` define the basis.
        simulator_options: the named simulator's keyword options (the same as for the training data).
        num_basis: real basis vectors per detector (256: mean held-out mismatch 4e-4 for ``gw``).
        num_waveforms: waveforms drawn from the prior for the SVD.
        seed: seeds the prior draws.
        trainable, hidden_features, num_blocks, dropout: as for :class:`SVDResidualEmbedding`.
        aligned_half_widths: GNPE kernel half widths: the basis is of waveforms aligned on proxies (the
            ``proxy_context`` embedding of :mod:`sbi_gen.gnpe` passes them).
        registry: resolves a simulator name (the registry building this embedding passes itself;
            default the process-wide one).

    Within :func:`sbi_gen.nn.loading_weights` no simulator is built and no SVD is run: the weights
    about to be loaded hold the basis, so zero tensors of its shape stand in.
    """
    n_det, _, n_bins = x_shape = _strain_shape(x_shape)
    if num_basis < 1 or num_waveforms < num_basis:
        raise ValueError(f"need 1 <= num_basis <= num_waveforms, got {num_basis=}, {num_waveforms=}")
    num_basis, num_waveforms, seed = int(num_basis), int(num_waveforms), int(seed)
    if weights_will_be_loaded():
        basis = torch.zeros(n_det, 2 * n_bins, num_basis)
        scale, values = torch.ones(x_shape), torch.zeros(n_det, num_basis)
    else:
        key, described = None, repr(simulator)
        if isinstance(simulator, str):
            from sbi_gen.registry import get_registry

            options = dict(simulator_options or {})
            key = (simulator, _options_key(options), num_basis, num_waveforms, seed,
                   None if aligned_half_widths is None else tuple(float(w) for w in aligned_half_widths))
            described = f"{simulator!r} with options {options}"
            simulator = (registry or get_registry()).simulator(simulator, **options)
        if tuple(simulator.x_shape) != x_shape:
            raise ValueError(
                f"gw_svd: simulator {described} makes x of shape {tuple(simulator.x_shape)}, but the embedding is "
                f"asked to embed x of shape {x_shape}; pass the simulator and options of the training data as "
                "simulator= and simulator_options="
            )
        basis, scale, values = waveform_basis(simulator, num_basis, num_waveforms, seed, cache_key=key,
                                              aligned_half_widths=aligned_half_widths)
    return SVDResidualEmbedding(x_shape, output_features, basis, scale, values, trainable=trainable,
                                hidden_features=hidden_features, num_blocks=num_blocks, dropout=dropout)


class SVDResidualEmbedding(nn.Module):
    """Linear projection of standardized whitened strain onto a given SVD basis, then a residual MLP.

    Arguments:
        x_shape: ``(n_det, 2, n_bins)``.
        output_features: size of the summary.
        basis: ``[n_det, 2 n_bins, num_basis]`` orthonormal columns (:func:`waveform_basis`).
        scale: ``[n_det, 2, n_bins]``, the standard deviation the estimator's standardization finds.
        singular_values: ``[n_det, num_basis]``, kept for inspection.
        trainable: train the projection (initialized from ``basis``) instead of freezing it.
        hidden_features: width of the residual MLP.
        num_blocks: residual blocks.
        dropout: dropout probability inside the blocks.

    ``forward(x [B, n_det, 2, n_bins]) -> [B, output_features]``; :meth:`project` gives the
    basis coefficients ``[B, n_det, num_basis]``. :func:`gw_svd_embedding` computes the basis.
    """

    def __init__(
        self,
        x_shape: tuple[int, ...],
        output_features: int,
        basis: Tensor,
        scale: Tensor,
        singular_values: Tensor,
        trainable: bool = False,
        hidden_features: int = 128,
        num_blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n_det, _, n_bins = x_shape = _strain_shape(x_shape)
        num_basis = basis.shape[-1] if basis.ndim == 3 else 0
        if basis.shape != (n_det, 2 * n_bins, num_basis) or num_basis < 1 or scale.shape != x_shape or \
                singular_values.shape != (n_det, num_basis):
            raise ValueError(
                f"gw_svd for x {x_shape} needs basis [{n_det}, {2 * n_bins}, num_basis], scale {list(x_shape)} and "
                f"singular_values [{n_det}, num_basis]; got {list(basis.shape)}, {list(scale.shape)}, "
                f"{list(singular_values.shape)}"
            )
        self.x_shape = x_shape
        self.num_basis = int(num_basis)
        basis, scale, values = basis.float(), scale.float(), singular_values.float()
        if trainable:
            self.basis = nn.Parameter(basis)
        else:
            self.register_buffer("basis", basis)
        self.register_buffer("scale", scale)
        self.register_buffer("singular_values", values)
        self.mlp = nn.Sequential(
            nn.Linear(n_det * self.num_basis, hidden_features),
            *(ResidualBlock(hidden_features, dropout) for _ in range(num_blocks)),
            nn.LayerNorm(hidden_features),
            nn.ELU(),
            nn.Linear(hidden_features, output_features),
        )

    def project(self, x: Tensor) -> Tensor:
        """Basis coefficients ``[B, n_det, num_basis]`` of standardized ``x [B, n_det, 2, n_bins]``.

        ``V^T (scale * x)``: undoes the estimator's z-scoring (``scale`` ~ its std), so the
        coefficients are those of the whitened data, with unit-variance noise.
        """
        z = (x * self.scale).reshape(x.shape[0], self.x_shape[0], -1)
        return torch.einsum("bdi,dik->bdk", z, self.basis)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.project(x).flatten(1))

    def extra_repr(self) -> str:
        return f"x_shape={self.x_shape}, num_basis={self.num_basis}, trainable={isinstance(self.basis, nn.Parameter)}"

