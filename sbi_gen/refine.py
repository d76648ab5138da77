"""Importance-sampling refinement of an amortized posterior with the exact likelihood.

An amortized posterior ``q(theta | x)`` is fast but approximate. Where the
simulator can evaluate ``log p(x | theta)``, proposals ``theta_i ~ q`` weighted
by ``w_i = p(x | theta_i) p(theta_i) / q(theta_i | x)`` give exact posterior
expectations as ``N`` grows, and the mean weight estimates the evidence
``p(x)`` (Dax et al. 2023, "Neural importance sampling for rapid and reliable
gravitational-wave inference", arXiv:2210.05686).

Three diagnostics decide whether to trust the result, and all must pass:

- the effective sample size ``ESS = (sum w)^2 / sum w^2`` reaches ``min_ess``
  (100 by default): the ratio alone cannot fail for few proposals, since
  ``ESS >= 1`` makes ``ESS / N >= 1%`` whenever ``N <= 100``;
- the sample efficiency ``ESS / N`` reaches ``min_efficiency`` (1%): a proposal
  that misses posterior mass, or is much narrower than the posterior, gives a
  few dominant weights;
- the Pareto ``k-hat`` of the weights' tail (:mod:`sbi_gen.psis`) is at most
  ``min(1 - 1/log10 N, 0.7)`` (Vehtari et al. 2024): above it the weights have
  so heavy a tail that ESS and the evidence's error bar are themselves
  unreliable, which is what happens when the observation lies far outside
  what the amortized posterior was trained on.

The evidence's standard error follows from the delta method,
``se(log Z) = std(w) / (mean(w) sqrt(N))``; it is quoted as reliable only when
the result is trustworthy. Proposals outside the prior or with a ``-inf`` /
NaN likelihood get weight zero and are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sbi_gen.pairs import check_observations
from sbi_gen.posterior import Posterior, as_posterior
from sbi_gen.psis import pareto_k_hat, pareto_k_threshold

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
    min_ess: float = 100.0
    pareto_k: float = math.nan
    diagnosis: str = field(default="")

    @property
    def pareto_k_threshold(self) -> float:
        """The largest trustworthy Pareto ``k-hat`` for this many proposals."""
        return pareto_k_threshold(len(self.samples))

    @property
    def failed_checks(self) -> list[str]:
        """The diagnostics that fail, each as a short sentence (empty when the result is trustworthy)."""
        failed = []
        if not self.ess >= self.min_ess:
            failed.append(f"ESS {self.ess:.1f} is below the minimum {self.min_ess:g}")
        if not self.efficiency >= self.min_efficiency:
            failed.append(f"efficiency {100 * self.efficiency:.2f}% is below {100 * self.min_efficiency:g}%")
        if math.isnan(self.pareto_k):
            failed.append("too few proposals for the Pareto k-hat tail diagnostic")
        elif self.pareto_k > self.pareto_k_threshold:
            failed.append(f"Pareto k-hat {self.pareto_k:.2f} exceeds {self.pareto_k_threshold:.2f} (the weights' "
                          "tail is too heavy for ESS or the evidence's error to mean anything)")
        return failed

    @property
    def trustworthy(self) -> bool:
        """Whether ESS, sample efficiency and Pareto ``k-hat`` all pass."""
        return not self.failed_checks

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
            "min_ess": self.min_ess,
            "pareto_k": self.pareto_k,
            "pareto_k_threshold": self.pareto_k_threshold,
            "log_evidence_se_reliable": self.trustworthy,
            "failed_checks": self.failed_checks,
            "trustworthy": self.trustworthy,
            "diagnosis": self.diagnosis,
        }


def _diagnose(result: ImportanceResult) -> str:
    n = len(result.samples)
    text = (
        f"{n} proposals, ESS {result.ess:.1f}, sample efficiency {100 * result.efficiency:.2f}%, "
        f"Pareto k-hat {result.pareto_k:.2f}"
    )
    if result.num_zero_weight:
        text += f"; {result.num_zero_weight} proposals had zero weight ({result.zero_weight_reasons})"
    if result.trustworthy:
        return text + (f"; log evidence {result.log_evidence:.4f} +- {result.log_evidence_se:.4f}. "
                       "The refined posterior is reliable for this observation.")
    return text + (
        f"; log evidence {result.log_evidence:.4f} (no reliable error: the weights fail their diagnostics). "
        f"NOT trustworthy for this observation: {'; '.join(result.failed_checks)}. The amortized posterior "
        "misses or mis-sizes posterior mass (or the observation is unlike the training data): train on more "
        "simulations, use a wider proposal, or draw many more proposals."
    )


@torch.no_grad()
def importance_sample(
    proposal: Posterior | Any,
    simulator,
    x_obs: Any,
    num_samples: int = 10_000,
    num_resampled: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
    min_efficiency: float = 0.01,
    min_ess: float = 100.0,
) -> ImportanceResult:
    """Weight ``num_samples`` proposals for one observation by the exact likelihood.

    Arguments:
        proposal: the posterior for this observation, ``estimator.posterior(x_obs)`` (a
            :class:`~sbi_gen.posterior.Posterior` with densities: ``sample(n, generator) -> [n, 1, d]``,
            ``log_prob(theta [n, 1, d]) -> [n, 1]``), or a reference posterior (see
            :func:`~sbi_gen.posterior.as_posterior`). Its ``log_prob_method`` goes into the report.
        simulator: gives ``prior`` and ``log_likelihood(theta [n, 1, d], x [1, *x_shape]) -> [n, 1]``
            (``capabilities.has_log_likelihood``).
        x_obs: one observation ``[*x_shape]`` (or ``[1, *x_shape]``).
        num_resampled: unweighted samples drawn from the weighted ones (default ``num_samples``).
        batch_size: proposals per likelihood evaluation.
        min_efficiency: below this ``ESS / N`` the result is flagged untrustworthy.
        min_ess: below this ESS the result is flagged untrustworthy, whatever the ratio.
    """
    if num_samples < 1:
        raise ValueError(f"importance sampling needs at least one proposal, got num_samples={num_samples}")
    if not simulator.capabilities.has_log_likelihood:
        raise NotImplementedError(f"simulator {simulator.name!r} has no log_likelihood; refinement needs one")
    proposal = as_posterior(proposal)
    joint = proposal.sample_with_log_prob
    if not proposal.has_log_prob and joint is None:
        raise NotImplementedError(f"{proposal.name} has no log_prob; importance sampling needs proposal densities")
    x = check_observations(x_obs, simulator.x_shape)
    if len(x) != 1:
        raise ValueError(f"importance_sample refines one observation at a time, got {len(x)}")
    if joint is not None:  # a proposal with densities only on a larger space (GNPE's (theta, proxy)) gives both
        theta, log_q = joint(num_samples, generator)
    else:
        theta = proposal.sample(num_samples, generator)
    if theta.shape != (num_samples, 1, simulator.prior.dim):
        raise ValueError(f"proposal samples must be [{num_samples}, 1, {simulator.prior.dim}], got {list(theta.shape)}")
    if joint is None:
        log_q = proposal.log_prob(theta)
    log_q = torch.as_tensor(log_q, dtype=torch.float64).reshape(num_samples)
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
        proposal_log_prob_method="joint" if joint is not None else proposal.log_prob_method,
        min_efficiency=min_efficiency,
        min_ess=min_ess,
        pareto_k=pareto_k_hat(log_w),
    )
    result.diagnosis = _diagnose(result)
    return result
