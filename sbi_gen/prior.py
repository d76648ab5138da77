"""Named priors over parameter vectors, with units, plot labels and a support.

A prior is a distribution over ``theta`` of shape ``[d]``. Each dimension is a
:class:`Parameter` with a name, an astropy unit, a plot label and, for an angle,
its period. Priors sample with an explicit :class:`torch.Generator` so
simulations are reproducible, and they describe themselves as JSON
(:meth:`Prior.to_config`) so saved models and simulation files carry the prior
they were made with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import DataError, PriorSupportError
from sbi_gen.parameters import Parameter, _as_parameters

__all__ = ["Parameter", "Prior", "UniformPrior", "GaussianPrior", "IndependentPrior", "LogNormalPrior",
           "prior_from_config"]


class Prior:
    """Base class: a distribution over ``theta`` of shape ``[d]``.

    Subclasses set ``low`` and ``high`` (the support, ``[d]`` tensors that may
    hold infinities) and implement :meth:`sample`, :meth:`log_prob` and
    :meth:`to_config`.
    """

    parameters: tuple[Parameter, ...]
    low: Tensor
    high: Tensor

    @property
    def dim(self) -> int:
        """Number of parameters ``d``."""
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        """Parameter names, in order."""
        return [p.name for p in self.parameters]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``[n, d]`` float32 samples."""
        raise NotImplementedError

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density ``[...]`` of ``theta`` ``[..., d]``; ``-inf`` outside the support."""
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description that :func:`prior_from_config` rebuilds."""
        raise NotImplementedError

    def contains(self, theta: Tensor) -> Tensor:
        """Boolean ``[...]``: whether each ``theta`` ``[..., d]`` lies in the support."""
        low, high = self.low.to(theta), self.high.to(theta)
        return ((theta >= low) & (theta <= high)).all(dim=-1)

    def check_contains(self, theta: Tensor, what: str = "theta") -> None:
        """Raise :class:`PriorSupportError` naming the first parameter outside the support."""
        inside = self.contains(theta)
        if bool(inside.all()):
            return
        flat = theta.reshape(-1, self.dim)
        row = int((~inside.reshape(-1)).nonzero()[0])
        low, high = self.low.to(flat), self.high.to(flat)
        bad = ((flat[row] < low) | (flat[row] > high)).nonzero()[0].tolist()
        names = ", ".join(
            f"{self.parameters[j].name}={float(flat[row, j]):.6g} not in [{float(low[j]):.6g}, {float(high[j]):.6g}]"
            for j in bad
        )
        count = int((~inside).sum())
        raise PriorSupportError(
            f"{what}: {count} row(s) lie outside the prior support; first is row {row}: {names}"
        )

    def _parameters_config(self) -> list[dict[str, Any]]:
        # ``period`` only where set, so configs of priors on the line read as before
        return [{k: v for k, v in asdict(p).items() if k != "period" or v is not None} for p in self.parameters]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.names)})"


class UniformPrior(Prior):
    """Independent uniform distributions on ``[low_i, high_i]``.

    Arguments:
        low, high: bounds, sequences of length ``d`` in the parameters' units.
        parameters: names / units / labels of the ``d`` dimensions.
    """

    def __init__(
        self,
        low: Sequence[float] | Tensor,
        high: Sequence[float] | Tensor,
        parameters: Sequence[Parameter | str | dict] | None = None,
    ) -> None:
        self.low = torch.as_tensor(low, dtype=torch.float64).reshape(-1)
        self.high = torch.as_tensor(high, dtype=torch.float64).reshape(-1)
        if self.low.shape != self.high.shape:
            raise ValueError(f"low {tuple(self.low.shape)} and high {tuple(self.high.shape)} differ in shape")
        if not bool(torch.isfinite(self.low).all() & torch.isfinite(self.high).all()):
            raise ValueError("uniform prior bounds must be finite")
        if not bool((self.high > self.low).all()):
            raise ValueError(f"uniform prior needs high > low, got low={self.low.tolist()}, high={self.high.tolist()}")
        self.parameters = _as_parameters(parameters, self.low.numel())
        self._log_volume = float(torch.log(self.high - self.low).sum())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        unit = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * unit).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        inside = self.contains(theta)
        value = torch.full(inside.shape, -self._log_volume, dtype=theta.dtype, device=theta.device)
        return value.masked_fill(~inside, -math.inf)

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "uniform",
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "parameters": self._parameters_config(),
        }


class GaussianPrior(Prior):
    """A multivariate normal ``N(mean, covariance)`` with unbounded support.

    Arguments:
        mean: ``[d]``.
        covariance: ``[d, d]`` symmetric positive definite, or ``[d]`` variances.
        parameters: names / units / labels of the ``d`` dimensions.
    """

    def __init__(
        self,
        mean: Sequence[float] | Tensor,
        covariance: Sequence[float] | Sequence[Sequence[float]] | Tensor,
        parameters: Sequence[Parameter | str | dict] | None = None,
    ) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        cov = torch.as_tensor(covariance, dtype=torch.float64)
        if not (bool(torch.isfinite(self.mean).all()) and bool(torch.isfinite(cov).all())):
            raise ValueError("mean and covariance of a Gaussian prior must be finite (no inf or NaN)")
        if cov.ndim == 1:
            cov = torch.diag(cov)
        d = self.mean.numel()
        if cov.shape != (d, d):
            raise ValueError(f"covariance must be [{d}, {d}] or [{d}], got {tuple(cov.shape)}")
        # symmetric as given: a JSON round trip is exact, so any asymmetry beyond rounding of the largest
        # entry (64 ulp) is a typo that the Cholesky factor would silently resolve one way
        asymmetry = float((cov - cov.T).abs().max())
        if asymmetry > 64 * torch.finfo(torch.float64).eps * float(cov.abs().max()):
            i, j = divmod(int((cov - cov.T).abs().argmax()), d)
            raise ValueError(
                f"covariance of a Gaussian prior must be symmetric; entry [{i}][{j}] = {float(cov[i, j]):g} but "
                f"[{j}][{i}] = {float(cov[j, i]):g}"
            )
        try:
            self.scale_tril = torch.linalg.cholesky(cov)
        except torch.linalg.LinAlgError:
            raise ValueError("covariance of a Gaussian prior must be positive definite") from None
        self.covariance = cov
        self.parameters = _as_parameters(parameters, d)
        self.low = torch.full((d,), -math.inf, dtype=torch.float64)
        self.high = torch.full((d,), math.inf, dtype=torch.float64)
        self._distribution = torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean + noise @ self.scale_tril.T).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        return self._distribution.log_prob(theta.to(torch.float64)).to(theta.dtype)

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "gaussian",
            "mean": self.mean.tolist(),
            "covariance": self.covariance.tolist(),
            "parameters": self._parameters_config(),
        }


class IndependentPrior(Prior):
    """Independent one-dimensional distributions on ``[low_i, high_i]``, each of a named kind.

    Kinds (densities normalized on the interval):

    - ``"uniform"``: constant, ``1 / (high - low)``;
    - ``"sine"``: ``sin(theta) / (cos(low) - cos(high))`` on ``[0, pi]`` or a sub-interval, i.e.
      ``cos(theta)`` uniform: an isotropic inclination or polar angle;
    - ``"cosine"``: ``cos(theta) / (sin(high) - sin(low))`` on ``[-pi/2, pi/2]`` or a sub-interval, i.e.
      ``sin(theta)`` uniform: an isotropic declination or latitude.

    The support is the box ``[low, high]`` (finite), so estimators map it to the real line as for
    :class:`UniformPrior`. Samples are drawn by inverting the CDF in float64.

    Arguments:
        kinds: one of the kinds above per dimension.
        low, high: bounds, sequences of length ``d`` in the parameters' units (radians for sine / cosine).
        parameters: names / units / labels of the ``d`` dimensions.

    Example:
        >>> prior = IndependentPrior(["uniform", "cosine"], [0, -math.pi / 2], [2 * math.pi, math.pi / 2])
        >>> prior.sample(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 2])
    """

    KINDS = ("uniform", "sine", "cosine")
    #: the widest interval on which each kind's density is non-negative
    _DOMAINS = {"uniform": (-math.inf, math.inf), "sine": (0.0, math.pi), "cosine": (-math.pi / 2, math.pi / 2)}

    def __init__(
        self,
        kinds: Sequence[str],
        low: Sequence[float] | Tensor,
        high: Sequence[float] | Tensor,
        parameters: Sequence[Parameter | str | dict] | None = None,
    ) -> None:
        self.kinds = tuple(str(k) for k in kinds)
        self.low = torch.as_tensor(low, dtype=torch.float64).reshape(-1)
        self.high = torch.as_tensor(high, dtype=torch.float64).reshape(-1)
        if not len(self.kinds) == self.low.numel() == self.high.numel():
            raise ValueError(
                f"need one kind, low and high per dimension; got {len(self.kinds)} kinds, "
                f"{self.low.numel()} lows and {self.high.numel()} highs"
            )
        self.parameters = _as_parameters(parameters, len(self.kinds))
        for i, (kind, lo, hi) in enumerate(zip(self.kinds, self.low.tolist(), self.high.tolist())):
            name = self.parameters[i].name
            if kind not in self.KINDS:
                raise ValueError(f"parameter {name!r}: unknown kind {kind!r}; expected one of {self.KINDS}")
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"parameter {name!r}: need finite low < high, got [{lo}, {hi}]")
            domain = self._DOMAINS[kind]
            if lo < domain[0] or hi > domain[1]:
                raise ValueError(
                    f"parameter {name!r}: a {kind} density needs [low, high] inside [{domain[0]:.6g}, "
                    f"{domain[1]:.6g}] (where it is non-negative), got [{lo}, {hi}]"
                )
        self._mask = {kind: torch.tensor([k == kind for k in self.kinds]) for kind in self.KINDS}
        lo, hi = self.low, self.high
        # the normalization of each kind's density on [low, high]
        self._log_norm = torch.where(
            self._mask["sine"], torch.log(torch.cos(lo) - torch.cos(hi)),
            torch.where(self._mask["cosine"], torch.log(torch.sin(hi) - torch.sin(lo)), torch.log(hi - lo)),
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        unit = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        lo, hi = self.low, self.high
        theta = lo + (hi - lo) * unit
        sine = torch.arccos((torch.cos(lo) - unit * (torch.cos(lo) - torch.cos(hi))).clamp(-1.0, 1.0))
        cosine = torch.arcsin((torch.sin(lo) + unit * (torch.sin(hi) - torch.sin(lo))).clamp(-1.0, 1.0))
        theta = torch.where(self._mask["sine"], sine, torch.where(self._mask["cosine"], cosine, theta))
        return torch.maximum(torch.minimum(theta, hi), lo).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        inside = self.contains(theta)
        value = theta.to(torch.float64)
        # clamp: a float32 value rounded onto a bound such as pi may give sin < 0 by ~1e-7 (density 0 there)
        log_density = torch.where(
            self._mask["sine"], torch.log(torch.sin(value).clamp_min(0.0)),
            torch.where(self._mask["cosine"], torch.log(torch.cos(value).clamp_min(0.0)), torch.zeros_like(value)),
        )
        result = (log_density - self._log_norm).sum(-1).masked_fill(~inside, -math.inf)
        return result.to(theta.dtype)

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "independent",
            "kinds": list(self.kinds),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "parameters": self._parameters_config(),
        }


class LogNormalPrior(Prior):
    """Independent log-normal distributions: ``log theta_i ~ N(loc_i, scale_i^2)``, support ``(0, inf)``.

    Arguments:
        loc, scale: ``[d]`` mean and standard deviation of ``log theta`` (``scale > 0``).
        parameters: names / units / labels of the ``d`` dimensions.
    """

    def __init__(
        self,
        loc: Sequence[float] | Tensor,
        scale: Sequence[float] | Tensor,
        parameters: Sequence[Parameter | str | dict] | None = None,
    ) -> None:
        self.loc = torch.as_tensor(loc, dtype=torch.float64).reshape(-1)
        self.scale = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
        if self.loc.shape != self.scale.shape:
            raise ValueError(f"loc {tuple(self.loc.shape)} and scale {tuple(self.scale.shape)} differ in shape")
        if not bool(torch.isfinite(self.loc).all() & torch.isfinite(self.scale).all() & (self.scale > 0).all()):
            raise ValueError(f"a log-normal prior needs finite loc and scale > 0, got scale={self.scale.tolist()}")
        self.parameters = _as_parameters(parameters, self.loc.numel())
        self.low = torch.zeros_like(self.loc)
        self.high = torch.full_like(self.loc, math.inf)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return torch.exp(self.loc + self.scale * noise).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        value = theta.to(torch.float64)
        inside = (value > 0).all(-1)
        log_value = torch.log(value.clamp_min(torch.finfo(torch.float64).tiny))
        standard = (log_value - self.loc) / self.scale
        density = (-0.5 * standard**2 - torch.log(self.scale) - 0.5 * math.log(2 * math.pi) - log_value).sum(-1)
        return density.masked_fill(~inside, -math.inf).to(theta.dtype)

    def to_config(self) -> dict[str, Any]:
        return {"type": "lognormal", "loc": self.loc.tolist(), "scale": self.scale.tolist(),
                "parameters": self._parameters_config()}


def prior_from_config(config: dict[str, Any]) -> Prior:
    """Rebuild a prior from :meth:`Prior.to_config` output or a user's simple spec.

    Accepted specs: ``{"type": "uniform", "low": [...], "high": [...]}``,
    ``{"type": "gaussian", "mean": [...], "covariance": [[...]] or [...]}`` and
    ``{"type": "independent", "kinds": [...], "low": [...], "high": [...]}``
    (:class:`IndependentPrior`) and ``{"type": "lognormal", "loc": [...], "scale": [...]}``
    (:class:`LogNormalPrior`), each with optional ``"parameters"`` (names, or
    dicts with name / unit / label / period).
    """
    if not isinstance(config, dict) or "type" not in config:
        raise DataError(
            f"a prior spec is a dict with a 'type' key ('uniform', 'gaussian', 'independent' or 'lognormal'), "
            f"got {config!r}"
        )
    kind = config["type"]
    parameters = config.get("parameters")
    for key in ("low", "high", "mean", "covariance", "loc", "scale"):
        if key in config:
            _require_numbers(config[key], f"{kind} prior spec: {key!r}")
    kinds = config.get("kinds")
    if kinds is not None and not (isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)):
        raise DataError(f"{kind} prior spec: 'kinds' must be a list of names, got {config['kinds']!r}")
    if parameters is not None and not isinstance(parameters, list):
        raise DataError(f"{kind} prior spec: 'parameters' must be a list of names or dicts, got {parameters!r}")
    try:
        if kind == "uniform":
            return UniformPrior(config["low"], config["high"], parameters)
        if kind == "gaussian":
            return GaussianPrior(config["mean"], config["covariance"], parameters)
        if kind == "independent":
            return IndependentPrior(config["kinds"], config["low"], config["high"], parameters)
        if kind == "lognormal":
            return LogNormalPrior(config["loc"], config["scale"], parameters)
    except KeyError as missing:
        raise DataError(f"{kind} prior spec is missing the key {missing}") from None
    except (TypeError, ValueError) as error:
        raise DataError(f"{kind} prior spec: {error}") from None
    raise DataError(f"unknown prior type {kind!r}; expected 'uniform', 'gaussian', 'independent' or 'lognormal'")


def _require_numbers(value: Any, what: str) -> None:
    """A list of numbers (or of lists of numbers), as JSON gives them; else a :class:`DataError` naming ``what``."""
    def numeric(item: Any) -> bool:
        if isinstance(item, list):
            return bool(item) and all(numeric(element) for element in item)
        return isinstance(item, (int, float)) and not isinstance(item, bool)

    if not (isinstance(value, list) and numeric(value)):
        raise DataError(f"{what} must be a non-empty list of numbers, got {value!r}")
