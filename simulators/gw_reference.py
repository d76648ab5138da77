"""Reference posterior of the ``gw`` simulator: ensemble MCMC on the phase-marginalized likelihood.

The likelihood, marginalized analytically over the coalescence phase ``phi_c``, is
:class:`~sbi_gen_simulators.gw_likelihood.PhaseMarginalizedLikelihood` (the derivation is
in :mod:`sbi_gen_simulators.gw_likelihood`); given the other parameters, ``phi_c`` is von
Mises distributed with mean ``arg z`` and concentration ``|z|``. This is exact only for
a ``phi_c`` prior uniform on a full circle (``high - low = 2 pi``):
:class:`GWReferencePosterior` raises ``ValueError`` for any other ``coalescence_phase``
range (there is no fallback). The MCMC kernels are the shared ones of :mod:`sbi_gen.mcmc`.

Sampler (:class:`GWReferencePosterior`), per observation:

1. Search. A grid over ``(Mc^(-5/3), eta)`` (``eta = q / (1 + q)^2``; ``Mc^(-5/3)``
   is proportional to the Newtonian chirp time, in which the likelihood's width
   is nearly uniform over the prior) of templates, each evaluated on a grid of
   ``t_c`` by one matrix product; distance and phase are profiled analytically.
   The best ``restarts`` well separated nodes are refined by Nelder-Mead on the
   marginalized likelihood (about 1 s per observation with the default prior).
2. Ensemble MCMC on ``y = (Mc, eta, D_L, t_c)`` (the prior, uniform in ``q``,
   becomes the density ``|dq/deta| = 4 / (s (1 + s)^2)``, ``s = sqrt(1 - 4 eta)``;
   in ``eta`` the Mc-q ridge running into ``q = 1`` is nearly straight).
   Each of ``walkers`` walkers picks one of the refined optima with probability
   proportional to its likelihood (so near-equal separate maxima are all
   populated), starts in a small ball around it and moves by
   :func:`sbi_gen.mcmc.ensemble_step`: the parallel affine-invariant stretch
   move (Goodman and Weare 2010, Comm. App. Math. Comp. Sci. 5, 65;
   split-ensemble form of Foreman-Mackey et al. 2013, PASP 125, 306) or a
   differential-evolution move (ter Braak 2006, Stat. Comput. 16, 239; scale
   ``2.38 / sqrt(2 d)``, 1 one time in ten), chosen per walker.
   Proposals outside the prior box are rejected.
3. After ``burn_in`` steps, the integrated autocorrelation time ``tau`` of the
   walker-averaged autocorrelation over the second half of the burn-in (Sokal's
   window, ``c = 5``) sets the thinning ``ceil(thin_factor tau)`` (at least
   ``min_thin``); every ``thin``-th state is kept, at least ``min_draws`` per walker.
   Split-R-hat (Gelman et al. 2013, BDA3, sec. 11.4) of every walker's kept
   states is recorded per parameter and a warning is raised above ``rhat_warning``.
   With many short chains, R-hat is inflated to about ``sqrt(1 + tau / L)`` for
   half-chains of ``L`` steps even at stationarity, so it flags slow mixing
   (e.g. between the separate likelihood maxima of low-SNR signals) as well as
   a short burn-in. Reproducibility is checked by comparing seeds (the tests).
4. ``phi_c`` of every kept draw is drawn exactly from its von Mises conditional
   (Best and Fisher 1979, Appl. Statist. 28, 152) and wrapped into the prior's
   ``[low, low + 2 pi)``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from sbi_gen.mcmc import integrated_time, run_ensemble, split_rhat
from sbi_gen_simulators.gw_likelihood import PhaseMarginalizedLikelihood, log_i0
from sbi_gen_simulators.gw_waveform import symmetric_mass_ratio

if TYPE_CHECKING:
    from sbi_gen_simulators.gw import GravitationalWave

__all__ = ["GWReferencePosterior", "reference_posterior", "sample_von_mises"]

_TWO_PI = 2.0 * math.pi
_ETA_BELOW_QUARTER = 0.25 - 1e-12


def sample_von_mises(loc: Tensor, concentration: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Exact von Mises draws (Best and Fisher 1979 wrapped-Cauchy rejection) in ``[loc - pi, loc + pi)``.

    Arguments:
        loc: mean angles ``[...]`` (rad).
        concentration: ``kappa >= 0`` ``[...]`` (broadcast with ``loc``).

    Returns:
        float64 ``[...]``; uniform on the circle where ``kappa < 1e-12``.
    """
    loc, kappa = torch.broadcast_tensors(torch.as_tensor(loc, dtype=torch.float64),
                                         torch.as_tensor(concentration, dtype=torch.float64))
    if bool((kappa < 0).any()) or not bool(torch.isfinite(kappa).all()):
        raise ValueError("von Mises concentration must be finite and >= 0")
    flat_kappa = kappa.reshape(-1)
    safe = flat_kappa.clamp_min(1e-12)
    tau = 1.0 + torch.sqrt(1.0 + 4.0 * safe * safe)
    rho = (tau - torch.sqrt(2.0 * tau)) / (2.0 * safe)
    r = torch.where(safe < 1e-5, 1.0 / safe + safe, (1.0 + rho * rho) / (2.0 * rho))
    angle = torch.zeros_like(flat_kappa)
    pending = torch.ones_like(flat_kappa, dtype=torch.bool)
    while bool(pending.any()):
        u1, u2, u3 = torch.rand(3, flat_kappa.numel(), generator=generator, dtype=torch.float64)
        c = torch.cos(math.pi * u1)
        f = ((1.0 + r * c) / (r + c)).clamp(-1.0, 1.0)
        g = safe * (r - f)
        accept = pending & ((g * (2.0 - g) > u2) | (torch.log(g / u2) + 1.0 - g >= 0))
        angle = torch.where(accept, torch.sign(u3 - 0.5) * torch.acos(f), angle)
        pending = pending & ~accept
    uniform = math.pi * (2.0 * torch.rand(flat_kappa.shape, generator=generator, dtype=torch.float64) - 1.0)
    angle = torch.where(flat_kappa < 1e-12, uniform, angle)
    return loc + angle.reshape(loc.shape)


def _eta_to_q(eta: Tensor) -> tuple[Tensor, Tensor]:
    """``q <= 1`` from ``eta`` and ``log |dq / deta|`` (``s = sqrt(1 - 4 eta)``, ``q = (1 - s) / (1 + s)``)."""
    s = torch.sqrt((1.0 - 4.0 * eta).clamp_min(0.0))
    return (1.0 - s) / (1.0 + s), math.log(4.0) - torch.log(s) - 2.0 * torch.log1p(s)


class GWReferencePosterior:
    """Reference posterior of the ``gw`` simulator for ``B`` observations (module docstring).

    Arguments:
        simulator: the :class:`~sbi_gen_simulators.gw.GravitationalWave` that simulated ``x``; its
            ``coalescence_phase`` prior must span a full circle.
        x: observations ``[B, 1, 2, n_bins]``.
        walkers: ensemble size per observation (even).
        burn_in: ensemble steps discarded (each step moves every walker once).
        min_thin: least thinning; the thinning is ``max(min_thin, ceil(thin_factor * tau))``.
        thin_factor: thinning in units of the autocorrelation time estimated in the burn-in.
        min_draws: least kept states per walker (for split-R-hat), whatever ``n``.
        search_step: grid steps in ``Mc^(-5/3)`` (M_sun^(-5/3)), ``eta`` and ``t_c`` (s) of the search.
        max_nodes: the search grid is coarsened to at most this many ``(Mc, eta)`` nodes.
        restarts: well separated grid nodes refined by Nelder-Mead.
        rhat_warning: warn when the largest split-R-hat exceeds this.

    ``sample(n, generator)`` returns ``[n, B, 5]`` float32 ``(Mc, q, D_L, phi_c, t_c)``;
    ``log_prob(theta)`` is the **unnormalized** log posterior ``log prior + log_likelihood``
    ``[..., B]`` (density ratios, HPD ranks; not absolute densities). ``diagnostics`` holds
    per-observation acceptance, autocorrelation time, thinning, split-R-hat and timings of
    the last ``sample`` call.
    """

    def __init__(
        self,
        simulator: GravitationalWave,
        x: Tensor,
        walkers: int = 256,
        burn_in: int = 1000,
        min_thin: int = 10,
        thin_factor: float = 1.5,
        min_draws: int = 40,
        search_step: tuple[float, float, float] = (6e-5, 0.004, 5e-4),
        max_nodes: int = 20_000,
        restarts: int = 4,
        rhat_warning: float = 1.05,
    ) -> None:
        low, high = simulator.prior.low.to(torch.float64), simulator.prior.high.to(torch.float64)
        if abs(float(high[3] - low[3]) - _TWO_PI) > 1e-6:
            raise ValueError(
                "the gw reference posterior marginalizes phi_c analytically, which is exact only for a uniform "
                f"coalescence_phase prior over a full circle (high - low = 2 pi); got [{float(low[3])}, "
                f"{float(high[3])}]"
            )
        if walkers < 8 or walkers % 2:
            raise ValueError(f"walkers must be an even number >= 8, got {walkers}")
        self.simulator = simulator
        self.likelihood = PhaseMarginalizedLikelihood(simulator, x)
        self.x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, *simulator.x_shape)
        self.num_observations = self.likelihood.num_observations
        self.walkers, self.burn_in, self.min_thin, self.min_draws = int(walkers), int(burn_in), int(min_thin), \
            int(min_draws)
        self.thin_factor = float(thin_factor)
        self.search_step, self.max_nodes, self.restarts = tuple(search_step), int(max_nodes), int(restarts)
        self.rhat_warning = float(rhat_warning)
        self.phase_low = float(low[3])
        index = [0, 1, 2, 4]
        self.low, self.high = low[index].clone(), high[index].clone()  # box of (Mc, q, D_L, t_c)
        self.y_low, self.y_high = self.low.clone(), self.high.clone()  # box of y = (Mc, eta, D_L, t_c)
        self.y_low[1], self.y_high[1] = symmetric_mass_ratio(low[1]), symmetric_mass_ratio(high[1])
        self.diagnostics: dict[str, Any] = {}
        self._start: list[tuple[Tensor, Tensor]] | None = None
        self._search_log: list[dict[str, Any]] = []

    # -- densities -------------------------------------------------------------------------------------------
    def log_prob(self, theta: Tensor) -> Tensor:
        """Unnormalized log posterior ``[..., B]`` of ``theta [..., B, 5]``; ``-inf`` outside the prior."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        prior = self.simulator.prior
        inside = prior.contains(theta)
        clamped = torch.maximum(torch.minimum(theta, prior.high.to(theta)), prior.low.to(theta))
        value = prior.log_prob(clamped).to(torch.float64) + self.simulator.log_likelihood(clamped, self.x)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    def to_theta(self, y: Tensor) -> Tensor:
        """``(Mc, q, D_L, t_c)`` ``[..., 4]`` from sampling coordinates ``y = (Mc, eta, D_L, t_c)``."""
        q, _ = _eta_to_q(y[..., 1])
        return torch.stack([y[..., 0], q, y[..., 2], y[..., 3]], -1)

    def log_target(self, y: Tensor, jacobian: bool = True) -> Tensor:
        """Marginal log posterior in ``y = (Mc, eta, D_L, t_c)`` ``[..., B, 4]`` up to a constant: ``[..., B]``
        (the marginal log-likelihood inside the prior box if not ``jacobian``)."""
        y = torch.as_tensor(y, dtype=torch.float64)
        inside = ((y >= self.y_low) & (y <= self.y_high)).all(-1) & (y[..., 1] < 0.25)
        safe = torch.where(inside.unsqueeze(-1), y, 0.5 * (self.y_low + self.y_high))
        q, log_jacobian = _eta_to_q(safe[..., 1])
        theta = torch.stack([safe[..., 0], q, safe[..., 2], safe[..., 3]], -1)
        value = self.likelihood.log_likelihood(theta) + (log_jacobian if jacobian else 0.0)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    # -- search ----------------------------------------------------------------------------------------------
    def _grid(self) -> tuple[Tensor, Tensor, Tensor]:
        """Search nodes: ``Mc [n_u]``, ``eta [n_eta]`` and ``t_c [m]`` covering the prior box."""
        du, deta, dt = self.search_step
        u_low, u_high = float(self.y_high[0]) ** (-5.0 / 3.0), float(self.y_low[0]) ** (-5.0 / 3.0)
        n_u = max(2, math.ceil((u_high - u_low) / du) + 1)
        n_eta = max(2, math.ceil(float(self.y_high[1] - self.y_low[1]) / deta) + 1)
        while n_u * n_eta > self.max_nodes:
            n_u, n_eta = max(2, math.ceil(n_u / 1.2)), max(2, math.ceil(n_eta / 1.1))
        u = torch.linspace(u_low, u_high, n_u, dtype=torch.float64)
        eta = torch.linspace(float(self.y_low[1]), float(self.y_high[1]), n_eta, dtype=torch.float64)
        eta = eta.clamp_max(_ETA_BELOW_QUARTER)  # eta = 1/4 itself is excluded (log |dq/deta| is infinite there)
        n_t = max(2, math.ceil(float(self.y_high[3] - self.y_low[3]) / dt) + 1)
        times = torch.linspace(float(self.y_low[3]), float(self.y_high[3]), n_t, dtype=torch.float64)
        return u ** (-3.0 / 5.0), eta, times

    def _profile(self, z: Tensor, hh: Tensor) -> tuple[Tensor, Tensor]:
        """Best distance ``[...]`` (clamped to the prior) and the marginal log-likelihood there, for overlaps
        ``z`` and norms ``hh`` of templates at 1 Mpc."""
        r = z.abs()
        distance = (hh / r.clamp_min(1e-300)).clamp(float(self.low[2]), float(self.high[2]))
        return distance, log_i0(r / distance) - 0.5 * hh / distance**2

    def search(self, observation: int) -> tuple[Tensor, Tensor]:
        """Local maxima of the marginal likelihood within the prior box for one observation: ``y [R, 4]`` and
        their log-likelihoods ``[R]``, from ``R = restarts`` well separated grid nodes refined by Nelder-Mead.
        (The likelihood, not the posterior: in ``y`` the posterior has an integrable singularity at
        ``eta = 1/4``.)"""
        mc, eta, times = self._grid()
        grid_mc, grid_eta = torch.meshgrid(mc, eta, indexing="ij")
        q, _ = _eta_to_q(grid_eta.reshape(-1))
        nodes = torch.stack([grid_mc.reshape(-1), q, torch.ones_like(q), torch.zeros_like(q)], -1)
        best_value = torch.empty(len(nodes), dtype=torch.float64)
        best_y = torch.empty(len(nodes), 4, dtype=torch.float64)
        for start in range(0, len(nodes), 256):
            rows = nodes[start : start + 256]
            z, hh = self.likelihood.time_profile(rows, times, observation)
            distance, value = self._profile(z, hh[:, None])
            top, where = value.max(1)
            best_value[start : start + 256] = top
            best_y[start : start + 256] = torch.stack(
                [rows[:, 0], grid_eta.reshape(-1)[start : start + 256],
                 distance.gather(1, where[:, None])[:, 0], times[where]], -1)
        value_grid = best_value.reshape(len(mc), len(eta))
        # refine the best nodes that are at least 3 grid steps apart in either direction
        chosen: list[tuple[int, int]] = []
        for flat in torch.argsort(best_value, descending=True).tolist():
            i, j = divmod(flat, len(eta))
            if all(abs(i - a) > 2 or abs(j - b) > 2 for a, b in chosen):
                chosen.append((i, j))
            if len(chosen) == self.restarts:
                break
        scales = self._scales(mc, eta, times)
        results = [self._refine(best_y[i * len(eta) + j], scales, observation) for i, j in chosen]
        optima = torch.stack([y for y, _ in results])
        values = torch.tensor([value for _, value in results], dtype=torch.float64)
        best = int(values.argmax())
        self._search_log.append(
            {"nodes": list(value_grid.shape), "times": len(times), "grid_max": float(best_value.max()),
             "optimum": self.to_theta(optima[best]).tolist(), "log_likelihood": float(values[best]),
             "optima_log_likelihood": values.tolist()})
        return optima, values

    def _scales(self, mc: Tensor, eta: Tensor, times: Tensor) -> Tensor:
        """Typical widths ``[4]`` of the refinement: one grid step (at the lightest chirp mass), 10% in ``D_L``."""
        return torch.stack([mc[-2] - mc[-1] if len(mc) > 1 else mc[0] * 0.01, eta[1] - eta[0],
                            0.1 * 0.5 * (self.low[2] + self.high[2]), times[1] - times[0]]).abs()

    def _refine(self, y0: Tensor, scales: Tensor, observation: int) -> tuple[Tensor, float]:
        """Nelder-Mead from ``y0`` on the marginal log-likelihood of one observation: ``(y, value)``."""

        def negative(v: np.ndarray) -> float:
            y = y0 + torch.from_numpy(v) * scales
            if not bool(((y >= self.y_low) & (y <= self.y_high)).all()) or float(y[1]) >= 0.25:
                return 1e300
            value = float(self.likelihood.log_likelihood_one(self.to_theta(y), observation)[0])
            return -value if math.isfinite(value) else 1e300

        simplex = np.vstack([np.zeros(4), 0.5 * np.eye(4)])
        result = minimize(negative, np.zeros(4), method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-3, "maxfev": 2000})
        y = y0 + torch.from_numpy(result.x) * scales
        return y, -float(result.fun)

    # -- sampling ----------------------------------------------------------------------------------------------
    def starts(self) -> list[tuple[Tensor, Tensor]]:
        """:meth:`search` results of every observation (computed once and cached)."""
        if self._start is None:
            self._start = [self.search(b) for b in range(self.num_observations)]
            self.diagnostics["search"] = self._search_log
        return self._start

    def _initial_state(self, generator: torch.Generator | None) -> Tensor:
        """Walkers ``[K, B, 4]``: each picks a search optimum with probability proportional to its likelihood
        (so near-equal separate maxima are both populated) and starts in a small ball around it."""
        k, b = self.walkers, self.num_observations
        centres = torch.empty(k, b, 4, dtype=torch.float64)
        for index, (optima, values) in enumerate(self.starts()):
            pick = torch.multinomial(torch.softmax(values, 0), k, replacement=True, generator=generator)
            centres[:, index] = optima[pick]
        scales = 0.05 * self._scales(*self._grid())
        state = centres + torch.randn(k, b, 4, generator=generator, dtype=torch.float64) * scales
        state = torch.minimum(torch.maximum(state, 2 * self.y_low - state), 2 * self.y_high - state)  # reflect
        state[..., 1] = state[..., 1].clamp_max(_ETA_BELOW_QUARTER)
        return torch.where(torch.isfinite(self.log_target(state))[..., None], state, centres)

    def sample_marginal(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, 4]`` float64 draws of ``(Mc, q, D_L, t_c)`` from the phase-marginalized posterior."""
        clock = time.perf_counter()
        self.starts()
        search_seconds = time.perf_counter() - clock
        k, b = self.walkers, self.num_observations
        clock = time.perf_counter()
        state = self._initial_state(generator)
        log_p = self.log_target(state)
        every = max(1, self.burn_in // 400)
        state, log_p, warm, _ = run_ensemble(self.log_target, state, log_p, self.burn_in, every, generator)
        tail = warm[len(warm) // 2 :]
        tau = integrated_time(self.to_theta(tail)) * every if len(tail) >= 8 else torch.full((b, 4), 1.0)
        thin = max(self.min_thin, math.ceil(self.thin_factor * float(tau.max())))
        per_walker = max(self.min_draws, math.ceil(n / k))
        state, log_p, kept, acceptance = run_ensemble(self.log_target, state, log_p, per_walker * thin, thin,
                                                       generator)
        draws = self.to_theta(kept)  # [per_walker, K, B, 4]
        rhat = split_rhat(draws)  # [B, 4]
        flat = draws.reshape(-1, b, 4)
        order = torch.randperm(flat.shape[0], generator=generator)[:n]
        worst = float(rhat.max())
        self.diagnostics.update({
            "acceptance": acceptance.tolist(), "tau": tau.tolist(), "thin": thin, "draws_per_walker": per_walker,
            "split_rhat": rhat.tolist(), "max_split_rhat": worst, "search_seconds": search_seconds,
            "sampling_seconds": time.perf_counter() - clock,
        })
        if not worst <= self.rhat_warning:
            warnings.warn(f"gw reference posterior: max split-R-hat {worst:.3f} > {self.rhat_warning}; "
                          "raise burn_in or walkers", RuntimeWarning, stacklevel=2)
        return flat[order]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, B, 5]`` float32 posterior draws of ``(Mc, q, D_L, phi_c, t_c)``."""
        marginal = self.sample_marginal(n, generator)
        z, _ = self.likelihood.overlap(marginal)
        phase = sample_von_mises(torch.angle(z), z.abs(), generator)
        phase = self.phase_low + torch.remainder(phase - self.phase_low, _TWO_PI)
        return torch.cat([marginal[..., :3], phase[..., None], marginal[..., 3:]], -1).float()


def reference_posterior(simulator: GravitationalWave, x: Tensor, **options: Any) -> GWReferencePosterior:
    """:class:`GWReferencePosterior` for observations ``x [B, 1, 2, n_bins]`` of ``simulator``."""
    return GWReferencePosterior(simulator, x, **options)
