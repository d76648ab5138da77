"""Phase-marginalized likelihood of the ``gw`` simulator (one detector), fused with the TaylorF2 waveform.

The TaylorF2 waveform is ``h = A exp(-i Psi)`` with
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
circle (``high - low = 2 pi``); :class:`~sbi_gen_simulators.gw_reference.GWReferencePosterior`,
which samples this likelihood, checks that.

Units: ``Mc`` in M_sun, ``D_L`` in Mpc, ``t_c`` in s, frequencies in Hz; all arithmetic in float64.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sbi_gen_simulators.gw_waveform import MPC_S, MTSUN_S, pn_phase_coefficients, symmetric_mass_ratio, total_mass

if TYPE_CHECKING:
    from sbi_gen_simulators.gw import GravitationalWave

__all__ = ["PhaseMarginalizedLikelihood", "log_i0"]

_AMPLITUDE = math.sqrt(5.0 / 24.0) * math.pi ** (-2.0 / 3.0)
_TWO_PI = 2.0 * math.pi


def log_i0(x: Tensor) -> Tensor:
    """``log I0(x)`` for ``x >= 0``, stable for large ``x`` (``log i0e(x) + x``)."""
    return torch.log(torch.special.i0e(x)) + x


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
