"""Importance-sampling refinement of an amortized posterior with the exact likelihood.

An amortized posterior ``q(theta | x)`` is fast but approximate. Where the
simulator can evaluate ``log p(x | theta)``, proposals ``theta_i ~ q`` weighted
by ``w_i = p(x | theta_i) p(theta_i) / q(theta_i | x)`` give exact posterior
expectations as ``N`` grows, and the mean weight estimates the evidence
``p(x)`` (Dax et al. 2023, "Neural importance sampling for rapid and reliable
gravitational-wave inference", arXiv:2210.05686).

The effective sample size ``ESS = (sum w)^2 / sum w^2`` and the sample
efficiency ``ESS / N`` say how far to trust the result: a proposal that
misses posterior mass, or is much narrower than the posterior, gives a few
dominant weights and a low efficiency. Below ``min_efficiency`` (1% by default)
the amortized posterior is untrustworthy for this observation.

The evidence's standard error follows from the delta method,
``se(log Z) = std(w) / (mean(w) sqrt(N))``. Proposals outside the prior or
with a ``-inf`` / NaN likelihood get weight zero and are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sbi_gen.data import check_observations

__all__ = ["ImportanceResult", "importance_sample"]


@dataclass
class ImportanceResult:
    """Weighted proposals for one observation and what they say.

    ``samples`` ``[N, d]`` are the proposals, ``log_weights`` ``[N]`` their
    unnormalized log weights (``-inf`` for zero weight), ``resampled``
    ``[M, d]`` unweighted posterior samples drawn from them with replacement.
    """

    samples: Tensor
    log_weights: Tensor
    resampled: Tensor
    log_evidence: float
    log_evidence_se: float
    ess: float
    efficiency: float
    num_zero_weight: int
    zero_weight_reasons: dict[str, int]
    proposal_log_prob_method: str
    min_efficiency: float
    diagnosis: str = field(default="")

    @property
    def trustworthy(self) -> bool:
        """Whether the sample efficiency reaches ``min_efficiency``."""
        return self.efficiency >= self.min_efficiency

    @property
    def weights(self) -> Tensor:
        """Normalized weights ``[N]`` (sum to one)."""
        return torch.softmax(self.log_weights, 0)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON (without the sample arrays)."""
        return {
            "num_proposals": len(self.samples),
            "num_resampled": len(self.resampled),
            "log_evidence": self.log_evidence,
            "log_evidence_se": self.log_evidence_se,
            "ess": self.ess,
            "efficiency": self.efficiency,
            "num_zero_weight": self.num_zero_weight,
            "zero_weight_reasons": self.zero_weight_reasons,
            "proposal_log_prob_method": self.proposal_log_prob_method,
            "min_efficiency": self.min_efficiency,
            "trustworthy": self.trustworthy,
            "diagnosis": self.diagnosis,
        }


def _diagnose(result: ImportanceResult) -> str:
    n = len(result.samples)
    text = (
        f"{n} proposals, ESS {result.ess:.1f}, sample efficiency {100 * result.efficiency:.2f}%, "
        f"log evidence {result.log_evidence:.4f} +- {result.log_evidence_se:.4f}"
    )
    if result.num_zero_weight:
        text += f"; {result.num_zero_weight} proposals had zero weight ({result.zero_weight_reasons})"
    if result.trustworthy:
        return text + ". The refined posterior is reliable for this observation."
    return text + (
        f". Efficiency is below {100 * result.min_efficiency:g}%: the amortized posterior is NOT trustworthy "
        "for this observation (it misses or mis-sizes posterior mass). Train on more simulations, use a "
        "wider proposal, or draw many more proposals."
    )


@torch.no_grad()
def importance_sample(
    proposal,
    simulator,
    x_obs: Any,
    num_samples: int = 10_000,
    num_resampled: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
    min_efficiency: float = 0.01,
    log_prob_method: str = "exact",
) -> ImportanceResult:
    """Weight ``num_samples`` proposals for one observation by the exact likelihood.

    Arguments:
        proposal: the posterior for this observation: ``sample(n, generator) -> [n, 1, d]`` and
            ``log_prob(theta [n, 1, d]) -> [n, 1]`` (e.g. ``estimator.posterior(x_obs)``).
        simulator: gives ``prior`` and ``log_likelihood(theta [n, 1, d], x [1, *x_shape]) -> [n, 1]``.
        x_obs: one observation ``[*x_shape]`` (or ``[1, *x_shape]``).
        num_resampled: unweighted samples drawn from the weighted ones (default ``num_samples``).
        batch_size: proposals per likelihood evaluation.
        min_efficiency: below this ``ESS / N`` the result is flagged untrustworthy.
        log_prob_method: how the proposal density is computed (``"exact"``, ``"ode"``), for the report.
    """
    if not getattr(simulator, "has_log_likelihood", False):
        raise NotImplementedError(f"simulator {simulator.name!r} has no log_likelihood; refinement needs one")
    x = check_observations(x_obs, simulator.x_shape)
    if len(x) != 1:
        raise ValueError(f"importance_sample refines one observation at a time, got {len(x)}")
    theta = proposal.sample(num_samples, generator)
    if theta.shape != (num_samples, 1, simulator.prior.dim):
        raise ValueError(f"proposal samples must be [{num_samples}, 1, {simulator.prior.dim}], got {list(theta.shape)}")
    log_q = torch.as_tensor(proposal.log_prob(theta), dtype=torch.float64).reshape(num_samples)
    log_prior = simulator.prior.log_prob(theta.double()).reshape(num_samples)
    log_like = torch.cat(
        [
            torch.as_tensor(simulator.log_likelihood(theta[i : i + batch_size], x), dtype=torch.float64).reshape(-1)
            for i in range(0, num_samples, batch_size)
        ]
    )
    reasons = {
        "outside_prior": int((log_prior == -math.inf).sum()),
        "likelihood_not_finite": int((~torch.isfinite(log_like) & (log_prior > -math.inf)).sum()),
        "proposal_density_not_finite": int((~torch.isfinite(log_q)).sum()),
    }
    log_w = log_like + log_prior - log_q
    log_w = torch.where(torch.isnan(log_w) | ~torch.isfinite(log_q), torch.full_like(log_w, -math.inf), log_w)
    num_zero = int((log_w == -math.inf).sum())
    if num_zero == num_samples:
        raise ValueError(f"every proposal has zero weight ({reasons}): the proposal misses the posterior entirely")

    top = log_w.max()
    w = torch.exp(log_w - top)
    mean_w = w.mean()
    log_evidence = float(torch.log(mean_w) + top)
    log_evidence_se = float(w.std() / (mean_w * math.sqrt(num_samples)))
    ess = float(w.sum() ** 2 / (w**2).sum())
    picks = torch.multinomial(w, num_resampled or num_samples, replacement=True, generator=generator)
    result = ImportanceResult(
        samples=theta[:, 0],
        log_weights=log_w,
        resampled=theta[picks, 0],
        log_evidence=log_evidence,
        log_evidence_se=log_evidence_se,
        ess=ess,
        efficiency=ess / num_samples,
        num_zero_weight=num_zero,
        zero_weight_reasons=reasons,
        proposal_log_prob_method=log_prob_method,
        min_efficiency=min_efficiency,
    )
    result.diagnosis = _diagnose(result)
    return result
