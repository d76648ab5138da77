"""Two-detector gravitational-wave simulator: a TaylorF2 binary seen by LIGO Hanford and Livingston.

Model. The binary and the noise are those of :mod:`sbi_gen_simulators.gw`
(restricted non-spinning TaylorF2 (2, 2) mode, 3.5PN phase, cut at the
Schwarzschild ISCO; stationary Gaussian noise with the aLIGO design PSD), now
with a sky position, a polarization angle and an inclination, observed by the
LIGO Hanford (H1) and Livingston (L1) 4 km interferometers. With
``A(f) exp(-i Psi(f))`` the TaylorF2 waveform of :mod:`~sbi_gen_simulators.gw_waveform`
(coalescence at ``t_c``, measured at the geocentre)::

    h+(f) = A (1 + cos^2 iota) / 2 exp(-i Psi),      hx(f) = -i A cos(iota) exp(-i Psi)
    h_det(f) = [F+_det h+(f) + Fx_det hx(f)] exp(-2 pi i f dt_det)

which is LALSimulation's ``SimInspiralChooseFDWaveform(..., TaylorF2)`` ``(hplus,
hcross)`` for inclination ``iota`` (with the phase mapping of
:func:`~sbi_gen_simulators.gw_waveform.lal_phi_ref`). ``dt_det`` is the arrival
time at the detector minus that at the geocentre, ``-(r_det . n) / c`` for the
unit vector ``n`` towards the source, and ``F+``, ``Fx`` are the antenna patterns
``F+ = X.D.X - Y.D.Y``, ``Fx = X.D.Y + Y.D.X`` with the detector's response tensor
``D = (u_x u_x - u_y u_y) / 2`` and the polarization basis ``X = -cos psi e_ra +
sin psi e_dec``, ``Y = sin psi e_ra + cos psi e_dec`` (``e_ra``, ``e_dec``: unit
vectors of increasing right ascension and declination at the source). These are
the conventions of Anderson, Brady, Creighton and Flanagan 2001, "Excess power
statistics for detection of burst sources of gravitational radiation", Phys. Rev.
D 63, 042003, Appendix B, which LAL's ``XLALComputeDetAMResponse`` and
``XLALTimeDelayFromEarthCenter`` implement. Both are evaluated at one fixed
reference time (the Earth's rotation during a segment is neglected): the
Greenwich sidereal time comes from astropy (``Time(gps, format="gps")
.sidereal_time("mean", "greenwich")``, UT1-based, IAU 2006), while LAL's
``XLALGreenwichMeanSiderealTime`` takes UT1 = UTC; at the default reference time
the two differ by 1.8e-5 rad (UT1 - UTC = 0.25 s).

Detectors. Vertex geodetic latitude, longitude and elevation on the WGS-84
ellipsoid and the arms' azimuths (clockwise from North) and altitudes (above the
local tangent plane), from Althouse, Jones and Lazzarini, "Determination of
global and local coordinate axes for the LIGO sites", LIGO-T980044-10 (the
values LALSuite's ``LALDetectors.h`` carries). The vertex goes to geocentric
coordinates with :class:`astropy.coordinates.EarthLocation`; the arm unit vectors
are built in the local North-East-Up frame of the geodetic vertex.

Parameters ``theta = (Mc, q, D_L, phi_c, t_c, ra, dec, psi, iota)``; every range is
an option (floats in the unit shown, or astropy quantities):

=========================  ======  ====================  ================================================
name                       unit    default prior         meaning
=========================  ======  ====================  ================================================
``chirp_mass``             M_sun   U(10, 25)             detector-frame chirp mass
``mass_ratio``             --      U(0.25, 1)            ``q = m2 / m1 <= 1``
``luminosity_distance``    Mpc     U(500, 2500)
``coalescence_phase``      rad     U(0, 2 pi)            GW phase at coalescence
``coalescence_time``       s       U(-0.02, 0.02)        at the geocentre, relative to the reference time
``right_ascension``        rad     U(0, 2 pi)
``declination``            rad     cosine(-pi/2, pi/2)   ``sin(dec)`` uniform: isotropic with ``ra``
``polarization_angle``     rad     U(0, pi)
``inclination``            rad     sine(0, pi)           ``cos(iota)`` uniform: isotropic orientation
=========================  ======  ====================  ================================================

(:class:`sbi_gen.prior.IndependentPrior`).

Data. ``x`` is float32 ``[n_det = 2, 2, n_bins]``: for each detector (H1, L1) the
real and imaginary parts of the strain whitened by that detector's PSD,
``d_w = d sqrt(4 df / S_n)``, so that the noise is i.i.d. ``N(0, 1)``; grid and
band as in ``gw`` (20-256 Hz, 1/8 Hz, 1,889 bins).

Likelihood. ``log_likelihood = sum_det [Re sum conj(h_w) d_w - 1/2 sum |h_w|^2]``,
the exact log-likelihood up to a function of ``x`` alone; at the truth,
``sum |d_w|^2 - 2 log_likelihood`` is chi-square with ``2 n_det n_bins`` degrees of
freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import astropy.constants as const
import astropy.units as u
import torch
from torch import Tensor

from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import IndependentPrior, Parameter
from sbi_gen_simulators.gw import (
    _DEFAULT_RANGES,
    PARAMETERS,
    WhitenedStrainSimulator,
    _as_value,
    _intrinsic_ranges,
)
from sbi_gen_simulators.gw_psd import frequency_grid, psd_on_grid, whitening_factor
from sbi_gen_simulators.gw_waveform import TaylorF2

__all__ = [
    "DETECTORS",
    "Detector",
    "GravitationalWaveNetwork",
    "NETWORK_PARAMETERS",
    "antenna_patterns",
    "greenwich_sidereal_time",
    "time_delays",
]

#: speed of light in m/s (astropy; exact in SI)
_C_SI = float(const.c.to_value(u.m / u.s))

NETWORK_PARAMETERS = PARAMETERS + (
    Parameter("right_ascension", "rad", r"$\alpha$", period=2 * math.pi),
    Parameter("declination", "rad", r"$\delta$"),
    Parameter("polarization_angle", "rad", r"$\psi$", period=math.pi),
    Parameter("inclination", "rad", r"$\iota$"),
)
_EXTRINSIC_DEFAULTS = ((0.0, 2 * math.pi), (-math.pi / 2, math.pi / 2), (0.0, math.pi), (0.0, math.pi))
_KINDS = ("uniform",) * 6 + ("cosine", "uniform", "sine")
#: GPS time of GW150914 (2015-09-14 09:50:45.4 UTC): the default reference time
GW150914_GPS = 1126259462.4


def _degrees(degrees: float, minutes: float = 0.0, seconds: float = 0.0) -> float:
    """Radians from degrees, arcminutes and arcseconds (all of the same sign)."""
    return math.radians(degrees + minutes / 60.0 + seconds / 3600.0)


@dataclass(frozen=True)
class Detector:
    """An L-shaped interferometer: geodetic vertex and arm directions (all angles in radians).

    Arguments:
        name: two-character prefix, e.g. ``"H1"``.
        latitude, longitude: geodetic (WGS-84) vertex latitude (North) and longitude (East).
        elevation: vertex height above the WGS-84 ellipsoid in m.
        x_azimuth, y_azimuth: arm azimuths, clockwise from North in the local tangent plane.
        x_altitude, y_altitude: arm angles above the local tangent plane.
    """

    name: str
    latitude: float
    longitude: float
    elevation: float
    x_azimuth: float
    y_azimuth: float
    x_altitude: float
    y_altitude: float

    @property
    def location(self) -> Tensor:
        """Geocentric Earth-fixed vertex position ``[3]`` in m (astropy ``EarthLocation``, WGS-84)."""
        from astropy.coordinates import EarthLocation

        site = EarthLocation.from_geodetic(
            self.longitude * u.rad, self.latitude * u.rad, self.elevation * u.m, ellipsoid="WGS84"
        )
        return torch.tensor([c.to_value(u.m) for c in (site.x, site.y, site.z)], dtype=torch.float64)

    def arm(self, azimuth: float, altitude: float) -> Tensor:
        """Earth-fixed unit vector ``[3]`` of an arm from its local azimuth and altitude."""
        lat, lon = self.latitude, self.longitude
        up = torch.tensor([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)],
                          dtype=torch.float64)
        east = torch.tensor([-math.sin(lon), math.cos(lon), 0.0], dtype=torch.float64)
        north = torch.linalg.cross(up, east)
        horizontal = math.cos(azimuth) * north + math.sin(azimuth) * east
        return math.cos(altitude) * horizontal + math.sin(altitude) * up

    @property
    def response(self) -> Tensor:
        """Response tensor ``D = (u_x u_x - u_y u_y) / 2`` ``[3, 3]`` (Anderson et al. 2001, Eq. B6)."""
        x, y = self.arm(self.x_azimuth, self.x_altitude), self.arm(self.y_azimuth, self.y_altitude)
        return 0.5 * (torch.outer(x, x) - torch.outer(y, y))


#: Vertex (geodetic latitude and longitude in degrees, minutes and seconds; elevation in m above the
#: WGS-84 ellipsoid), arm azimuths (degrees clockwise from North: H1's X arm points N 35.9994 W) and arm
#: altitudes (rad) from LIGO-T980044-10 (Althouse, Jones and Lazzarini), the values LALSuite's
#: LALDetectors.h carries as LAL_LHO_4K_* and LAL_LLO_4K_*.
DETECTORS: dict[str, Detector] = {
    "H1": Detector(
        "H1", _degrees(46, 27, 18.528), -_degrees(119, 24, 27.5657), 142.554,
        _degrees(324.0006), _degrees(234.0006), -6.195e-4, 1.25e-5,
    ),
    "L1": Detector(
        "L1", _degrees(30, 33, 46.4196), -_degrees(90, 46, 27.2654), -6.574,
        _degrees(252.2835), _degrees(162.2835), -3.121e-4, -6.107e-4,
    ),
}


@cache
def greenwich_sidereal_time(gps: float, kind: str = "mean") -> float:
    """Greenwich ``kind`` ("mean" or "apparent") sidereal time in rad, ``[0, 2 pi)``, at a GPS time.

    Uses astropy with the IERS tables it ships (no download), so ``gps`` must lie in
    their range.
    """
    from astropy.time import Time
    from astropy.utils import iers

    if kind not in ("mean", "apparent"):
        raise ValueError(f"sidereal_time must be 'mean' or 'apparent', got {kind!r}")
    with iers.conf.set_temp("auto_download", False):
        time = Time(gps, format="gps")
        # astropy extrapolates UT1 - UTC past its table's end without a word once that table is recent
        # (it raises only while the table is over 30 days old), so the range is checked here
        mjd = iers.earth_orientation_table.get()["MJD"].to_value(u.day)
        if not mjd.min() <= time.utc.mjd <= mjd.max():
            raise ValueError(f"no sidereal time for GPS {gps}: outside astropy's bundled IERS tables "
                             f"(MJD {mjd.min():.0f} to {mjd.max():.0f})")
        try:
            angle = time.sidereal_time(kind, "greenwich")
        except (iers.IERSRangeError, ValueError) as error:
            raise ValueError(
                f"no sidereal time for GPS {gps}: outside astropy's bundled IERS tables ({error})"
            ) from None
    return float(angle.to_value(u.rad)) % (2 * math.pi)


def _source_frame(ra: Tensor, dec: Tensor, gmst: float) -> tuple[Tensor, Tensor, Tensor]:
    """Earth-fixed unit vectors ``[..., 3]``: towards the source, and of increasing ra and dec there."""
    gha = gmst - ra  # Greenwich hour angle
    cos_h, sin_h, cos_d, sin_d = torch.cos(gha), torch.sin(gha), torch.cos(dec), torch.sin(dec)
    n = torch.stack([cos_d * cos_h, -cos_d * sin_h, sin_d], -1)
    e_ra = torch.stack([sin_h, cos_h, torch.zeros_like(gha)], -1)
    e_dec = torch.stack([-sin_d * cos_h, sin_d * sin_h, cos_d], -1)
    return n, e_ra, e_dec


def antenna_patterns(response: Tensor, ra: Tensor, dec: Tensor, psi: Tensor, gmst: float) -> tuple[Tensor, Tensor]:
    """``(F+, Fx)``, each ``[..., n_det]``, of detectors with response tensors ``[n_det, 3, 3]``.

    ``ra``, ``dec``, ``psi`` ``[...]`` in rad; ``gmst`` (rad) the Greenwich sidereal time. The
    polarization basis is that of Anderson et al. 2001, Appendix B (module docstring).
    """
    ra, dec, psi = (torch.as_tensor(v, dtype=torch.float64) for v in (ra, dec, psi))
    _, e_ra, e_dec = _source_frame(ra, dec, gmst)
    cos_p, sin_p = torch.cos(psi).unsqueeze(-1), torch.sin(psi).unsqueeze(-1)
    x = -cos_p * e_ra + sin_p * e_dec
    y = sin_p * e_ra + cos_p * e_dec
    d = torch.as_tensor(response, dtype=torch.float64)
    dx, dy = torch.einsum("kij,...j->...ki", d, x), torch.einsum("kij,...j->...ki", d, y)  # [..., n_det, 3]
    x, y = x.unsqueeze(-2), y.unsqueeze(-2)
    return ((x * dx).sum(-1) - (y * dy).sum(-1), (x * dy).sum(-1) + (y * dx).sum(-1))


def time_delays(location: Tensor, ra: Tensor, dec: Tensor, gmst: float) -> Tensor:
    """Arrival time at each detector minus at the geocentre, ``-(r . n) / c``: ``[..., n_det]`` in s.

    ``location`` ``[n_det, 3]`` Earth-fixed in m; ``ra``, ``dec`` ``[...]`` in rad.
    """
    ra, dec = (torch.as_tensor(v, dtype=torch.float64) for v in (ra, dec))
    n, _, _ = _source_frame(ra, dec, gmst)
    return -(n @ torch.as_tensor(location, dtype=torch.float64).T) / _C_SI


class GravitationalWaveNetwork(WhitenedStrainSimulator):
    """Whitened strain of a TaylorF2 binary in the H1 and L1 detectors (module docstring).

    Arguments:
        chirp_mass, mass_ratio, luminosity_distance, coalescence_phase, coalescence_time,
        right_ascension, declination, polarization_angle, inclination:
            prior ranges ``(low, high)`` (floats in M_sun, --, Mpc, rad, s, rad, rad, rad, rad, or
            astropy quantities); declination must lie in ``[-pi/2, pi/2]`` and inclination in ``[0, pi]``.
        detectors: names in :data:`DETECTORS`, in the order of ``x``'s first axis.
        reference_time: GPS time (s) at which antenna patterns and delays are evaluated.
        sidereal_time: ``"mean"`` (as LAL) or ``"apparent"`` Greenwich sidereal time.
        f_min, f_max: frequency band in Hz (floats or quantities).
        duration: segment length in s; the grid step is ``1 / duration``.
        psd: a name in :data:`sbi_gen_simulators.gw_psd.PSD_TABLES` for every detector, or one per detector.
        chunk_size: waveforms evaluated at once.

    Example:
        >>> sim = GravitationalWaveNetwork()
        >>> x = sim.simulate(sim.prior.sample(3, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
        >>> tuple(x.shape), x.dtype
        ((3, 2, 2, 1889), torch.float32)
    """

    def __init__(
        self,
        chirp_mass: Sequence[float] = _DEFAULT_RANGES[0],
        mass_ratio: Sequence[float] = _DEFAULT_RANGES[1],
        luminosity_distance: Sequence[float] = _DEFAULT_RANGES[2],
        coalescence_phase: Sequence[float] = _DEFAULT_RANGES[3],
        coalescence_time: Sequence[float] = _DEFAULT_RANGES[4],
        right_ascension: Sequence[float] = _EXTRINSIC_DEFAULTS[0],
        declination: Sequence[float] = _EXTRINSIC_DEFAULTS[1],
        polarization_angle: Sequence[float] = _EXTRINSIC_DEFAULTS[2],
        inclination: Sequence[float] = _EXTRINSIC_DEFAULTS[3],
        detectors: Sequence[str] = ("H1", "L1"),
        reference_time: float = GW150914_GPS,
        sidereal_time: str = "mean",
        f_min: float = 20.0,
        f_max: float = 256.0,
        duration: float = 8.0,
        psd: str | Sequence[str] = "aligo_zdhp",
        chunk_size: int = 256,
    ) -> None:
        ranges = _intrinsic_ranges(
            (chirp_mass, mass_ratio, luminosity_distance, coalescence_phase, coalescence_time, right_ascension,
             declination, polarization_angle, inclination),
            NETWORK_PARAMETERS,
        )
        low, high = zip(*ranges)
        self.prior = IndependentPrior(_KINDS, low, high, NETWORK_PARAMETERS)
        detectors = [detectors] if isinstance(detectors, str) else list(detectors)
        unknown = [name for name in detectors if name not in DETECTORS]
        if not detectors or unknown or len(set(detectors)) != len(detectors):
            raise ValueError(f"detectors must be distinct names from {sorted(DETECTORS)}, got {detectors}")
        psds = [psd] * len(detectors) if isinstance(psd, str) else list(psd)
        if len(psds) != len(detectors):
            raise ValueError(f"give one PSD name, or one per detector ({len(detectors)}), got {psds}")
        reference_time = _as_value(reference_time, "s")
        f_min, f_max, duration = _as_value(f_min, "Hz"), _as_value(f_max, "Hz"), _as_value(duration, "s")
        self.options: dict[str, Any] = {
            **{p.name: list(r) for p, r in zip(NETWORK_PARAMETERS, ranges)},
            "detectors": detectors, "reference_time": reference_time, "sidereal_time": sidereal_time,
            "f_min": f_min, "f_max": f_max, "duration": duration, "psd": psd if isinstance(psd, str) else psds,
        }
        self.detectors = [DETECTORS[name] for name in detectors]
        self.gmst = greenwich_sidereal_time(reference_time, sidereal_time)
        self.locations = torch.stack([d.location for d in self.detectors])  # [n_det, 3] m
        self.responses = torch.stack([d.response for d in self.detectors])  # [n_det, 3, 3]
        self.frequencies = frequency_grid(f_min, f_max, duration)
        self.delta_f = 1.0 / duration
        self.psd = torch.stack([psd_on_grid(self.frequencies, name) for name in psds])  # [n_det, n_bins]
        self.whitening = whitening_factor(self.psd, self.delta_f)
        self.num_detectors = len(detectors)
        self.x_shape = (self.num_detectors, 2, self.frequencies.numel())
        self._waveform = TaylorF2(self.frequencies, chunk_size=chunk_size)

    def antenna_patterns(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(F+, Fx)`` ``[..., n_det]`` for ``theta [..., 9]`` at the reference time."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        return antenna_patterns(self.responses, theta[..., 5], theta[..., 6], theta[..., 7], self.gmst)

    def time_delays(self, theta: Tensor) -> Tensor:
        """Arrival times at the detectors minus at the geocentre ``[..., n_det]`` (s) for ``theta [..., 9]``."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        return time_delays(self.locations, theta[..., 5], theta[..., 6], self.gmst)

    def polarizations(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(h+, hx)``, complex128 ``[..., n_bins]`` (strain / Hz, not whitened) at the geocentre."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        h = self._waveform(theta[..., :5])
        cos_i = torch.cos(theta[..., 8]).unsqueeze(-1)
        return h * (0.5 * (1 + cos_i**2)), h * (-1j * cos_i)

    def detector_strain(self, theta: Tensor) -> Tensor:
        """Noise-free strain ``F+ h+ + Fx hx`` delayed to each detector: complex128 ``[..., n_det, n_bins]``."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.shape[-1] != self.prior.dim:
            raise ValueError(f"theta must be [..., {self.prior.dim}] ({', '.join(self.prior.names)}), "
                             f"got shape {list(theta.shape)}")
        intrinsic = theta[..., :5].unsqueeze(-2).repeat_interleave(self.num_detectors, -2)  # [..., n_det, 5]
        intrinsic[..., 4] += self.time_delays(theta)  # the delay is a later coalescence time at the detector
        return self._waveform(intrinsic).mul_(self.response_factor(theta).unsqueeze(-1))  # fresh: scaled in place

    def response_factor(self, theta: Tensor) -> Tensor:
        """``F+ (1 + cos^2 iota) / 2 - i Fx cos iota``: complex128 ``[..., n_det]`` for ``theta [..., 9]``."""
        fplus, fcross = self.antenna_patterns(theta)
        cos_i = torch.cos(torch.as_tensor(theta, dtype=torch.float64)[..., 8]).unsqueeze(-1)
        return torch.complex(fplus * 0.5 * (1 + cos_i**2), -fcross * cos_i)

    # the estimator options of gw (its comment says how they were chosen), with the basis of this simulator
    suggested_estimator_options = {
        "embedding": "gw_svd", "embedding_features": 64, "hidden_features": 128,
        "embedding_options": {"simulator": "gw_network", "hidden_features": 256}, "bounded_support": "logit",
    }
    #: the sky position, polarization and inclination act analytically too (antenna patterns, delays)
    redrawn_parameters = WhitenedStrainSimulator.redrawn_parameters + (
        "right_ascension", "declination", "polarization_angle", "inclination")

    def project(self, theta: Tensor, base: Tensor) -> Tensor:
        """``[F+ (1 + cos^2 iota) / 2 - i Fx cos iota] base e^{i phi_c - 2 pi i f (t_c + dt)} / D_L`` per detector.

        ``theta [n, 9]``, ``base`` complex128 ``[n, n_bins]`` -> complex128 ``[n, n_det, n_bins]``.
        """
        shift = self._shift(theta, self.frequencies, self.time_delays(theta))  # [n, n_det, n_bins]
        return shift.mul_(base.unsqueeze(-2)).mul_(self.response_factor(theta).unsqueeze(-1))

    def whitened_waveform(self, theta: Tensor) -> Tensor:
        """Noise-free whitened strain ``h_w``: complex128 ``[..., n_det, n_bins]`` for ``theta [..., 9]``."""
        return self.detector_strain(theta).mul_(self.whitening)


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(
            "gw_network",
            "whitened TaylorF2 strain in LIGO H1 and L1 (antenna patterns, delays), aLIGO design noise, "
            "20-256 Hz; theta = (Mc, q, D_L, phi_c, t_c, ra, dec, psi, iota)",
            GravitationalWaveNetwork,
        )
    ]
