"""The posterior-estimator interface: fit, sample, log_prob, save, load.

Every estimator plugin subclasses :class:`PosteriorEstimator` and works in a
standardized, unbounded parameter space ``z`` (see
:class:`~sbi_gen.nn.ParameterTransform`) with standardized observations. The
base class does everything around that: input checks, the prior-support
transform and its Jacobian, the shared training loop, batched sampling over
many observations, and saving as ``config.json`` + ``weights.safetensors``
(no pickle, so loading a model never runs code).

A plugin declares its options as a dataclass (``Options``, a subclass of
:class:`~sbi_gen.estimator_options.EstimatorOptions`; read as ``self.options.NAME``)
and its :class:`~sbi_gen.hookspecs.EstimatorCapabilities` (``capabilities``), once
each, on the class, and implements four methods:

- ``build(theta_dim, x_shape, embedding) -> nn.Module``: the network, untrained; ``embedding``
  is the embedding net its options name, built by the base class through its registry
  (``None`` for options without an embedding);
- ``loss_z(z [b, d], x [b, *x_shape]) -> [b]``: the training loss;
- ``sample_z(x [B, *x_shape], n, generator) -> [n, B, d]``;
- ``log_prob_z(z [n, B, d], x [B, *x_shape]) -> [n, B]`` (if it has densities).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sbi_gen._version import __version__
from sbi_gen.device import resolve_device
from sbi_gen.errors import DataError, ModelFileError, NotFittedError
from sbi_gen.estimator_options import EmbeddingOptions, EstimatorOptions
from sbi_gen.hookspecs import EstimatorCapabilities
from sbi_gen.model_files import (
    CONFIG_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    read_model_files,
    write_model_files,
)
from sbi_gen.nn import ParameterTransform, Standardize, loading_weights
from sbi_gen.pairs import SimulationSet, check_observations, check_pairs
from sbi_gen.posterior import Posterior
from sbi_gen.posterior_draws import draw_inside, log_acceptance, require_finite
from sbi_gen.prior import Prior, prior_from_config
from sbi_gen.seeding import seeded_torch
from sbi_gen.training import TrainingConfig, TrainingHistory, train

__all__ = ["PosteriorEstimator", "load_estimator", "FORMAT_NAME", "FORMAT_VERSION"]


class PosteriorEstimator(ABC):
    """Base class of amortized posterior estimators ``q(theta | x)``.

    Arguments:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; where the network lives.
        **options: the fields of the plugin's :attr:`Options` (validated; saved in the config).

    A subclass that keeps this ``__init__`` gets the signature ``(device="cpu", *, <its options>)``,
    which is what the registry checks option names against.
    """

    #: registered plugin name; written into saved configs
    name: ClassVar[str] = ""
    #: whether :meth:`log_prob` is available, and how it is computed (the plugin's spec shares this object)
    capabilities: ClassVar[EstimatorCapabilities] = EstimatorCapabilities()
    #: the dataclass of this plugin's options
    Options: ClassVar[type[EstimatorOptions]] = EstimatorOptions
    #: this plugin's defaults for :class:`TrainingConfig` fields (e.g. longer patience for score models)
    training_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.capabilities, EstimatorCapabilities):
            raise TypeError(f"{cls.__qualname__}.capabilities must be an EstimatorCapabilities record, "
                            f"got {cls.capabilities!r}")
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, EstimatorOptions)):
            raise TypeError(f"{cls.__qualname__}.Options must be an EstimatorOptions dataclass, got {cls.Options!r}")
        if cls.__init__ is PosteriorEstimator.__init__:
            cls.__signature__ = cls.Options.signature()

    def __init__(self, device: str = "cpu", **options: Any) -> None:
        self.options = self.Options.parse(options, f"estimator {self.name!r}")
        #: the registry that resolves the embedding named in the options (``None``: the process-wide one)
        self.registry = None
        self.device = resolve_device(device)
        self.network: nn.Module | None = None
        self.prior: Prior | None = None
        self.x_shape: tuple[int, ...] | None = None
        self.history: TrainingHistory | None = None
        self.metadata: dict[str, Any] = {}

    # -- what plugins implement -------------------------------------------

    @abstractmethod
    def build(self, theta_dim: int, x_shape: tuple[int, ...], embedding: nn.Module | None) -> nn.Module:
        """The untrained network for ``theta [d]`` given ``x [*x_shape]``, around the built ``embedding`` net."""

    @abstractmethod
    def loss_z(self, z: Tensor, x: Tensor) -> Tensor:
        """Per-pair training loss ``[b]`` in standardized space."""

    @abstractmethod
    def sample_z(self, x: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        """``[n, B, d]`` standardized samples for standardized observations ``[B, *x_shape]``."""

    def log_prob_z(self, z: Tensor, x: Tensor) -> Tensor:
        """``log q(z | x)`` ``[n, B]`` for ``z [n, B, d]`` and standardized ``x [B, *x_shape]``."""
        raise NotImplementedError(f"estimator {self.name!r} has no log_prob")

    # -- the network and its standardization -------------------------------

    @property
    def core(self) -> nn.Module:
        """The plugin's network (without the standardization around it)."""
        return self._require_fitted()["core"]

    def _require_fitted(self) -> nn.Module:
        if self.network is None:
            raise NotFittedError(f"estimator {self.name!r} is not fitted: call fit(...) or load_estimator(path)")
        return self.network

    def _assemble(self, prior: Prior, x_shape: tuple[int, ...]) -> nn.Module:
        self.prior, self.x_shape = prior, tuple(x_shape)
        self.network = nn.ModuleDict(
            {
                "theta_transform": ParameterTransform(prior.low, prior.high, self.options.bounded_support),
                "x_standardize": Standardize(self.x_shape),
                "core": self.build(prior.dim, self.x_shape, self._embedding(self.x_shape)),
            }
        ).to(self.device)
        return self.network

    def _registry(self):
        from sbi_gen.registry import get_registry

        return self.registry or get_registry()

    def _embedding(self, x_shape: tuple[int, ...]) -> nn.Module | None:
        """The embedding net ``[B, *x_shape] -> [B, embedding_features]`` the options name, built once here."""
        o = self.options
        if not isinstance(o, EmbeddingOptions):
            return None
        return self._registry().embedding(o.embedding, x_shape, o.embedding_features, **o.embedding_options)

    def _set_axes(self) -> tuple[int, ...]:
        """Axes of ``x`` that the embedding treats as an unordered set (its spec's ``set_axis``)."""
        if not isinstance(self.options, EmbeddingOptions):
            return ()
        axis = self._registry().spec("embedding", self.options.embedding).capabilities.set_axis
        return () if axis is None else (axis,)

    def _standardized_x(self, x: Tensor) -> Tensor:
        return self._require_fitted()["x_standardize"](x.to(self.device))

    def _loss(self, theta: Tensor, x: Tensor) -> Tensor:
        z, _ = self.network["theta_transform"](theta)
        return self.loss_z(z.to(self.device), self.network["x_standardize"](x))

    # -- public interface --------------------------------------------------

    def fit(
        self,
        theta: Any,
        x: Any = None,
        prior: Prior | None = None,
        training: TrainingConfig | None = None,
        drop_invalid: bool = False,
        **training_options: Any,
    ) -> TrainingHistory:
        """Train on pairs ``theta [n, d]``, ``x [n, *x_shape]`` drawn from ``prior``.

        ``theta`` may instead be a :class:`~sbi_gen.pairs.SimulationSet` (with
        ``x=None``); a simulation store (a :class:`~sbi_gen.store.SimulationStore`
        or its path) with ``x=None``, whose pairs are streamed from disk a chunk
        at a time; or a :class:`~sbi_gen.redraw.RedrawnPairs`, whose pairs are
        re-drawn from stored signals for every batch (a store of signals is
        trained through one automatically). For the last two the
        standardization is fitted in one streaming pass, and ``prior`` defaults
        to the one they carry.

        Non-finite rows and ``theta`` outside the prior raise :class:`DataError`
        unless ``drop_invalid`` (their count is kept in ``metadata``).
        ``training_options`` override fields of :class:`TrainingConfig`.
        """
        from sbi_gen.gnpe import AlignedPairs
        from sbi_gen.redraw import RedrawnPairs
        from sbi_gen.streaming import store_pairs

        config = training or self.training_config()
        for key, value in training_options.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown training option {key!r}")
            setattr(config, key, value)
        store = _as_store(theta)
        if store is not None or isinstance(theta, (RedrawnPairs, AlignedPairs)):
            if x is not None:
                raise TypeError("when training from a simulation store or a pair source, x must be None (it holds x)")
            with seeded_torch(config.seed, self.device):  # weights and loss noise; the caller's RNG is restored
                source = theta if store is None else store_pairs(store, prior, drop_invalid, config.shuffle_buffer)
                return self._fit_streamed(source, prior or source.prior, config)
        if isinstance(theta, SimulationSet):
            if x is not None:
                raise TypeError("when training on a SimulationSet, x must be None (the set holds x)")
            if theta.meta.get("content") == "signal":
                raise TypeError("this SimulationSet holds signals, not observations: train on "
                                "RedrawnPairs(signals, simulator) (sbi_gen.redraw)")
            theta, x = theta.theta, theta.x
        if x is None or prior is None:
            raise TypeError("fit needs theta, x and prior (or a SimulationSet or a simulation store as theta)")
        theta, x, report = check_pairs(theta, x, prior, drop_invalid=drop_invalid)
        with seeded_torch(config.seed, self.device):
            network = self._assemble(prior, tuple(x.shape[1:]))
            network["theta_transform"].fit(theta)
            network["x_standardize"].fit(x, pooled_axes=self._set_axes())
            self.metadata["data"] = {"num_pairs": len(theta), "dropped": report}
            pairs = SimulationSet(theta.to(self.device), x.to(self.device))
            self.history = train(network, self._loss, pairs, config)
        return self.history

    def _fit_streamed(self, pairs, prior: Prior, config: TrainingConfig) -> TrainingHistory:
        """Pairs served in batches (a store, re-drawn signals): one pass for checks and standardization, then
        the shared loop."""
        from sbi_gen.streaming import RunningMoments

        network = self._assemble(prior, pairs.x_shape)
        transform = network["theta_transform"]
        theta_moments = RunningMoments((prior.dim,))
        x_moments = RunningMoments(pairs.x_shape, pooled_axes=self._set_axes())

        def visit(theta: Tensor, x: Tensor) -> None:
            theta_moments.update(transform._to_unbounded(theta.to(self.device))[0])
            x_moments.update(x)

        report = pairs.scan(visit)
        theta_moments.apply_to(transform.standardize)
        x_moments.apply_to(network["x_standardize"])
        dropped = {"non_finite": report.get("non_finite", 0), "outside_prior": report.get("outside_prior", 0)}
        self.metadata["data"] = {"num_pairs": report["num_pairs"], "dropped": dropped, **pairs.describe()}
        self.history = train(network, self._loss, pairs, config)
        return self.history

    def training_config(self, **overrides: Any) -> TrainingConfig:
        """A :class:`TrainingConfig` with this plugin's :attr:`training_defaults`, then ``overrides``."""
        fields = {**self.training_defaults, **overrides}
        try:
            return TrainingConfig(**fields)
        except TypeError as error:
            raise TypeError(f"unknown training option: {error}") from None

    @torch.no_grad()
    def sample(
        self, x_obs: Any, n: int, generator: torch.Generator | None = None, max_batch: int = 100_000
    ) -> Tensor:
        """Draw ``[n, B, d]`` posterior samples for ``B`` observations ``[B, *x_shape]`` in one call.

        A single observation of shape ``x_shape`` is taken as ``B = 1``. Work is
        split so that at most ``max_batch`` samples are transformed at once.
        Samples are returned on the CPU, whatever the estimator's device.
        """
        network = self._require_fitted()
        network.eval()
        x = self._standardized_x(check_observations(x_obs, self.x_shape, self.metadata.get("simulator")))
        if network["theta_transform"].truncates:  # draws outside the prior's box are rejected (posterior_draws)
            return draw_inside(lambda m: self._raw_draws(x, m, generator, max_batch), self.prior, n, len(x))
        theta = self._raw_draws(x, n, generator, max_batch)
        require_finite(theta)  # draw_inside checks each batch of raw draws itself
        return theta

    def _raw_draws(self, x: Tensor, n: int, generator: torch.Generator | None, max_batch: int = 100_000) -> Tensor:
        """``[n, B, d]`` draws for standardized ``x``, at most ``max_batch`` transformed at once, on the CPU."""
        chunk = max(1, max_batch // len(x))
        parts = [self.sample_z(x, min(chunk, n - i), generator) for i in range(0, n, chunk)]
        z = torch.cat(parts) if parts else torch.empty(0, len(x), self.prior.dim, device=self.device)
        return self.network["theta_transform"].inverse(z).cpu()

    @torch.no_grad()
    def log_prob(self, theta: Any, x_obs: Any) -> Tensor:
        """``log q(theta | x)`` for ``theta [n, B, d]`` (or ``[B, d]``) and ``x_obs [B, *x_shape]``.

        Returns ``[n, B]`` (or ``[B]``), in nats per the parameters' units;
        ``-inf`` outside the prior support.
        """
        if not self.capabilities.has_log_prob:
            raise NotImplementedError(f"estimator {self.name!r} has no log_prob")
        network = self._require_fitted()
        network.eval()
        x = check_observations(x_obs, self.x_shape, self.metadata.get("simulator"))
        theta = torch.as_tensor(theta, dtype=torch.float32)
        squeeze = theta.ndim == 2
        if squeeze:
            theta = theta.unsqueeze(0)
        if theta.ndim != 3 or theta.shape[1:] != (len(x), self.prior.dim):
            raise DataError(
                f"theta must have shape [n, {len(x)}, {self.prior.dim}] or [{len(x)}, {self.prior.dim}] "
                f"for {len(x)} observation(s), got {list(theta.shape)}"
            )
        inside = self.prior.contains(theta)
        z, log_det = network["theta_transform"](theta)
        x = self._standardized_x(x)
        log_q = self.log_prob_z(z.to(self.device), x).double().cpu() + log_det
        if network["theta_transform"].truncates:  # renormalized by the mass inside the box (posterior_draws)
            log_q = log_q - log_acceptance(lambda m, g: self._raw_draws(x, m, g), self.prior)
        log_q = torch.where(inside, log_q, torch.full_like(log_q, -math.inf))
        return log_q[0] if squeeze else log_q

    def posterior(self, x_obs: Any) -> Posterior:
        """The :class:`~sbi_gen.posterior.Posterior` for ``x_obs [B, *x_shape]``: :meth:`sample` and :meth:`log_prob`
        for ``x_obs``, with :attr:`capabilities` (whether and how densities are computed) and the prior."""
        self._require_fitted()
        x = check_observations(x_obs, self.x_shape, self.metadata.get("simulator"))
        log_prob = (lambda theta: self.log_prob(theta, x)) if self.capabilities.has_log_prob else None
        return Posterior(lambda n, generator=None: self.sample(x, n, generator), log_prob,
                         capabilities=self.capabilities, prior=self.prior, x=x, name=f"estimator {self.name!r}")

    # -- persistence -------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Everything but the weights, as JSON: plugin, options, prior, shapes, training record."""
        self._require_fitted()
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "plugin": self.name,
            "sbi_gen_version": __version__,
            "options": self.options.to_dict(),
            "theta_dim": self.prior.dim,
            "x_shape": list(self.x_shape),
            "prior": self.prior.to_config(),
            "training": self.history.to_dict() if self.history else None,
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().cpu().contiguous().clone() for key, value in self.network.state_dict().items()}
        config = self.config()
        write_model_files(path, config, state)
        return path

    @classmethod
    def from_config(
        cls, config: dict[str, Any], state: dict[str, Tensor], device: str = "cpu", registry=None
    ) -> PosteriorEstimator:
        """Rebuild a fitted estimator from its config and weights (``registry`` resolves its embedding)."""
        estimator = cls(device=device, **config["options"])
        estimator.registry = registry
        with loading_weights():  # data-dependent initialization (e.g. an SVD basis) is about to be overwritten
            estimator._assemble(prior_from_config(config["prior"]), tuple(config["x_shape"]))
        estimator.network.load_state_dict(state)
        estimator.network.eval()
        if config.get("training"):
            estimator.history = TrainingHistory(**config["training"])
        estimator.metadata = dict(config.get("metadata") or {})
        return estimator

    def __repr__(self) -> str:
        status = "unfitted" if self.network is None else f"d={self.prior.dim}, x_shape={self.x_shape}"
        return f"{type(self).__name__}({status}, options={self.options})"


def _as_store(data: Any):
    """``data`` as a :class:`~sbi_gen.store.SimulationStore` if it is one (or a path to one), else ``None``."""
    from sbi_gen.store import SimulationStore, is_store

    if isinstance(data, SimulationStore):
        return data
    if isinstance(data, (str, os.PathLike)) and is_store(data):
        return SimulationStore.open(data)
    return None


def load_estimator(path: str | os.PathLike, device: str = "cpu", registry=None) -> PosteriorEstimator:
    """Load a saved estimator directory; the plugin named in its config must be installed."""
    from sbi_gen.registry import get_registry

    device = str(resolve_device(device))  # an unknown or absent device is named before any file is read
    config, state = read_model_files(path)
    registry = registry or get_registry()
    factory = registry.spec("estimator", config["plugin"]).factory
    if not (isinstance(factory, type) and issubclass(factory, PosteriorEstimator)):
        raise ModelFileError(f"estimator plugin {config['plugin']!r} cannot load saved models")
    try:
        return factory.from_config(config, state, device=device, registry=registry)
    except RuntimeError as error:
        raise ModelFileError(f"{Path(path) / WEIGHTS_FILE} does not match {CONFIG_FILE}: {error}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ModelFileError(f"{Path(path) / CONFIG_FILE} holds a field of the wrong type or value "
                             f"({type(error).__name__}: {error})") from None
