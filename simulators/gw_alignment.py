"""Proxy alignment of whitened strain for group-equivariant NPE (GNPE, :mod:`sbi_gen.gnpe`).

Two parameters of a TaylorF2 signal leave their mark on the data as a known phase:

- the coalescence time ``t_c``: ``h(f; t_c) = h(f; 0) e^{-2 pi i f t_c}``, exactly;
- the chirp mass ``Mc``, at leading (Newtonian) order: ``h ∝ e^{-i Psi_N(f)}`` with
  ``Psi_N(f) = 3/128 (pi G Mc f / c^3)^(-5/3)`` (the ``k = 0`` term of the phase in
  :mod:`sbi_gen_simulators.gw_waveform`), hundreds of radians at 20 Hz.

Given proxies ``(u_hat, t_hat)`` near the true values, :func:`align_whitened_strain` multiplies
every bin by ``exp(i u_hat (f / f_min)^(-5/3) + 2 pi i f t_hat)``, which removes the time shift and
the Newtonian chirp of a signal with ``u = u_hat`` and ``t_c = t_hat`` and leaves a slowly varying
residue otherwise (heterodyning; Dax et al. 2022, ICLR, arXiv:2111.13139 for the time, and the
chirp-mass heterodyning of DINGO-BNS, Dax et al. 2025, Nature 639, 49, arXiv:2407.09602). The factor
has unit modulus in every bin, so white Gaussian noise stays white Gaussian noise of unit variance:
the aligned data are a signal in the same noise.

Proxy coordinates. The chirp mass enters as ``u = Psi_N(f_min)`` in radians
(:func:`newtonian_phase`), in which a fixed kernel width means a fixed dephasing at ``f_min`` whatever
the mass; the time stays ``t_c`` in seconds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_gen_simulators.gw_waveform import MTSUN_S

__all__ = ["align_whitened_strain", "chirp_mass_from_newtonian_phase", "newtonian_phase", "ProxyAlignedStrain"]


def newtonian_phase(chirp_mass: Tensor, f_min: float) -> Tensor:
    """``u = 3/128 (pi G Mc f_min / c^3)^(-5/3)`` [rad] for the detector-frame chirp mass in M_sun."""
    return 3.0 / 128.0 * (math.pi * MTSUN_S * f_min * chirp_mass) ** (-5.0 / 3.0)


def chirp_mass_from_newtonian_phase(u: Tensor, f_min: float) -> Tensor:
    """The inverse of :func:`newtonian_phase`: chirp mass [M_sun] from ``u`` [rad]."""
    return (128.0 * u / 3.0) ** (-3.0 / 5.0) / (math.pi * MTSUN_S * f_min)


def align_whitened_strain(x: Tensor, proxy: Tensor, frequencies: Tensor, f_min: float) -> Tensor:
    """``x [n, n_det, 2, n_bins]`` times ``exp(i u (f / f_min)^(-5/3) + 2 pi i f t)`` per bin.

    ``proxy [n, 2]`` holds ``(u [rad], t [s])``. Computed in float64, returned in ``x``'s dtype.
    """
    u, t = proxy[:, 0].double(), proxy[:, 1].double()
    f = frequencies.double()
    phase = u[:, None] * (f / f_min) ** (-5.0 / 3.0) + 2.0 * math.pi * f * t[:, None]  # [n, n_bins]
    rotation = torch.polar(torch.ones_like(phase), phase)[:, None]  # [n, 1, n_bins]
    data = x.double()
    rotated = torch.complex(data[:, :, 0], data[:, :, 1]) * rotation
    return torch.stack([rotated.real, rotated.imag], dim=2).to(x.dtype)


class ProxyAlignedStrain:
    """What :mod:`sbi_gen.gnpe` needs from a single-detector whitened-strain simulator (mixed into ``gw``).

    Proxies: ``(u, t_c)`` for ``theta`` columns ``(chirp_mass, coalescence_time)`` (module docstring).
    ``proxy_half_widths`` is the default uniform kernel ``|proxy - value| <= half width``: 10 rad of
    Newtonian phase at ``f_min`` and 4 ms, a few times the posterior standard deviations at SNR 10-35
    (the Fisher matrix of the three benchmark injections gives 2-5 rad and 1.5-5 ms), so that one
    Gibbs step moves a chain across the posterior.
    """

    proxy_parameters = ("chirp_mass", "coalescence_time")
    proxy_names = ("newtonian_phase_at_f_min", "coalescence_time")
    proxy_units = ("rad", "s")
    proxy_half_widths = (10.0, 0.004)

    def to_proxy_coordinates(self, values: Tensor) -> Tensor:
        """``[n, 2]`` ``(Mc [M_sun], t_c [s])`` -> ``(u [rad], t_c [s])``."""
        values = values.double()
        return torch.stack([newtonian_phase(values[:, 0], self.options["f_min"]), values[:, 1]], 1)

    def from_proxy_coordinates(self, coordinates: Tensor) -> Tensor:
        """The inverse of :meth:`to_proxy_coordinates`."""
        coordinates = coordinates.double()
        mc = chirp_mass_from_newtonian_phase(coordinates[:, 0], self.options["f_min"])
        return torch.stack([mc, coordinates[:, 1]], 1)

    def log_abs_det_proxy_coordinates(self, values: Tensor) -> Tensor:
        """``log |d(u, t_c) / d(Mc, t_c)|`` ``[n]``: ``log(5 u / (3 Mc))``."""
        mc = values[:, 0].double()
        return torch.log(5.0 / 3.0 * newtonian_phase(mc, self.options["f_min"]) / mc)

    def align(self, x: Tensor, proxy: Tensor) -> Tensor:
        """``x [n, *x_shape]`` aligned on ``proxy [n, 2]`` (:func:`align_whitened_strain`)."""
        return align_whitened_strain(x, proxy, self.frequencies, self.options["f_min"])
