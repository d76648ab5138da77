"""Restricted, non-spinning TaylorF2 waveforms, batched in float64 torch.

Model (stationary phase approximation, Buonanno, Iyer, Ochsner, Pan and
Sathyaprakash 2009, "Comparison of post-Newtonian templates for compact binary
inspiral signals in gravitational-wave detectors", Phys. Rev. D 80, 084043,
arXiv:0907.0700; "BIOPS" below)::

    h(f) = A(f) exp(-i Psi(f))                               for f <= f_ISCO, 0 above
    A(f) = sqrt(5/24) pi^(-2/3) (G Mc / c^3)^(5/6) (c / D_L) f^(-7/6)
    Psi(f) = 2 pi f t_c - phi_c - pi/4 + 3 / (128 eta v^5) sum_k alpha_k v^k      (BIOPS Eq. 3.18)
    v = (pi G M f / c^3)^(1/3),   f_ISCO = c^3 / (6^(3/2) pi G M)

with the Fourier convention ``h(f) = int h(t) exp(-2 pi i f t) dt`` (a signal
delayed by ``dt`` is multiplied by ``exp(-2 pi i f dt)``), ``M = m1 + m2``,
``eta = m1 m2 / M^2 = q / (1 + q)^2`` and ``Mc = eta^(3/5) M``. ``phi_c`` is the
phase of the (2, 2) mode (the GW phase, twice the orbital phase), so the
posterior of ``phi_c`` is unimodal on the circle. The non-spinning
coefficients (BIOPS Eq. 3.18, with ``v_lso = 1/sqrt(6)``)::

    alpha_0 = 1,  alpha_1 = 0,  alpha_2 = 3715/756 + 55 eta/9,  alpha_3 = -16 pi,
    alpha_4 = 15293365/508032 + 27145 eta/504 + 3085 eta^2/72,
    alpha_5 = pi (38645/756 - 65 eta/9) (1 + 3 ln(v / v_lso)),
    alpha_6 = 11583231236531/4694215680 - 640 pi^2/3 - 6848 gamma_E/21 - (6848/21) ln(4 v)
              + (-15737765635/3048192 + 2255 pi^2/12) eta + 76055 eta^2/1728 - 127825 eta^3/1296,
    alpha_7 = pi (77096675/254016 + 378515 eta/1512 - 74045 eta^2/756).

Constants (``G M_sun / c^3``, the megaparsec in light-seconds) come from
:mod:`astropy.constants` and :mod:`astropy.units`.

Mapping to LALSimulation. ``SimInspiralChooseFDWaveform(..., approximant=TaylorF2,
f_max=0, f_ref=0)`` returns, for a face-on source (inclination 0), ``hplus`` equal
to our ``h`` with ``t_c = 0`` when its ``phiRef`` (an *orbital* phase) is

    phiRef = (phi_c + pi - delta(eta)) / 2,    delta(eta) = 3/(128 eta) pi (38645/756 - 65 eta/9) (3/2) ln 6,

(:func:`lal_phi_ref`): LAL writes the 2.5PN term as ``(1 + 3 ln v)`` (no
``v_lso``, a mass-dependent constant phase ``delta``), multiplies the GW phase
by ``-2 phiRef`` and its amplitude carries a minus sign (a phase of ``pi``). LAL
places coalescence at the end of its segment (epoch ``-1/df``), which on the
grid ``f = k df`` is a phase of ``2 pi k``; our ``t_c`` is then
``h_LAL(f) exp(-2 pi i f t_c)``. ``hcross = -i hplus`` for a face-on source. The
last non-zero bin is ``floor(f_ISCO / df)`` in both.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import astropy.constants as const
import astropy.units as u
import torch
from torch import Tensor

__all__ = [
    "MTSUN_S",
    "MPC_S",
    "component_masses",
    "symmetric_mass_ratio",
    "total_mass",
    "isco_frequency",
    "pn_phase_coefficients",
    "lal_phi_ref",
    "TaylorF2",
    "taylorf2",
]

#: G M_sun / c^3 in seconds (astropy: IAU 2015 nominal solar mass parameter)
MTSUN_S = float((const.G * const.M_sun / const.c**3).to(u.s).value)
#: one megaparsec divided by c, in seconds
MPC_S = float((1 * u.Mpc / const.c).to(u.s).value)
_EULER_GAMMA = 0.57721566490153286060651209
#: the amplitude prefactor sqrt(5/24) pi^(-2/3)
_AMPLITUDE_PREFACTOR = math.sqrt(5.0 / 24.0) * math.pi ** (-2.0 / 3.0)
_LN6 = math.log(6.0)


def symmetric_mass_ratio(mass_ratio: Tensor) -> Tensor:
    """``eta = q / (1 + q)^2`` for ``q = m2 / m1``."""
    return mass_ratio / (1 + mass_ratio) ** 2


def total_mass(chirp_mass: Tensor, mass_ratio: Tensor) -> Tensor:
    """``M = Mc eta^(-3/5)`` (same unit as ``chirp_mass``)."""
    return chirp_mass * symmetric_mass_ratio(mass_ratio) ** (-0.6)


def component_masses(chirp_mass: Tensor, mass_ratio: Tensor) -> tuple[Tensor, Tensor]:
    """``(m1, m2)`` with ``m1 >= m2`` from ``Mc`` and ``q = m2 / m1 <= 1``."""
    m = total_mass(chirp_mass, mass_ratio)
    return m / (1 + mass_ratio), m * mass_ratio / (1 + mass_ratio)


def isco_frequency(chirp_mass: Tensor, mass_ratio: Tensor) -> Tensor:
    """GW frequency (Hz) at the Schwarzschild ISCO, ``c^3 / (6^(3/2) pi G M)``, of masses in M_sun."""
    return 1.0 / (6.0**1.5 * math.pi * MTSUN_S * total_mass(chirp_mass, mass_ratio))


def pn_phase_coefficients(eta: Tensor) -> tuple[Tensor, Tensor]:
    """Coefficients of the PN phase ``Psi_PN = sum_k (a_k + b_k ln v) v^(k - 5)``, ``k = 0..7``.

    Arguments:
        eta: symmetric mass ratio ``[...]``.

    Returns:
        ``(a, b)``, each ``[..., 8]`` float64, including the factor ``3 / (128 eta)``
        (BIOPS Eq. 3.18). ``a_5`` holds ``3 ln(1 / v_lso) = (3/2) ln 6`` of the 2.5PN
        logarithm and ``a_6`` the ``-(6848/21) ln 4`` of the 3PN one; LALSimulation's
        ``PNPhasingSeries`` (``v``, ``vlogv``) has the same ``a`` except ``a_5``
        (see the module docstring) and the same ``b``.
    """
    eta = torch.as_tensor(eta, dtype=torch.float64)
    pi, pi2 = math.pi, math.pi**2
    one, zero = torch.ones_like(eta), torch.zeros_like(eta)
    c5 = pi * (38645.0 / 756.0 - 65.0 / 9.0 * eta)
    a = [
        one,
        zero,
        3715.0 / 756.0 + 55.0 / 9.0 * eta,
        -16.0 * pi * one,
        15293365.0 / 508032.0 + 27145.0 / 504.0 * eta + 3085.0 / 72.0 * eta**2,
        c5 * (1.0 + 1.5 * _LN6),
        (11583231236531.0 / 4694215680.0 - 640.0 / 3.0 * pi2 - 6848.0 / 21.0 * _EULER_GAMMA
         - 6848.0 / 21.0 * math.log(4.0))
        + (-15737765635.0 / 3048192.0 + 2255.0 / 12.0 * pi2) * eta
        + 76055.0 / 1728.0 * eta**2 - 127825.0 / 1296.0 * eta**3,
        pi * (77096675.0 / 254016.0 + 378515.0 / 1512.0 * eta - 74045.0 / 756.0 * eta**2),
    ]
    b = [zero, zero, zero, zero, zero, 3.0 * c5, -6848.0 / 21.0 * one, zero]
    scale = (3.0 / (128.0 * eta)).unsqueeze(-1)
    return scale * torch.stack(a, -1), scale * torch.stack(b, -1)


def lal_phi_ref(theta: Tensor) -> Tensor:
    """LALSimulation's ``phiRef`` (orbital phase, ``f_ref = 0``) that reproduces our ``phi_c``.

    ``theta [..., 5]`` as in :class:`TaylorF2`; returns ``[...]`` in ``[0, pi)``
    (``phiRef`` is defined modulo ``pi``). See the module docstring.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64)
    eta = symmetric_mass_ratio(theta[..., 1])
    delta = 3.0 / (128.0 * eta) * math.pi * (38645.0 / 756.0 - 65.0 / 9.0 * eta) * 1.5 * _LN6
    return torch.remainder((theta[..., 3] + math.pi - delta) / 2.0, math.pi)


class TaylorF2:
    """Batched TaylorF2 on a fixed frequency grid.

    The phase is a sum of fixed functions of ``f`` with per-source coefficients
    (``v = (pi M)^(1/3) f^(1/3)`` splits ``ln v`` and every power of ``v``), so a
    batch of phases is one ``[n, 11] @ [11, n_f]`` matrix product; the
    amplitude is an outer product. Sources are sorted by ``f_ISCO`` and
    evaluated in chunks only up to the chunk's last non-zero bin.

    Arguments:
        frequencies: ``[n_f]`` increasing frequencies in Hz (float64), all ``> 0``.
        weights: optional real ``[n_f]`` factor applied to every waveform (e.g. the
            whitening ``sqrt(4 df / S_n)``).
        chunk_size: sources evaluated at once (bounds memory).
        workers: threads that evaluate chunks concurrently (torch releases the GIL);
            each chunk runs single-threaded, which scales better than torch's
            intra-op threads on chunks this small.

    Calling it with ``theta [..., 5] = (Mc [M_sun, detector frame], q = m2/m1,
    D_L [Mpc], phi_c [rad], t_c [s])`` returns complex128 ``[..., n_f]``.

    Example:
        >>> f = torch.arange(160, 2049, dtype=torch.float64) / 8
        >>> h = TaylorF2(f)(torch.tensor([[20.0, 0.8, 1000.0, 0.3, 0.01]]))
        >>> h.shape, h.dtype
        (torch.Size([1, 1889]), torch.complex128)
    """

    def __init__(
        self, frequencies: Tensor, weights: Tensor | None = None, chunk_size: int = 256, workers: int = 1
    ) -> None:
        f = torch.as_tensor(frequencies, dtype=torch.float64).reshape(-1)
        if f.numel() == 0 or not bool((f > 0).all()) or not bool((f[1:] > f[:-1]).all()):
            raise ValueError("frequencies must be a non-empty, strictly increasing array of positive values")
        self.frequencies = f
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if self.weights is not None and self.weights.shape != f.shape:
            raise ValueError(f"weights {tuple(self.weights.shape)} must match frequencies {tuple(f.shape)}")
        self.chunk_size = int(chunk_size)
        self.workers = int(workers)
        w = f ** (1.0 / 3.0)
        log_w = torch.log(f) / 3.0
        # basis rows: w^-5, w^-3, w^-2, w^-1, 1, ln w, w, w ln w, w^2, f, 1 (constant phase)
        self._basis = torch.stack(
            [w**-5, w**-3, w**-2, w**-1, torch.ones_like(f), log_w, w, w * log_w, w**2, f, torch.ones_like(f)]
        )
        # the same basis, each column twice (real, imaginary slot), plus a row that shifts the imaginary
        # slot by -pi/2: one matrix product gives [x, x - pi/2] interleaved and one cos gives (cos x, sin x)
        quarter = torch.tensor([0.0, -math.pi / 2], dtype=torch.float64).repeat(f.numel())
        self._basis_interleaved = torch.cat([self._basis.repeat_interleave(2, dim=1), quarter.unsqueeze(0)])
        amplitude_f = f ** (-7.0 / 6.0)
        self._amplitude_f = amplitude_f if self.weights is None else amplitude_f * self.weights

    def phase_coefficients(self, theta: Tensor) -> Tensor:
        """Per-source coefficients ``[n, 11]`` of the phase basis (see the class docstring)."""
        mc, q, phi_c, t_c = theta[:, 0], theta[:, 1], theta[:, 3], theta[:, 4]
        eta = symmetric_mass_ratio(q)
        a, b = pn_phase_coefficients(eta)
        log_u = torch.log(math.pi * MTSUN_S * total_mass(mc, q)) / 3.0  # u = (pi M)^(1/3)
        powers = torch.exp(torch.arange(-5, 3, dtype=torch.float64) * log_u.unsqueeze(-1))  # u^(k-5)
        a_u = (a + b * log_u.unsqueeze(-1)) * powers  # coefficient of w^(k-5)
        b_u = b * powers  # coefficient of w^(k-5) ln w
        return torch.stack(
            [a_u[:, 0], a_u[:, 2], a_u[:, 3], a_u[:, 4], a_u[:, 5], b_u[:, 5], a_u[:, 6], b_u[:, 6], a_u[:, 7],
             2.0 * math.pi * t_c, -phi_c - math.pi / 4.0],
            -1,
        )

    def amplitude_scale(self, theta: Tensor) -> Tensor:
        """``sqrt(5/24) pi^(-2/3) (G Mc / c^3)^(5/6) c / D_L`` in s^(13/6) (``A(f) = scale f^(-7/6)``)."""
        return _AMPLITUDE_PREFACTOR * (MTSUN_S * theta[:, 0]) ** (5.0 / 6.0) / (MPC_S * theta[:, 2])

    def last_bins(self, theta: Tensor) -> Tensor:
        """Number of non-zero bins ``[n]``: those with ``f <= f_ISCO``."""
        f_isco = isco_frequency(theta[:, 0], theta[:, 1])
        return torch.searchsorted(self.frequencies, f_isco, right=True)

    def __call__(self, theta: Tensor, out: Tensor | None = None) -> Tensor:
        """Waveforms ``[..., n_f]`` complex128 for ``theta [..., 5]``.

        ``out``: optional complex128 ``[n, n_f]`` buffer (``n`` = number of sources)
        to write into, so repeated calls do not allocate (and page in) fresh memory.
        """
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.shape[-1] != 5:
            raise ValueError(f"theta must have 5 columns (Mc, q, D_L, phi_c, t_c), got shape {list(theta.shape)}")
        batch_shape = theta.shape[:-1]
        theta = theta.reshape(-1, 5)
        _check_parameters(theta)
        n, n_f = theta.shape[0], self.frequencies.numel()
        if out is None:
            out = torch.empty(n, n_f, dtype=torch.complex128)
        elif out.shape != (n, n_f) or out.dtype != torch.complex128 or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous complex128 tensor of shape {[n, n_f]}")
        if n == 0:
            return out.reshape(*batch_shape, n_f)
        # coefficients of x = -Psi, so that exp(-i Psi) = cos(x) + i sin(x), and 1 for the -pi/2 row
        coefficients = torch.cat([-self.phase_coefficients(theta), torch.ones(n, 1, dtype=torch.float64)], 1)
        scale = self.amplitude_scale(theta)
        stop = self.last_bins(theta)
        order = torch.argsort(stop, descending=True)
        stop_sorted = stop[order].tolist()
        bins = torch.arange(n_f)
        starts = list(range(0, n, self.chunk_size))
        workers = max(1, min(self.workers, len(starts)))

        def run(part: int) -> None:
            # full-width rows, so each chunk lands in `out` by a row copy; sources are sorted by
            # decreasing f_ISCO, so only the bins the previous chunk wrote need zeroing again
            block = torch.zeros(self.chunk_size, 2 * n_f, dtype=torch.float64)
            written = 0
            for start in starts[part::workers]:
                index = order[start : start + self.chunk_size]
                rows, k = len(index), stop_sorted[start]
                view = block[:rows]
                if written > k:
                    view[:, 2 * k : 2 * written] = 0.0
                written = k
                if k > 0:
                    values = view[:, : 2 * k]
                    torch.mm(coefficients[index], self._basis_interleaved[:, : 2 * k], out=values)
                    values.cos_()
                    amplitude = torch.outer(scale[index], self._amplitude_f[:k])
                    low = stop_sorted[start + rows - 1]
                    if low < k:  # zero above each source's own f_ISCO: only bins low..k-1 differ
                        amplitude[:, low:].mul_(bins[low:k] < stop[index].unsqueeze(-1))
                    values.view(rows, k, 2).mul_(amplitude.unsqueeze(-1))
                out.index_copy_(0, index, torch.view_as_complex(view.view(rows, n_f, 2)))

        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, range(workers)))
        else:
            run(0)
        return out.reshape(*batch_shape, n_f)


def _check_parameters(theta: Tensor) -> None:
    bad = ~((theta[:, 0] > 0) & (theta[:, 1] > 0) & (theta[:, 1] <= 1) & (theta[:, 2] > 0))
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise ValueError(
            f"TaylorF2 needs chirp_mass > 0, 0 < mass_ratio <= 1 and distance > 0; row {row} is "
            f"{theta[row].tolist()}"
        )


def taylorf2(frequencies: Tensor, theta: Tensor) -> Tensor:
    """One-shot :class:`TaylorF2`: complex128 ``[..., n_f]`` for ``theta [..., 5]``."""
    return TaylorF2(frequencies)(theta)
