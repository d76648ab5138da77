"""Reference posteriors with known samples and densities (ground truth for calibration).

- :class:`GaussianPosterior`: analytic Gaussians (conjugate models).
- :class:`MCMCPosterior`: samples from an exact likelihood on a box prior, by
  parallel adaptive Metropolis, with :func:`~sbi_gen.mcmc.split_rhat` as its
  convergence check. The kernels and diagnostics live in :mod:`sbi_gen.mcmc`,
  shared with every other MCMC reference posterior.

``MCMCPosterior``, parallel adaptive Metropolis in detail:

For ``B`` observations at once, ``chains`` random-walk Metropolis chains per
observation target ``prior(theta) * exp(log_likelihood(theta))``; proposals
outside the box have zero prior density and are rejected.

- Start: ``init_draws`` prior draws per observation, of which ``chains`` are
  resampled in proportion to their likelihood (sampling-importance-resampling),
  so chains start inside the posterior's bulk.
- Warm-up: stages of increasing length; after each, the proposal covariance of
  every observation becomes ``lambda^2`` times the covariance of its pooled chain
  states (the adaptive Metropolis of Haario, Saksman and Tamminen 2001,
  Bernoulli 7, 223, frozen after warm-up so the kept chain is a plain Metropolis
  chain), and ``lambda`` (from ``2.38 / sqrt(d)``, Roberts, Gelman and Gilks
  1997) is nudged towards an acceptance rate of 0.3.
- Sampling: each step is an independence Metropolis-Hastings move from a
  multivariate t (5 degrees of freedom, the warm-up mean and 1.2 times its
  covariance; Tierney 1994, Ann. Statist. 22, 1701) followed by a random-walk
  move; both leave the posterior invariant, the first decorrelates the chain
  in one step when the posterior is near-Gaussian, the second keeps it exact
  and moving where the t is poor (box edges, ridges). Every ``thin``-th state
  is kept; draws are interleaved over chains.
- Check: split-R-hat (Gelman et al. 2013, "Bayesian Data Analysis", 3rd ed.,
  sec. 11.4) per observation and dimension, over every state of the second
  half of the last warm-up stage and of the sampling run; a warning names the worst value
  when it exceeds ``rhat_warning``. ``diagnostics`` keeps acceptance rates and
  R-hat of the last call.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from sbi_gen.mcmc import run_metropolis, split_rhat
from sbi_gen.prior import Prior

__all__ = ["GaussianPosterior", "MCMCPosterior"]


class MCMCPosterior:
    """Posterior samples for ``B`` observations from their log-likelihood and a box prior.

    Arguments:
        log_likelihood: ``theta [..., B, d] -> [..., B]`` (float64).
        prior: a prior with finite ``low`` / ``high`` whose ``log_prob`` is the density.
        num_observations: ``B``.
        chains: chains per observation.
        thin: keep every ``thin``-th state (more if needed to run ``min_steps``).
        warmup: lengths of the adaptation stages.
        min_steps: least number of sampling steps per chain (for the R-hat check).
        init_draws: prior draws per observation for the starting points.
        rhat_warning: warn when the largest split-R-hat exceeds this.

    ``sample(n, generator)`` returns ``[n, B, d]`` float32. ``log_prob(theta)`` is
    the **unnormalized** log posterior ``log prior + log_likelihood`` (``[..., B]``):
    right for density ratios, HPD ranks and MCMC, not for absolute densities.
    """

    def __init__(
        self,
        log_likelihood: Callable[[Tensor], Tensor],
        prior: Prior,
        num_observations: int,
        chains: int = 32,
        thin: int = 10,
        warmup: tuple[int, ...] = (100, 100, 200, 300),
        min_steps: int = 200,
        init_draws: int = 2048,
        rhat_warning: float = 1.05,
    ) -> None:
        self.log_likelihood, self.prior, self.num_observations = log_likelihood, prior, int(num_observations)
        self.chains, self.thin, self.warmup, self.init_draws = int(chains), int(thin), tuple(warmup), int(init_draws)
        self.rhat_warning, self.min_steps = float(rhat_warning), int(min_steps)
        self.low, self.high = prior.low.to(torch.float64), prior.high.to(torch.float64)
        self.diagnostics: dict[str, object] = {}

    def log_prob(self, theta: Tensor) -> Tensor:
        """Unnormalized log posterior ``[..., B]`` of ``theta [..., B, d]``; ``-inf`` outside the prior."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        inside = self.prior.contains(theta)
        clamped = torch.maximum(torch.minimum(theta, self.high), self.low)
        value = self.prior.log_prob(clamped).to(torch.float64) + self.log_likelihood(clamped)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    def _start(self, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Starting chains ``[C, B, d]`` (resampled prior draws) and the first proposal covariance ``[B, d, d]``."""
        b, d = self.num_observations, len(self.low)
        draws, weights = [], []
        for start in range(0, self.init_draws, 256):
            size = min(256, self.init_draws - start)
            unit = torch.rand(size, b, d, generator=generator, dtype=torch.float64)
            theta = self.low + (self.high - self.low) * unit
            draws.append(theta)
            weights.append(self.log_prob(theta))
        draws_t, log_w = torch.cat(draws), torch.cat(weights)  # [P, B, d], [P, B]
        probability = torch.softmax(log_w, 0).T  # [B, P]
        index = torch.multinomial(probability, self.chains, replacement=True, generator=generator)  # [B, C]
        start = torch.gather(draws_t.permute(1, 0, 2), 1, index[..., None].expand(-1, -1, d)).permute(1, 0, 2)
        return start.contiguous(), torch.diag_embed(((self.high - self.low) / 20) ** 2).expand(b, d, d)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, d]`` float32 posterior draws."""
        state, covariance = self._start(generator)
        b, d = self.num_observations, state.shape[-1]
        log_p = self.log_prob(state)
        lam = torch.full((b,), 2.38 / math.sqrt(d), dtype=torch.float64)
        jitter = torch.diag_embed(((self.high - self.low) * 1e-6) ** 2)
        for steps in self.warmup:
            scale_tril = torch.linalg.cholesky(covariance + jitter) * lam[:, None, None]
            state, log_p, states, acceptance = run_metropolis(self.log_prob, state, log_p, scale_tril, steps,
                                                               generator)
            pooled = states[steps // 2 :].reshape(-1, b, d).permute(1, 0, 2)  # [B, S, d]
            mean = pooled.mean(1)
            centred = pooled - mean[:, None]
            covariance = centred.transpose(1, 2) @ centred / (pooled.shape[1] - 1)
            lam = lam * torch.exp(2 * (acceptance[0] - 0.3)).clamp(0.5, 2.0)
        cholesky = torch.linalg.cholesky(covariance + jitter)
        per_chain = max(1, math.ceil(n / self.chains))
        thin = max(self.thin, math.ceil(self.min_steps / per_chain))
        independence = (mean, 1.2 * cholesky)
        _, _, states, acceptance = run_metropolis(
            self.log_prob, state, log_p, cholesky * lam[:, None, None], per_chain * thin, generator, independence
        )
        rhat = split_rhat(states)  # [B, d]
        worst = float(rhat.max()) if bool(torch.isfinite(rhat).all()) else math.nan
        self.diagnostics = {"random_walk_acceptance": acceptance[0].tolist(),
                            "independence_acceptance": acceptance[1].tolist(), "max_split_rhat": worst,
                            "split_rhat": rhat.tolist(), "draws_per_chain": per_chain, "thin": thin}
        if worst > self.rhat_warning:
            warnings.warn(f"reference posterior MCMC may not have converged: max split-R-hat {worst:.3f} "
                          f"> {self.rhat_warning}; raise warmup or chains", RuntimeWarning, stacklevel=2)
        return states[thin - 1 :: thin].reshape(-1, b, d)[:n].float()


class GaussianPosterior:
    """Independent Gaussians ``N(mean_b, covariance)`` for ``B`` observations.

    Arguments:
        mean: ``[B, d]`` posterior means.
        covariance: ``[d, d]`` shared, or ``[B, d, d]`` per observation.

    ``sample(n, generator)`` returns ``[n, B, d]`` (float32);
    ``log_prob(theta [..., B, d])`` returns ``[..., B]`` (float64).
    """

    def __init__(self, mean: Tensor, covariance: Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        covariance = torch.as_tensor(covariance, dtype=torch.float64)
        if covariance.ndim == 2:
            covariance = covariance.expand(self.mean.shape[0], -1, -1)
        self.covariance = covariance
        self.scale_tril = torch.linalg.cholesky(covariance)
        self._distribution = torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, d]`` float32 draws."""
        noise = torch.randn(n, *self.mean.shape, generator=generator, dtype=torch.float64)
        return (self.mean + torch.einsum("bij,nbj->nbi", self.scale_tril, noise)).float()

    def log_prob(self, theta: Tensor) -> Tensor:
        """Normalized log density ``[..., B]`` (float64) of ``theta [..., B, d]``."""
        return self._distribution.log_prob(torch.as_tensor(theta, dtype=torch.float64))

    def scaled(self, covariance_factor: float = 1.0, mean_shift: Tensor | float = 0.0) -> GaussianPosterior:
        """A miscalibrated copy: covariance times ``covariance_factor``, mean plus ``mean_shift``."""
        return GaussianPosterior(self.mean + mean_shift, self.covariance * covariance_factor)
