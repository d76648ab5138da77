"""Reference posterior of the ``gw`` simulator: phase-marginalized likelihood, ensemble MCMC, exact phase draws.

Phase marginalization. The TaylorF2 waveform is ``h = A exp(-i Psi)`` with
``Psi = 2 pi f t_c - phi_c - pi/4 + ...`` (:mod:`sbi_gen_simulators.gw_waveform`), so
``h(phi_c) = h_0 exp(i phi_c)`` with ``h_0`` the waveform at ``phi_c = 0``. With the
complex overlap ``z = sum conj(h_0w) d_w`` of the whitened waveform and data, the
likelihood of :meth:`GravitationalWave.log_likelihood` is::

    log L(theta) = Re(exp(-i phi_c) z) - (h|h) / 2 = |z| cos(phi_c - arg z) - (h|h) / 2,

and ``(h|h) = sum |h_0w|^2`` does not depend on ``phi_c``. Averaging over the
uniform prior of ``phi_c`` on the full circle (Veitch et al. 2015, "Parameter
estimation for compact binaries with ground-based gravitational-wave
observations using the LALInference software library", Phys. Rev. D 91, 042003,
arXiv:1409.7215; Thrane and Talbot 2019, "An introduction to Bayesian inference in
gravitational-wave astronomy", PASA 36, e10, arXiv:1809.02293, sec. on
marginalized likelihoods)::

    log L_marg(Mc, q, D_L, t_c) = log I0(|z|) - (h|h) / 2,
    p(phi_c | Mc, q, D_L, t_c, x) = von Mises(phi_c; mean arg z, concentration |z|).

The marginalization is exact only when the ``phi_c`` prior is uniform on a full
circle (``high - low = 2 pi``); :class:`GWReferencePosterior` raises ``ValueError``
for any other ``coalescence_phase`` range (there is no fallback).

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
   the parallel affine-invariant stretch move (Goodman and Weare 2010, Comm.
   App. Math. Comp. Sci. 5, 65; split-ensemble form of Foreman-Mackey et al. 2013,
   PASP 125, 306) or a differential-evolution move (ter Braak 2006, Stat. Comput.
   16, 239; scale ``2.38 / sqrt(2 d)``, 1 one time in ten), chosen per walker.
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

from sbi_gen.reference import split_rhat
from sbi_gen_simulators.gw_waveform import MPC_S, MTSUN_S, pn_phase_coefficients, symmetric_mass_ratio, total_mass

if TYPE_CHECKING:
    from collections.abc import Callable

    from sbi_gen_simulators.gw import GravitationalWave

__all__ = [
    "GWReferencePosterior",
    "PhaseMarginalizedLikelihood",
    "ensemble_step",
    "integrated_time",
    "log_i0",
    "reference_posterior",
    "run_ensemble",
    "sample_von_mises",
]

_AMPLITUDE = math.sqrt(5.0 / 24.0) * math.pi ** (-2.0 / 3.0)
_TWO_PI = 2.0 * math.pi
_ETA_BELOW_QUARTER = 0.25 - 1e-12


def log_i0(x: Tensor) -> Tensor:
    """``log I0(x)`` for ``x >= 0``, stable for large ``x`` (``log i0e(x) + x``)."""
    return torch.log(torch.special.i0e(x)) + x


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


def integrated_time(chain: Tensor, window: float = 5.0) -> Tensor:
    """Integrated autocorrelation time ``[...]`` of ``chain [S, K, ...]`` (S steps of K walkers), in steps.

    The autocorrelation function is averaged over walkers (estimated by FFT), summed
    up to the first lag ``M >= window * tau(M)`` (Sokal 1997, "Monte Carlo methods in
    statistical mechanics"; as recommended for ensembles by Goodman and Weare 2010).
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


def ensemble_step(log_density: Callable[[Tensor], Tensor], state: Tensor, log_p: Tensor,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the parallel ensemble sampler, in place: each half of the walkers moves given the other.

    Arguments:
        log_density: ``y [k, B, d] -> [k, B]`` (``-inf`` outside the support).
        state: walkers ``[K, B, d]`` (``K`` even: ``B`` independent ensembles).
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


def run_ensemble(log_density: Callable[[Tensor], Tensor], state: Tensor, log_p: Tensor, steps: int, every: int = 1,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``steps`` calls of :func:`ensemble_step`: the final state and log density, every ``every``-th state
    ``[steps // every, K, B, d]`` and the mean acceptance rate ``[B]``."""
    kept, acceptance = [], torch.zeros(state.shape[1], dtype=torch.float64)
    for step in range(1, steps + 1):
        state, log_p, accepted = ensemble_step(log_density, state, log_p, generator)
        acceptance += accepted / max(steps, 1)
        if step % every == 0:
            kept.append(state.clone())
    return state, log_p, torch.stack(kept) if kept else state.new_empty(0, *state.shape), acceptance


class PhaseMarginalizedLikelihood:
    """The ``gw`` likelihood of ``theta4 = (Mc, q, D_L, t_c)`` marginalized over ``phi_c`` (module docstring).

    Arguments:
        simulator: the :class:`~sbi_gen_simulators.gw.GravitationalWave` that made ``x``.
        x: observations ``[B, 1, 2, n_bins]`` (whitened strain, real and imaginary parts).

    Waveforms are computed like :class:`~sbi_gen_simulators.gw_waveform.TaylorF2`
    (the phase as one matrix product over a fixed frequency basis, zero above
    ``f_ISCO``), but fused with the overlap: ``z`` costs one ``[n, 11] @ [11, 2 k]``
    product, one in-place cosine and one ``[n, 2 k] @ [2 k, 2]`` product.
    """

    def __init__(self, simulator: GravitationalWave, x: Tensor) -> None:
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.shape[-len(simulator.x_shape):] != simulator.x_shape:
            raise ValueError(f"x must be [B, {', '.join(map(str, simulator.x_shape))}], got {list(x.shape)}")
        x = x.reshape(-1, *simulator.x_shape)
        if simulator.num_detectors != 1:
            raise ValueError("the phase-marginalized likelihood handles one detector")
        self.num_observations = x.shape[0]
        f = simulator.frequencies.to(torch.float64)
        self.frequencies = f
        w, log_w, one = f ** (1.0 / 3.0), torch.log(f) / 3.0, torch.ones_like(f)
        basis = torch.stack([w**-5, w**-3, w**-2, w**-1, one, log_w, w, w * log_w, w**2, _TWO_PI * f])
        # every column twice (cosine, sine slot) and a last row that shifts the sine slot by -pi/2
        quarter = torch.tensor([0.0, -math.pi / 2], dtype=torch.float64).repeat(f.numel())
        self._basis = torch.cat([basis.repeat_interleave(2, dim=1), quarter.unsqueeze(0)])  # [11, 2 n_f]
        self._amplitude = f ** (-7.0 / 6.0) * simulator.whitening.to(torch.float64)  # |h_w| per unit scale
        self._norm = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(self._amplitude**2, 0)])
        self.data = torch.complex(x[:, 0, 0], x[:, 0, 1])  # [B, n_f]
        self._weights = torch.stack([self._real_weights(self.data[b]) for b in range(self.num_observations)])
        self._buffer = torch.empty(0, dtype=torch.float64)
        self._bin_of_column = torch.arange(f.numel()).repeat_interleave(2)  # [2 n_f]
        self._exponents = torch.arange(-5, 3, dtype=torch.float64)

    def _real_weights(self, data: Tensor) -> Tensor:
        """``[2 n_f, ...]`` real matrix mapping interleaved ``(cos Psi, sin Psi)`` to ``(Re, Im)`` of
        ``sum_f A e^{i Psi} data`` for complex ``data [n_f, ...]``: shape ``[2 n_f, 2, ...]`` flattened to 2-D."""
        g = self._amplitude[: data.shape[0]].reshape(-1, *([1] * (data.ndim - 1)))
        re, im = g * data.real, g * data.imag
        cos_row = torch.stack([re, im], 1)  # (cos Psi) contributes re + i im
        sin_row = torch.stack([-im, re], 1)  # (sin Psi) contributes i (re + i im)
        return torch.stack([cos_row, sin_row], 1).reshape(2 * data.shape[0], -1)

    def phase_coefficients(self, theta: Tensor) -> Tensor:
        """Coefficients ``[n, 11]`` of the phase basis for ``theta [n, 4]`` at ``phi_c = 0``."""
        mc, q, t_c = theta[:, 0], theta[:, 1], theta[:, 3]
        a, b = pn_phase_coefficients(symmetric_mass_ratio(q))
        log_u = torch.log(math.pi * MTSUN_S * total_mass(mc, q)) / 3.0  # u = (pi G M / c^3)^(1/3)
        powers = torch.exp(self._exponents * log_u.unsqueeze(-1))  # u^(k - 5)
        a_u = (a + b * log_u.unsqueeze(-1)) * powers
        b_u = b * powers
        return torch.stack(
            [a_u[:, 0], a_u[:, 2], a_u[:, 3], a_u[:, 4], a_u[:, 5] - math.pi / 4, b_u[:, 5], a_u[:, 6], b_u[:, 6],
             a_u[:, 7], t_c, torch.ones_like(t_c)],
            -1,
        )

    def _bins_and_scale(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Number of bins below ``f_ISCO`` (long) and the amplitude scale ``[...]`` of ``theta [..., 4]``."""
        m = total_mass(theta[..., 0], theta[..., 1])
        f_isco = 1.0 / (6.0**1.5 * math.pi * MTSUN_S * m)
        stops = torch.searchsorted(self.frequencies, f_isco.reshape(-1), right=True).view(f_isco.shape)
        scale = _AMPLITUDE * (MTSUN_S * theta[..., 0]) ** (5.0 / 6.0) / (MPC_S * theta[..., 2])
        return stops, scale

    def _phases(self, coefficients: Tensor, stops: Tensor) -> Tensor:
        """Interleaved ``(cos Psi, sin Psi)`` ``[n, 2 top]`` for phase ``coefficients [n, 11]``, zero at and above
        each ``stop``. The result is a view of a reused buffer: valid until the next call.
        """
        n, top, low = coefficients.shape[0], int(stops.max()), int(stops.min())
        if self._buffer.numel() < n * 2 * top:
            self._buffer = torch.empty(n * 2 * top, dtype=torch.float64)
        values = self._buffer[: n * 2 * top].view(n, 2 * top)
        torch.mm(coefficients, self._basis[:, : 2 * top], out=values)
        values.cos_()
        if low < top:
            values[:, 2 * low :].mul_(self._bin_of_column[2 * low : 2 * top] < stops.unsqueeze(-1))
        return values

    def overlap(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, hh)`` for ``theta [..., B, 4]`` (``Mc`` M_sun, ``q``, ``D_L`` Mpc, ``t_c`` s): the overlap
        ``z = sum conj(h_w) d_w`` (complex128) and ``hh = sum |h_w|^2`` (float64), each ``[..., B]``, of the
        whitened waveform ``h_w`` at ``phi_c = 0``. Parameters must be physical (``Mc, D_L > 0``, ``0 < q <= 1``).
        """
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.ndim < 2 or theta.shape[-1] != 4 or theta.shape[-2] != self.num_observations:
            raise ValueError(f"theta must be [..., {self.num_observations}, 4], got {list(theta.shape)}")
        batch = theta.shape[:-1]
        flat = theta.reshape(-1, self.num_observations, 4)
        stops, scale = self._bins_and_scale(flat)
        hh = scale * scale * self._norm[stops]
        coefficients = self.phase_coefficients(flat.reshape(-1, 4)).view(*flat.shape[:2], -1)
        parts = torch.empty(*flat.shape[:2], 2, dtype=torch.float64)
        for b in range(self.num_observations):
            values = self._phases(coefficients[:, b], stops[:, b])
            parts[:, b] = values @ self._weights[b, : values.shape[1]]
        z = torch.complex(parts[..., 0], parts[..., 1]) * scale
        return z.reshape(batch), hh.reshape(batch)

    def log_likelihood_one(self, theta: Tensor, observation: int) -> Tensor:
        """Marginal log-likelihood ``[n]`` of ``theta [n, 4]`` for observation ``observation`` alone."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 4)
        stops, scale = self._bins_and_scale(theta)
        values = self._phases(self.phase_coefficients(theta), stops)
        parts = values @ self._weights[observation, : values.shape[1]]
        r = torch.complex(parts[:, 0], parts[:, 1]).abs() * scale
        return log_i0(r) - 0.5 * scale * scale * self._norm[stops]

    def log_likelihood(self, theta: Tensor) -> Tensor:
        """``log I0(|z|) - hh / 2`` ``[..., B]`` for ``theta [..., B, 4]``: the ``gw`` log-likelihood averaged
        over ``phi_c`` uniform on the circle (same ``x``-dependent constant as ``log_likelihood``)."""
        z, hh = self.overlap(theta)
        return log_i0(z.abs()) - 0.5 * hh

    def time_profile(self, theta: Tensor, times: Tensor, observation: int) -> tuple[Tensor, Tensor]:
        """``(z, hh)`` of templates ``theta [n, 4]`` (``t_c`` ignored) at every ``t_c`` in ``times [m]`` against
        observation ``observation``: ``z`` complex ``[n, m]``, ``hh`` ``[n]``."""
        stops, scale = self._bins_and_scale(theta)
        rows = theta.clone()
        rows[:, 3] = 0.0
        values = self._phases(self.phase_coefficients(rows), stops)
        top = values.shape[1] // 2
        shifted = self.data[observation, :top, None] * torch.exp(
            1j * _TWO_PI * self.frequencies[:top, None] * times.to(torch.float64))  # [top, m]
        parts = (values @ self._real_weights(shifted)).view(-1, 2, times.numel())
        return torch.complex(parts[:, 0], parts[:, 1]) * scale[:, None], scale * scale * self._norm[stops]


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
