"""The plugin contract: the pluggy hooks a plugin may implement.

A plugin is a module (or object) exposed through the ``sbi_gen`` entry-point
group. It implements any of the hooks below with the :data:`hookimpl` marker;
each hook returns a list of *spec records* so the registry can list, validate
and attribute every name to the distribution that provides it.

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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

__all__ = [
    "PROJECT_NAME",
    "hookspec",
    "hookimpl",
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


@dataclass(frozen=True)
class PluginSpec:
    """What a plugin registers under one name.

    Arguments:
        name: unique name within its kind, e.g. ``"toy_gaussian"``.
        description: one line for ``sbi-gen plugins``.
        factory: callable taking keyword options and returning the object.
        capabilities: free-form facts, e.g. ``{"has_log_prob": True}``.
    """

    name: str
    description: str
    factory: Callable[..., Any]
    capabilities: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"plugin name must be non-empty letters, digits, '_' or '-', got {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"factory of plugin {self.name!r} is not callable: {self.factory!r}")


class SimulatorSpec(PluginSpec):
    """A simulator: ``factory(**options)`` returns a :class:`sbi_gen.Simulator`."""


class EstimatorSpec(PluginSpec):
    """A posterior estimator: ``factory(**options)`` returns a :class:`sbi_gen.PosteriorEstimator`.

    The factory must be a :class:`~sbi_gen.PosteriorEstimator` subclass so that
    saved models can be loaded through it. Capabilities: ``has_log_prob``
    (bool) and ``log_prob_method`` (``"exact"``, ``"ode"``, ...).
    """


class EmbeddingSpec(PluginSpec):
    """An embedding net: ``factory(x_shape, output_features, **options)`` returns an ``nn.Module``
    mapping ``[B, *x_shape]`` to ``[B, output_features]``."""


@hookspec
def sbi_gen_simulators() -> list[SimulatorSpec]:
    """Return the simulators this plugin provides."""


@hookspec
def sbi_gen_estimators() -> list[EstimatorSpec]:
    """Return the posterior estimators this plugin provides."""


@hookspec
def sbi_gen_embeddings() -> list[EmbeddingSpec]:
    """Return the embedding networks (summaries of ``x``) this plugin provides."""
