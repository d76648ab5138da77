"""Group-equivariant NPE (GNPE): a posterior conditioned on data aligned by proxies of some parameters.

Some parameters move the data in a known way (a time shift is a phase ramp, a chirp mass mostly
a known chirp). A network that must learn those motions from data spends its capacity on them;
GNPE (Dax et al. 2022, ICLR, arXiv:2111.13139) removes them instead. For parameters ``a`` (in
coordinates ``y = c(a)`` of the simulator's choice) a *proxy* ``y_hat = y + eps`` is drawn with a
uniform kernel ``|eps_j| <= kappa_j``, the data are aligned on it, ``x' = align(x, y_hat)``, and a
network learns ``q(theta' | x', y_hat)`` with ``theta'`` equal to ``theta`` except that ``a`` is
replaced by ``delta = y - y_hat`` (in ``[-kappa, kappa]``). Since ``p(theta | x, y_hat) ∝ p(theta | x)
kappa(y_hat | theta)``, Gibbs sampling ``y_hat | theta`` (the kernel) and ``theta | x, y_hat`` (the
network) has the posterior as its ``theta``-marginal (:mod:`sbi_gen.gnpe_posterior`).

A simulator offers alignment by defining (see ``gw``, :mod:`sbi_gen_simulators.gw_alignment`):

- ``proxy_parameters``: names of the prior's parameters that get proxies; ``proxy_names`` and
  ``proxy_units``: names and units of their coordinates ``y``;
- ``proxy_half_widths``: the default kernel half widths ``kappa`` (in ``proxy_units``);
- ``to_proxy_coordinates(a [n, k]) -> y [n, k]``, ``from_proxy_coordinates(y) -> a`` and
  ``log_abs_det_proxy_coordinates(a) -> [n]`` (``log |dy / da|``);
- ``align(x [n, *x_shape], y_hat [n, k]) -> [n, *x_shape]``, which must map the noise model to
  itself (a unit-modulus rotation of white noise does).

This module holds the bookkeeping (:class:`ProxyAlignment`) and the training pairs
(:class:`AlignedPairs`, a pair source over any other one: stored pairs, a store, or pairs re-drawn
from signals), so aligned training keeps the fresh noise of :mod:`sbi_gen.redraw`. The network sees
``x_a = [flatten(align(x, y_hat)), y_hat]`` (``[n, prod(x_shape) + k]``); the ``proxy_context``
embedding splits it again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.pairs import SimulationSet
from sbi_gen.prior import IndependentPrior, Parameter, Prior, UniformPrior
from sbi_gen.seeding import RandomStreams

__all__ = ["AlignedPairs", "ProxyAlignment", "has_alignment"]

_ALIGNMENT_ATTRIBUTES = ("proxy_parameters", "proxy_names", "proxy_units", "proxy_half_widths",
                         "to_proxy_coordinates", "from_proxy_coordinates", "log_abs_det_proxy_coordinates", "align")
#: rows aligned at a time when scanning an in-memory set for the standardization
_SCAN_ROWS = 4096


def has_alignment(simulator) -> bool:
    """Whether ``simulator`` defines everything GNPE needs (module docstring)."""
    return all(hasattr(simulator, name) for name in _ALIGNMENT_ATTRIBUTES)


class ProxyAlignment:
    """Proxies, kernel and aligned parameters of one simulator and prior.

    Arguments:
        simulator: a simulator with alignment (module docstring).
        prior: the prior of ``theta [.., d]`` (default: the simulator's); a :class:`UniformPrior` or
            :class:`IndependentPrior`, whose proxy columns are replaced by ``U(-kappa, kappa)`` in
            :attr:`aligned_prior`.
        half_widths: kernel half widths ``kappa [k]`` in ``proxy_units`` (default: the simulator's).
    """

    def __init__(self, simulator, prior: Prior | None = None, half_widths: Any = None) -> None:
        name = getattr(simulator, "name", "") or type(simulator).__name__
        if not has_alignment(simulator):
            missing = [a for a in _ALIGNMENT_ATTRIBUTES if not hasattr(simulator, a)]
            raise DataError(f"simulator {name!r} cannot align its data on proxies (GNPE): it lacks {missing}")
        self.simulator, self.prior = simulator, prior or simulator.prior
        unknown = [p for p in simulator.proxy_parameters if p not in self.prior.names]
        if unknown:
            raise DataError(f"proxy parameters {unknown} of simulator {name!r} are not in the prior {self.prior.names}")
        self.columns = [self.prior.names.index(p) for p in simulator.proxy_parameters]
        widths = simulator.proxy_half_widths if half_widths is None else half_widths
        self.half_widths = torch.as_tensor(widths, dtype=torch.float64).reshape(-1)
        if self.half_widths.numel() != len(self.columns) or not bool((self.half_widths > 0).all()):
            raise DataError(f"GNPE needs {len(self.columns)} positive kernel half widths "
                            f"({', '.join(simulator.proxy_names)}), got {widths!r}")
        self.aligned_prior = _aligned_prior(self.prior, self.columns, self.half_widths, simulator)
        self.x_shape = (math.prod(simulator.x_shape) + len(self.columns),)

    @property
    def num_proxies(self) -> int:
        return len(self.columns)

    def coordinates(self, theta: Tensor) -> Tensor:
        """Proxy coordinates ``y [n, k]`` of ``theta [n, d]`` (float64)."""
        return self.simulator.to_proxy_coordinates(theta[:, self.columns].double())

    def draw_proxies(self, theta: Tensor, generator: torch.Generator | None) -> Tensor:
        """``y_hat = y(theta) + eps``, ``eps ~ U(-kappa, kappa)``: ``[n, k]`` float64."""
        unit = torch.rand(len(theta), self.num_proxies, generator=generator, dtype=torch.float64)
        return self.coordinates(theta) + (2.0 * unit - 1.0) * self.half_widths

    def context(self, x: Tensor, proxy: Tensor) -> Tensor:
        """What the network conditions on: ``[flatten(align(x, proxy)), proxy]``, ``[n, prod(x_shape) + k]``."""
        aligned = self.simulator.align(torch.as_tensor(x), proxy)
        return torch.cat([aligned.reshape(len(proxy), -1).float(), proxy.float()], 1)

    def to_aligned(self, theta: Tensor, proxy: Tensor) -> Tensor:
        """``theta' [n, d]``: ``theta`` with the proxy columns replaced by ``delta = y - y_hat`` (float32)."""
        aligned = theta.double().clone()
        aligned[:, self.columns] = self.coordinates(theta) - proxy
        return aligned.float()

    def from_aligned(self, aligned: Tensor, proxy: Tensor) -> Tensor:
        """The inverse of :meth:`to_aligned`: ``theta [n, d]`` (float32) from ``theta'`` and ``proxy``."""
        theta = aligned.double().clone()
        theta[:, self.columns] = self.simulator.from_proxy_coordinates(proxy + aligned[:, self.columns].double())
        return theta.float()

    def log_jacobian(self, theta: Tensor) -> Tensor:
        """``log |d theta' / d theta|`` ``[n]`` at fixed proxies (float64)."""
        return torch.as_tensor(self.simulator.log_abs_det_proxy_coordinates(theta[:, self.columns].double()))

    def log_kernel(self, proxy: Tensor, theta: Tensor) -> Tensor:
        """``log kappa(y_hat | theta)`` ``[n]``: ``-sum log(2 kappa)`` inside the kernel, ``-inf`` outside."""
        inside = ((proxy - self.coordinates(theta)).abs() <= self.half_widths).all(-1)
        value = -torch.log(2.0 * self.half_widths).sum()
        return torch.where(inside, value, torch.tensor(-math.inf, dtype=torch.float64))

    def aligned_pair(self, theta: Tensor, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One training pair per row: ``(theta' [n, d], x_a [n, prod(x_shape) + k])`` with fresh proxies."""
        proxy = self.draw_proxies(theta, generator)
        return self.to_aligned(theta, proxy), self.context(x, proxy)

    def to_config(self) -> dict[str, Any]:
        sim = self.simulator
        return {"proxy_parameters": list(sim.proxy_parameters), "proxy_names": list(sim.proxy_names),
                "proxy_units": list(sim.proxy_units), "half_widths": self.half_widths.tolist()}


def _aligned_prior(prior: Prior, columns: list[int], half_widths: Tensor, simulator) -> Prior:
    """``prior`` with each proxy column replaced by ``U(-kappa, kappa)``: the exact law of ``delta``."""
    low, high = prior.low.clone().double(), prior.high.clone().double()
    low[columns], high[columns] = -half_widths, half_widths
    parameters = list(prior.parameters)
    for column, name, unit in zip(columns, simulator.proxy_names, simulator.proxy_units):
        parameters[column] = Parameter(f"delta_{name}", unit, f"delta {name}")
    if isinstance(prior, UniformPrior):
        return UniformPrior(low, high, parameters)
    if isinstance(prior, IndependentPrior):
        kinds = ["uniform" if i in columns else kind for i, kind in enumerate(prior.kinds)]
        return IndependentPrior(kinds, low, high, parameters)
    raise DataError(f"GNPE needs a UniformPrior or IndependentPrior (a box whose proxy columns can be replaced), "
                    f"got {type(prior).__name__}")


class AlignedPairs:
    """A pair source of aligned training pairs ``(theta', x_a)`` over another pair source.

    Arguments:
        pairs: the underlying ``(theta, x)`` pairs: a :class:`~sbi_gen.pairs.SimulationSet`, a
            :class:`~sbi_gen.redraw.RedrawnPairs` (fresh noise every batch) or a store's pairs.
        alignment: the :class:`ProxyAlignment` of their simulator and prior.

    Batch ``k`` of epoch ``e`` draws its proxies from
    ``RandomStreams(seed).child("gnpe").child(f"train/{e}").generator(str(k))`` (validation: the same
    every epoch), so a fit is bit-for-bit the same for a seed, as with :mod:`sbi_gen.redraw`.
    """

    def __init__(self, pairs: Any, alignment: ProxyAlignment) -> None:
        self.pairs, self.alignment = pairs, alignment
        self.prior = alignment.aligned_prior
        self.x_shape = alignment.x_shape

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int,
                validation_fraction: float) -> Iterator[tuple[Tensor, Tensor]]:
        streams = RandomStreams(seed).child("gnpe").child(f"train/{epoch}" if split == "train" else "validation")
        source = self.pairs.batches(split, batch_size, epoch=epoch, seed=seed, validation_fraction=validation_fraction)
        for k, (theta, x) in enumerate(source):
            device = theta.device
            aligned = self.alignment.aligned_pair(theta.cpu(), x.cpu(), streams.generator(str(k)))
            yield aligned[0].to(device), aligned[1].to(device)

    def scan(self, visit: Callable[[Tensor, Tensor], None]) -> dict[str, Any]:
        """One pass of aligned pairs (fixed proxies of their own) for the standardization."""
        streams, counter = RandomStreams(0).child("gnpe scan"), iter(range(1 << 62))

        def align_and_visit(theta: Tensor, x: Tensor) -> None:
            visit(*self.alignment.aligned_pair(theta.cpu(), x.cpu(), streams.generator(str(next(counter)))))

        if hasattr(self.pairs, "scan"):
            return self.pairs.scan(align_and_visit)
        if not isinstance(self.pairs, SimulationSet):
            raise DataError("GNPE trains on a SimulationSet, RedrawnPairs or store pairs, got "
                            f"{type(self.pairs).__name__}")
        for start in range(0, len(self.pairs), _SCAN_ROWS):
            align_and_visit(self.pairs.theta[start : start + _SCAN_ROWS], self.pairs.x[start : start + _SCAN_ROWS])
        return {"num_pairs": len(self.pairs)}

    def describe(self) -> dict[str, Any]:
        inner = self.pairs.describe() if hasattr(self.pairs, "describe") else {"in_memory": True}
        return {"gnpe": self.alignment.to_config(), "pairs": inner}
