"""The plugin contract: the pluggy hooks a plugin may implement, and the typed records they return.

A plugin is a module (or object) exposed through the ``sbi_gen`` entry-point
group. It implements any of the hooks below with the :data:`hookimpl` marker;
each hook returns a list of *spec records* so the registry can list, validate
and attribute every name to the distribution that provides it.

Capabilities are typed records (:class:`SimulatorCapabilities`,
:class:`EstimatorCapabilities`, :class:`EmbeddingCapabilities`) declared
**once**: a factory class that carries its own ``capabilities`` record (every
:class:`~sbi_gen.PosteriorEstimator` and :class:`~sbi_gen.Simulator` subclass
does) gives the spec that very object, and repeating them in the spec is an
error; any other factory (a function, an ``nn.Module``) declares them on the
spec. Omitted, they are the record's defaults.

Example plugin module::

    from sbi_gen.hookspecs import SimulatorSpec, hookimpl

    @hookimpl
    def sbi_gen_simulators():
        return [SimulatorSpec("my_sim", "one line on what it simulates", MySimulator)]

and in its ``pyproject.toml``::

    [project.entry-points.sbi_gen]
    my_sim = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pluggy

__all__ = [
    "PROJECT_NAME",
    "LOG_PROB_METHODS",
    "hookspec",
    "hookimpl",
    "SimulatorCapabilities",
    "EstimatorCapabilities",
    "EmbeddingCapabilities",
    "PluginSpec",
    "SimulatorSpec",
    "EstimatorSpec",
    "EmbeddingSpec",
    "sbi_gen_simulators",
    "sbi_gen_estimators",
    "sbi_gen_embeddings",
]

#: pluggy project name and entry-point group
PROJECT_NAME = "sbi_gen"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

LogProbMethod = Literal["exact", "ode"]
#: how an estimator computes ``log_prob``: ``"exact"``, the closed-form density of a normalized
#: family (a flow); ``"ode"``, the change of variables along the sampling ODE (exact up to solver error)
LOG_PROB_METHODS: tuple[str, ...] = ("exact", "ode")


@dataclass(frozen=True)
class SimulatorCapabilities:
    """What a simulator offers beyond ``simulate``.

    Arguments:
        has_log_likelihood: ``log_likelihood(theta, x)`` is exact (refinement needs it).
        has_reference_posterior: ``reference_posterior(x)`` gives the true posterior (C2ST needs it).
        suggested_estimator_options: estimator options suited to this simulator's data, e.g.
            ``{"embedding": "deepsets"}``; applied by
            :meth:`~sbi_gen.registry.Registry.estimator_options_for` to estimators with an embedding.
        has_signal_split: ``simulate_signal(theta)`` (the expensive deterministic part) and
            ``simulate_from_signal(theta, signal, generator)`` (the cheap part) exist, so training can
            re-draw the cheap part for every batch (:mod:`sbi_gen.redraw`).
        redrawn_parameters: the parameters the cheap part applies; training re-draws them from the prior.
        has_reference_observations: ``reference_observations()`` gives fixed benchmark observations with
            reference posterior samples (sbibm's observations 1-10), which the benchmark suite then scores on.
    """

    has_log_likelihood: bool = False
    has_reference_posterior: bool = False
    suggested_estimator_options: Mapping[str, Any] = field(default_factory=dict)
    has_signal_split: bool = False
    redrawn_parameters: tuple[str, ...] = ()
    has_reference_observations: bool = False

    def __post_init__(self) -> None:
        _require_bool(self, "has_log_likelihood", "has_reference_posterior", "has_signal_split",
                      "has_reference_observations")
        object.__setattr__(self, "redrawn_parameters", tuple(self.redrawn_parameters))
        if self.redrawn_parameters and not self.has_signal_split:
            raise TypeError("redrawn_parameters need the signal split (simulate_signal and simulate_from_signal)")
        if not isinstance(self.suggested_estimator_options, Mapping):
            raise TypeError("suggested_estimator_options must be a dict of estimator options, "
                            f"got {type(self.suggested_estimator_options).__name__}")
        object.__setattr__(self, "suggested_estimator_options", dict(self.suggested_estimator_options))


@dataclass(frozen=True)
class EstimatorCapabilities:
    """What an estimator's posterior offers besides sampling.

    Arguments:
        has_log_prob: ``log_prob(theta, x)`` is available.
        log_prob_method: how it is computed, one of :data:`LOG_PROB_METHODS`; ``None`` without ``log_prob``.
    """

    has_log_prob: bool = True
    log_prob_method: LogProbMethod | None = "exact"

    def __post_init__(self) -> None:
        _require_bool(self, "has_log_prob")
        if not self.has_log_prob:
            object.__setattr__(self, "log_prob_method", None)
        elif self.log_prob_method not in LOG_PROB_METHODS:
            raise ValueError(f"unknown log_prob_method {self.log_prob_method!r}; choose one of {LOG_PROB_METHODS}")


@dataclass(frozen=True)
class EmbeddingCapabilities:
    """How estimators must treat the data of an embedding net.

    Arguments:
        set_axis: axis of ``x [*x_shape]`` the net treats as an unordered set (estimators then
            standardize ``x`` with one mean / std along it, keeping the pipeline permutation-invariant);
            ``None`` for ordered data.
    """

    set_axis: int | None = None

    def __post_init__(self) -> None:
        if self.set_axis is not None and (isinstance(self.set_axis, bool) or not isinstance(self.set_axis, int)
                                          or self.set_axis < 0):
            raise ValueError(f"set_axis must be a non-negative axis of x or None, got {self.set_axis!r}")


def _require_bool(record: object, *names: str) -> None:
    for name in names:
        if not isinstance(getattr(record, name), bool):
            raise TypeError(f"{type(record).__name__}.{name} must be True or False, got {getattr(record, name)!r}")


@dataclass(frozen=True)
class PluginSpec:
    """What a plugin registers under one name.

    Arguments:
        name: unique name within its kind, e.g. ``"toy_gaussian"``.
        description: one line for ``sbi-gen plugins``.
        factory: callable taking keyword options and returning the object.
        capabilities: the kind's typed record (:attr:`capabilities_type`), for factories that do not
            declare their own; a factory class that does gives the spec its record instead.
    """

    name: str
    description: str
    factory: Callable[..., Any]
    capabilities: Any = None

    #: the capabilities record of this kind of plugin (``None``: the kind has none)
    capabilities_type: ClassVar[type | None] = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"plugin name must be non-empty letters, digits, '_' or '-', got {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"factory of plugin {self.name!r} is not callable: {self.factory!r}")
        if self.capabilities_type is not None:
            object.__setattr__(self, "capabilities", self._declared_capabilities())

    def _declared_capabilities(self) -> Any:
        """The one capabilities record: the factory class's own, else the spec's, else the defaults."""
        kind = self.capabilities_type
        own = getattr(self.factory, "capabilities", None) if isinstance(self.factory, type) else None
        if isinstance(own, kind):
            if self.capabilities is not None and self.capabilities is not own:
                raise TypeError(
                    f"plugin {self.name!r}: {self.factory.__qualname__} declares its capabilities itself "
                    f"({own}); declare them once, on the class, and leave them out of the spec"
                )
            return own
        if self.capabilities is None:
            return kind()
        if not isinstance(self.capabilities, kind):
            raise TypeError(
                f"capabilities of plugin {self.name!r} must be a {kind.__name__} record, got "
                f"{type(self.capabilities).__name__} {self.capabilities!r}"
            )
        return self.capabilities


@dataclass(frozen=True)
class SimulatorSpec(PluginSpec):
    """A simulator: ``factory(**options)`` returns a :class:`sbi_gen.Simulator`.

    A :class:`~sbi_gen.Simulator` subclass derives its :class:`SimulatorCapabilities` from the
    methods it implements (and its ``suggested_estimator_options``); the spec takes them from it.
    """

    capabilities: SimulatorCapabilities | None = None
    capabilities_type: ClassVar[type] = SimulatorCapabilities


@dataclass(frozen=True)
class EstimatorSpec(PluginSpec):
    """A posterior estimator: ``factory(**options)`` returns a :class:`sbi_gen.PosteriorEstimator`.

    The factory must be a :class:`~sbi_gen.PosteriorEstimator` subclass, so that saved models can
    be loaded through it; its class attribute ``capabilities`` (an :class:`EstimatorCapabilities`)
    is the spec's, and its ``Options`` dataclass lists, types and documents its options.
    """

    capabilities: EstimatorCapabilities | None = None
    capabilities_type: ClassVar[type] = EstimatorCapabilities


@dataclass(frozen=True)
class EmbeddingSpec(PluginSpec):
    """An embedding net: ``factory(x_shape, output_features, **options)`` returns an ``nn.Module``
    mapping ``[B, *x_shape]`` to ``[B, output_features]``. When the user sets no size, a factory whose
    ``output_features`` has a default is called without it, and one without a default gets 32.

    A factory with a keyword parameter ``registry`` is given the registry that builds it, to
    resolve the plugins its options name (e.g. ``gw_svd``'s simulator) without the global one.
    """

    capabilities: EmbeddingCapabilities | None = None
    capabilities_type: ClassVar[type] = EmbeddingCapabilities


@hookspec
def sbi_gen_simulators() -> list[SimulatorSpec]:
    """Return the simulators this plugin provides."""


@hookspec
def sbi_gen_estimators() -> list[EstimatorSpec]:
    """Return the posterior estimators this plugin provides."""


@hookspec
def sbi_gen_embeddings() -> list[EmbeddingSpec]:
    """Return the embedding networks (summaries of ``x``) this plugin provides."""
