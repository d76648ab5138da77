"""The posterior for fixed observations: the one object refinement, calibration, the pipeline and the benchmark use.

``estimator.posterior(x)`` returns a :class:`Posterior` for ``B`` observations
``x [B, *x_shape]``: ``sample(n, generator) -> [n, B, d]``, ``log_prob(theta) -> [n, B]``
where the estimator has densities, and what a consumer must know to trust them
(:attr:`Posterior.has_log_prob`, :attr:`Posterior.log_prob_method`), with the
prior and the observations it conditions on. Consumers read those typed facts
instead of probing objects with ``getattr``.

Other posteriors (a simulator's reference posterior, a user's object with
``sample`` and perhaps ``log_prob``) enter through :func:`as_posterior`, the one
place that inspects a foreign object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sbi_gen.hookspecs import EstimatorCapabilities
from sbi_gen.prior import Prior

__all__ = ["Posterior", "as_posterior"]

SampleFn = Callable[[int, "torch.Generator | None"], Tensor]
LogProbFn = Callable[[Tensor], Tensor]


class Posterior:
    """``q(theta | x)`` for fixed observations ``x [B, *x_shape]``.

    Arguments:
        sample: ``(n, generator) -> [n, B, d]``.
        log_prob: ``theta [n, B, d] (or [B, d]) -> [n, B] (or [B])``; ``None`` if there are no densities.
        capabilities: whether and how ``log_prob`` is computed (``has_log_prob`` must agree with ``log_prob``).
        prior: the prior the posterior is defined on, if known.
        x: the observations ``[B, *x_shape]``, if known.
        name: what produced it (for messages), e.g. the estimator's plugin name.
        sample_with_log_prob: ``(n, generator) -> (theta [n, B, d], log_q [n, B])``, draws with the log
            density of the proposal they came from, for a posterior whose draws have a density on a larger
            space but no marginal one (GNPE, :mod:`sbi_gen.gnpe_posterior`); importance sampling uses it.
    """

    def __init__(
        self, sample: SampleFn, log_prob: LogProbFn | None = None, *, capabilities: EstimatorCapabilities | None = None,
        prior: Prior | None = None, x: Tensor | None = None, name: str = "posterior",
        sample_with_log_prob: Callable[[int, torch.Generator | None], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        capabilities = capabilities or EstimatorCapabilities(has_log_prob=log_prob is not None)
        if capabilities.has_log_prob != (log_prob is not None):
            raise ValueError(f"{name}: capabilities say has_log_prob={capabilities.has_log_prob}, but log_prob is "
                             f"{'missing' if log_prob is None else 'given'}")
        self._sample, self._log_prob = sample, log_prob
        self.sample_with_log_prob = sample_with_log_prob
        self.capabilities, self.prior, self.x, self.name = capabilities, prior, x, name

    @property
    def has_log_prob(self) -> bool:
        """Whether :meth:`log_prob` is available."""
        return self.capabilities.has_log_prob

    @property
    def log_prob_method(self) -> str | None:
        """How :meth:`log_prob` is computed (``"exact"``, ``"ode"``), ``None`` without densities."""
        return self.capabilities.log_prob_method

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, d]`` posterior draws."""
        return self._sample(n, generator)

    def log_prob(self, theta: Tensor) -> Tensor:
        """``log q(theta | x)`` ``[n, B]`` for ``theta [n, B, d]`` (``[B]`` for ``[B, d]``)."""
        if self._log_prob is None:
            raise NotImplementedError(f"{self.name} has no log_prob")
        return self._log_prob(theta)

    def __repr__(self) -> str:
        batch = "?" if self.x is None else len(self.x)
        return f"Posterior({self.name}, B={batch}, log_prob={self.log_prob_method})"


def as_posterior(posterior: Any, name: str | None = None) -> Posterior:
    """``posterior`` as a :class:`Posterior`: returned as is if it is one, else wrapped.

    A foreign object needs ``sample(n, generator) -> [n, B, d]``; a callable ``log_prob(theta)``
    is taken as an exact density (a reference posterior's). Its ``prior`` is kept if it has one.
    """
    if isinstance(posterior, Posterior):
        return posterior
    sample = getattr(posterior, "sample", None)
    if not callable(sample):
        raise TypeError(f"a posterior needs sample(n, generator) -> [n, B, d]; {type(posterior).__name__} has none")
    log_prob = getattr(posterior, "log_prob", None)
    return Posterior(sample, log_prob if callable(log_prob) else None, prior=getattr(posterior, "prior", None),
                     name=name or type(posterior).__name__)
