"""The simulator interface every simulator plugin implements.

A simulator draws ``x ~ p(x | theta)`` for a batch of parameters at once:
``simulate(theta [n, d], generator) -> x [n, *x_shape]`` (float32), the same
output for the same generator seed. It carries its prior. Where the physics
allows it, a simulator also offers its exact ``log_likelihood`` and a
``reference_posterior``; calibration and benchmarks then get ground truth. A
benchmark task whose reference posteriors exist only as published samples for
fixed observations (sbibm's) offers ``reference_observations`` instead.

A simulator whose cost sits in a deterministic part (a noise-free waveform)
may also split itself: ``simulate_signal(theta) -> signal`` is the expensive
part, ``simulate_from_signal(theta, signal, generator) -> x`` the cheap one
(noise, and the parameters named in ``redrawn_parameters``, which act on the
signal analytically). Training then stores signals once and re-draws the
cheap part for every batch (:mod:`sbi_gen.redraw`).

What a simulator offers is its :attr:`Simulator.capabilities`, a
:class:`~sbi_gen.hookspecs.SimulatorCapabilities` record derived once per class
from the methods it implements and its ``suggested_estimator_options``; the
plugin's spec shares that record, so nothing is declared twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from sbi_gen.hookspecs import SimulatorCapabilities
from sbi_gen.prior import Prior

__all__ = ["Simulator", "ReferencePosterior"]


@runtime_checkable
class ReferencePosterior(Protocol):
    """A simulator's true posterior for a batch of ``B`` observations (e.g. an analytic one).

    :func:`sbi_gen.posterior.as_posterior` turns it into a :class:`~sbi_gen.posterior.Posterior`.

    ``sample(n, generator)`` returns ``[n, B, d]``; ``log_prob(theta)`` takes
    ``[..., B, d]`` and returns ``[..., B]``.
    """

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, theta: Tensor) -> Tensor: ...


class Simulator(ABC):
    """Base class of simulator plugins.

    Subclasses set ``prior`` and ``x_shape`` in ``__init__`` and implement
    :meth:`simulate`. They record the keyword options they were built with in
    ``self.options`` (JSON-serializable) so a saved model can name them.
    """

    #: registered plugin name, filled in by the registry
    name: str = ""
    prior: Prior
    x_shape: tuple[int, ...]
    options: dict[str, Any]
    #: estimator options suited to this simulator's data, e.g. ``{"embedding": "deepsets"}``
    suggested_estimator_options: ClassVar[dict[str, Any]] = {}
    #: names of the parameters :meth:`simulate_from_signal` applies (re-drawn for every training batch)
    redrawn_parameters: ClassVar[tuple[str, ...]] = ()
    #: optional names of the axes of ``x`` (e.g. ``("detector", "real/imaginary part", "frequency bin")``): a
    #: saved model records them, and an observation of the wrong shape is explained by them
    x_axes: ClassVar[tuple[str, ...] | None] = None
    #: shape of one :meth:`simulate_signal` row, for simulators with the signal split
    signal_shape: tuple[int, ...]
    #: what this class offers: derived for each subclass from the methods it implements
    capabilities: ClassVar[SimulatorCapabilities] = SimulatorCapabilities()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        split = (cls.simulate_signal is not Simulator.simulate_signal,
                 cls.simulate_from_signal is not Simulator.simulate_from_signal)
        if any(split) and not all(split):
            raise TypeError(f"{cls.__name__} implements only one of simulate_signal and simulate_from_signal; "
                            "the signal split needs both")
        cls.capabilities = SimulatorCapabilities(
            has_log_likelihood=cls.log_likelihood is not Simulator.log_likelihood,
            has_reference_posterior=cls.reference_posterior is not Simulator.reference_posterior,
            suggested_estimator_options=cls.suggested_estimator_options,
            has_signal_split=all(split),
            redrawn_parameters=cls.redrawn_parameters,
            has_reference_observations=cls.reference_observations is not Simulator.reference_observations,
        )

    @abstractmethod
    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Simulate ``x`` ``[n, *x_shape]`` (float32) for ``theta`` ``[n, d]``."""

    def simulate_signal(self, theta: Tensor) -> Tensor:
        """The expensive, deterministic part: ``signal [n, *signal_shape]`` (float32) for ``theta [n, d]``.

        It may depend on ``theta`` only through the parameters *not* in
        :attr:`redrawn_parameters`; ``simulate_from_signal(theta, simulate_signal(theta), g)``
        must be distributed as ``simulate(theta, g)``.
        """
        raise NotImplementedError(f"simulator {self.name!r} has no signal split")

    def simulate_from_signal(self, theta: Tensor, signal: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The cheap part: ``x [n, *x_shape]`` (float32) from ``theta [n, d]`` and its ``signal``."""
        raise NotImplementedError(f"simulator {self.name!r} has no signal split")

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Exact ``log p(x | theta)``: ``theta`` ``[..., B, d]``, ``x`` ``[B, *x_shape]`` -> ``[..., B]``."""
        raise NotImplementedError(f"simulator {self.name!r} has no tractable likelihood")

    def reference_posterior(self, x: Tensor) -> ReferencePosterior:
        """The true posterior for observations ``x`` ``[B, *x_shape]``, where known."""
        raise NotImplementedError(f"simulator {self.name!r} has no reference posterior")

    def reference_observations(self) -> tuple[Tensor, Tensor, Tensor]:
        """Fixed benchmark observations with reference posterior samples, where a benchmark publishes them.

        Returns ``theta_true [B, d]``, ``x [B, *x_shape]`` and ``samples [n, B, d]`` (``n`` reference draws
        per observation), in the benchmark's order (sbibm: observations 1 to 10).
        """
        raise NotImplementedError(f"simulator {self.name!r} publishes no reference observations")

    @property
    def has_log_likelihood(self) -> bool:
        """Whether :meth:`log_likelihood` is implemented (``capabilities.has_log_likelihood``)."""
        return self.capabilities.has_log_likelihood

    @property
    def has_reference_posterior(self) -> bool:
        """Whether :meth:`reference_posterior` is implemented (``capabilities.has_reference_posterior``)."""
        return self.capabilities.has_reference_posterior

    def describe(self) -> dict[str, Any]:
        """JSON description: name, options, prior and observation shape."""
        return {
            "name": self.name,
            "options": dict(getattr(self, "options", {})),
            "prior": self.prior.to_config(),
            "x_shape": list(self.x_shape),
            **({"x_axes": list(self.x_axes)} if self.x_axes else {}),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, d={self.prior.dim}, x_shape={self.x_shape})"
