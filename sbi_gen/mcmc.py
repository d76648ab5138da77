"""Generic MCMC kernels and diagnostics shared by every reference posterior that samples by MCMC.

All kernels run many independent chains at once, batched over ``B`` observations:
a state is ``[C, B, d]`` (``C`` chains or walkers per observation, ``d`` parameters),
its log density ``[C, B]``, and ``log_density`` maps ``[..., B, d] -> [..., B]``
(float64, ``-inf`` outside the support, so such proposals are always rejected).
Acceptance rates are per observation, ``[B]``.

- Metropolis kernels (used by :class:`~sbi_gen.reference.MCMCPosterior`):
  :func:`metropolis_step`, a Gaussian random-walk move with a per-observation
  proposal covariance; :func:`independence_step`, an independence
  Metropolis-Hastings move from a multivariate t (Tierney 1994, Ann. Statist. 22,
  1701); :func:`run_metropolis` chains them.
- Ensemble kernel (used by the ``gw`` reference posterior): :func:`ensemble_step`,
  the affine-invariant stretch move (Goodman and Weare 2010, Comm. App. Math.
  Comp. Sci. 5, 65; split-ensemble form of Foreman-Mackey et al. 2013, PASP 125,
  306) mixed with differential-evolution moves (ter Braak 2006, Stat. Comput. 16,
  239); :func:`run_ensemble` chains it. It needs no proposal scale, which suits
  curved ridges and separated modes that one covariance cannot describe.
- Diagnostics: :func:`split_rhat` (Gelman et al. 2013, "Bayesian Data Analysis",
  3rd ed., sec. 11.4) and :func:`integrated_time` (Sokal 1997, "Monte Carlo
  methods in statistical mechanics").

Every random draw comes from the ``generator`` passed in, so seeded runs are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "ensemble_step",
    "independence_step",
    "integrated_time",
    "metropolis_step",
    "run_ensemble",
    "run_metropolis",
    "split_rhat",
]

LogDensity = Callable[[Tensor], Tensor]


def split_rhat(draws: Tensor) -> Tensor:
    """Split-R-hat ``[...]`` of ``draws [S, C, ...]`` (S draws of C chains); NaN when ``S < 4``."""
    half = draws.shape[0] // 2
    if half < 2:
        return torch.full(draws.shape[2:], math.nan, dtype=draws.dtype)
    chains = torch.cat([draws[:half], draws[half : 2 * half]], 1)  # [half, 2C, ...]
    within = chains.var(0).mean(0)
    between = half * chains.mean(0).var(0)
    pooled = (half - 1) / half * within + between / half
    return torch.sqrt(pooled / within)


def integrated_time(chain: Tensor, window: float = 5.0) -> Tensor:
    """Integrated autocorrelation time ``[...]`` of ``chain [S, K, ...]`` (S steps of K walkers), in steps.

    The autocorrelation function is averaged over walkers (estimated by FFT), summed
    up to the first lag ``M >= window * tau(M)`` (Sokal 1997, "Monte Carlo methods in
    statistical mechanics"; as recommended for ensembles by Goodman and Weare 2010).
    At least 1.
    """
    s = chain.shape[0]
    centred = chain - chain.mean(0)
    spectrum = torch.fft.rfft(centred, n=2 * s, dim=0)
    acf = torch.fft.irfft(spectrum * spectrum.conj(), n=2 * s, dim=0)[:s].mean(1)  # [S, ...]
    acf = acf / acf[:1].clamp_min(torch.finfo(acf.dtype).tiny)
    taus = 2.0 * torch.cumsum(acf, 0) - 1.0
    lags = torch.arange(s, dtype=chain.dtype).reshape(-1, *([1] * (taus.ndim - 1)))
    stop = (lags >= window * taus).to(torch.int64)
    first = torch.where(stop.any(0), stop.argmax(0), torch.full_like(stop[0], s - 1))
    return taus.gather(0, first.unsqueeze(0)).squeeze(0).clamp_min(1.0)


# -- Metropolis ---------------------------------------------------------------------------------------------------
def metropolis_step(log_density: LogDensity, state: Tensor, log_p: Tensor, scale_tril: Tensor,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One Gaussian random-walk Metropolis move of every chain.

    Arguments:
        log_density: ``[..., B, d] -> [..., B]``.
        state: chains ``[C, B, d]`` (float64); ``log_p`` their log densities ``[C, B]``.
        scale_tril: Cholesky factors ``[B, d, d]`` of the proposal covariance of each observation.

    Returns ``(state, log_p, accepted [C, B] bool)``.
    """
    noise = torch.randn(state.shape, generator=generator, dtype=torch.float64)
    proposal = state + torch.einsum("bij,cbj->cbi", scale_tril, noise)
    log_q = log_density(proposal)
    accept = torch.rand(log_q.shape, generator=generator, dtype=torch.float64).log() < log_q - log_p
    return torch.where(accept[..., None], proposal, state), torch.where(accept, log_q, log_p), accept


def independence_step(log_density: LogDensity, state: Tensor, log_p: Tensor, mean: Tensor, scale_tril: Tensor,
                      generator: torch.Generator | None = None, df: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """One independence Metropolis-Hastings move of every chain from a multivariate t.

    Arguments:
        log_density: ``[..., B, d] -> [..., B]``.
        state: chains ``[C, B, d]`` (float64); ``log_p`` their log densities ``[C, B]``.
        mean: location ``[B, d]`` of the t proposal; ``scale_tril`` its scale's Cholesky factor ``[B, d, d]``.
        df: degrees of freedom of the t.

    Returns ``(state, log_p, accepted [C, B] bool)``.
    """
    shape = state.shape
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(df, *shape[:-1], generator=generator, dtype=torch.float64).square().sum(0)
    proposal = mean + torch.einsum("bij,cbj->cbi", scale_tril, noise) / torch.sqrt(chi2 / df)[..., None]

    def log_t(theta: Tensor) -> Tensor:  # unnormalized multivariate-t log density [C, B]
        white = torch.linalg.solve_triangular(scale_tril, (theta - mean).permute(1, 2, 0), upper=False)
        return -0.5 * (df + shape[-1]) * torch.log1p(white.square().sum(1).T / df)

    log_q = log_density(proposal)
    log_ratio = (log_q - log_t(proposal)) - (log_p - log_t(state))
    accept = torch.rand(log_ratio.shape, generator=generator, dtype=torch.float64).log() < log_ratio
    return torch.where(accept[..., None], proposal, state), torch.where(accept, log_q, log_p), accept


def run_metropolis(log_density: LogDensity, state: Tensor, log_p: Tensor, scale_tril: Tensor, steps: int,
                   generator: torch.Generator | None = None,
                   independence: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``steps`` Metropolis steps of chains ``state [C, B, d]`` (log densities ``log_p [C, B]``).

    Each step is a :func:`metropolis_step` with ``scale_tril [B, d, d]``, preceded by an
    :func:`independence_step` from a t with ``independence = (mean [B, d], scale_tril [B, d, d])``
    when given. Returns the final state and log density, every state ``[steps, C, B, d]``, and the
    acceptance rates ``[2, B]`` of the random-walk and independence moves (0 for a move not made).
    """
    states, accepted = [], torch.zeros(2, state.shape[1], dtype=torch.float64)
    for _ in range(steps):
        if independence is not None:
            state, log_p, jumped = independence_step(log_density, state, log_p, *independence, generator)
            accepted[1] += jumped.double().mean(0)
        state, log_p, accept = metropolis_step(log_density, state, log_p, scale_tril, generator)
        accepted[0] += accept.double().mean(0)
        states.append(state)
    stacked = torch.stack(states) if states else state.new_empty(0, *state.shape)
    return state, log_p, stacked, accepted / max(steps, 1)


# -- affine-invariant ensemble ------------------------------------------------------------------------------------
def ensemble_step(log_density: LogDensity, state: Tensor, log_p: Tensor,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the parallel ensemble sampler, in place: each half of the walkers moves given the other.

    Arguments:
        log_density: ``y [k, B, d] -> [k, B]`` (``-inf`` outside the support).
        state: walkers ``[K, B, d]`` (``K`` even, at least 4: ``B`` independent ensembles).
        log_p: their log densities ``[K, B]``.

    Each walker proposes, with probability 1/2 each, a stretch move ``Y = X_j + z (X - X_j)``
    with ``g(z) ~ 1/sqrt(z)`` on ``[1/2, 2]`` (Goodman and Weare 2010; acceptance
    ``z^(d-1) p(Y) / p(X)``), or a differential-evolution move ``Y = X + gamma (X_j - X_l)``
    (ter Braak 2006; ``gamma = 2.38 / sqrt(2 d)``, or 1 one time in ten to jump between
    modes), with ``j != l`` drawn from the other half. Returns ``(state, log_p, acceptance [B])``.
    """
    k, b, d = state.shape
    half = k // 2
    accepted = torch.zeros(b, dtype=torch.float64)
    for part in (0, 1):
        active, other = slice(part * half, (part + 1) * half), slice((1 - part) * half, (2 - part) * half)
        current, partners = state[active], state[other]
        draws = torch.rand(6, half, b, generator=generator, dtype=torch.float64)
        j1 = (draws[0] * half).long().clamp_max(half - 1)
        j2 = (j1 + 1 + (draws[1] * (half - 1)).long().clamp_max(half - 2)) % half  # j2 != j1
        first = partners.gather(0, j1[..., None].expand(-1, -1, d))
        second = partners.gather(0, j2[..., None].expand(-1, -1, d))
        stretch = (draws[2] + 1.0) ** 2 / 2.0  # inverse CDF of g(z) ~ 1/sqrt(z) on [1/a, a], a = 2
        gamma = torch.where(draws[3] < 0.1, 1.0, 2.38 / math.sqrt(2 * d))
        use_de = draws[4] < 0.5
        proposal = torch.where(use_de[..., None], current + gamma[..., None] * (first - second),
                               first + stretch[..., None] * (current - first))
        log_q = log_density(proposal)
        log_ratio = log_q - log_p[active] + torch.where(use_de, 0.0, (d - 1) * torch.log(stretch))
        accept = draws[5].log() < log_ratio
        state[active] = torch.where(accept[..., None], proposal, current)
        log_p[active] = torch.where(accept, log_q, log_p[active])
        accepted += accept.double().mean(0) / 2
    return state, log_p, accepted


def run_ensemble(log_density: LogDensity, state: Tensor, log_p: Tensor, steps: int, every: int = 1,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``steps`` calls of :func:`ensemble_step` on walkers ``state [K, B, d]`` (log densities ``[K, B]``).

    Returns the final state and log density, every ``every``-th state ``[steps // every, K, B, d]``
    and the mean acceptance rate ``[B]``.
    """
    kept, acceptance = [], torch.zeros(state.shape[1], dtype=torch.float64)
    for step in range(1, steps + 1):
        state, log_p, accepted = ensemble_step(log_density, state, log_p, generator)
        acceptance += accepted / max(steps, 1)
        if step % every == 0:
            kept.append(state.clone())
    return state, log_p, torch.stack(kept) if kept else state.new_empty(0, *state.shape), acceptance
