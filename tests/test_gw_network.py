"""The gw_network simulator (H1 + L1): geometry, antenna patterns, delays and strain against LAL; noise; likelihood."""

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
import torch
from scipy import stats

import sbi_gen
from sbi_gen.prior import IndependentPrior
from sbi_gen_simulators.gw import GravitationalWave
from sbi_gen_simulators.gw_network import (
    DETECTORS,
    GravitationalWaveNetwork,
    antenna_patterns,
    greenwich_sidereal_time,
)
from sbi_gen_simulators.gw_waveform import component_masses, lal_phi_ref

THETA = torch.tensor(
    [
        [17.0, 0.7, 1200.0, 1.1, 0.007, 1.9, -0.4, 0.6, 0.9],
        [12.0, 0.4, 800.0, 5.0, -0.015, 4.4, 1.1, 2.7, 2.6],
        [22.0, 0.95, 2000.0, 0.2, 0.019, 0.3, 0.2, 0.1, 1.5],
    ],
    dtype=torch.float64,
)
EPS = float(torch.finfo(torch.float64).eps)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sim():
    return sbi_gen.get_simulator("gw_network")


@pytest.fixture(scope="module")
def lal():
    return pytest.importorskip("lal")


@pytest.fixture(scope="module")
def sky():
    """300 isotropic sky positions and polarization angles (ra, dec, psi) from the simulator's prior."""
    theta = GravitationalWaveNetwork().prior.sample(300, torch.Generator().manual_seed(0)).double()
    return theta[:, 5], theta[:, 6], theta[:, 7]


def _lal_detectors(lal):
    return [lal.CachedDetectors[lal.LALDetectorIndexLHODIFF], lal.CachedDetectors[lal.LALDetectorIndexLLODIFF]]


def test_registered_with_parameters_prior_and_shape(sim):
    assert isinstance(sim, GravitationalWaveNetwork)
    assert sim.x_shape == (2, 2, 1889)
    assert sim.prior.names == ["chirp_mass", "mass_ratio", "luminosity_distance", "coalescence_phase",
                               "coalescence_time", "right_ascension", "declination", "polarization_angle",
                               "inclination"]
    assert [p.astropy_unit for p in sim.prior.parameters] == [u.solMass, u.one, u.Mpc] + [u.rad, u.s] + [u.rad] * 4
    assert isinstance(sim.prior, IndependentPrior)
    assert sim.prior.kinds[5:] == ("uniform", "cosine", "uniform", "sine")
    assert sim.prior.low[5:].tolist() == pytest.approx([0, -math.pi / 2, 0, 0])
    assert sim.prior.high[5:].tolist() == pytest.approx([2 * math.pi, math.pi / 2, math.pi, math.pi])
    assert sim.options["detectors"] == ["H1", "L1"]
    # the config round trip that saved models and stores rely on
    again = sbi_gen.prior_from_config(sim.prior.to_config())
    theta = sim.prior.sample(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.log_prob(theta), sim.prior.log_prob(theta))


def test_simulate_is_deterministic_float32(sim):
    theta = sim.prior.sample(4, torch.Generator().manual_seed(0))
    x1 = sim.simulate(theta, torch.Generator().manual_seed(5))
    x2 = sim.simulate(theta, torch.Generator().manual_seed(5))
    assert x1.shape == (4, 2, 2, 1889) and x1.dtype == torch.float32
    assert torch.equal(x1, x2)


def test_detector_geometry_equals_lal(lal):
    """Vertex from LIGO-T980044 through astropy vs LAL's cached detectors; arms and response tensor."""
    for (name, prefix), cached in zip((("H1", "LHO_4K"), ("L1", "LLO_4K")), _lal_detectors(lal)):
        detector = DETECTORS[name]
        # LAL's constants are literals with 11 decimals (+-5e-12 rad, observed <= 5e-12): 1e-10 allows that
        assert detector.latitude == pytest.approx(getattr(lal, f"{prefix}_DETECTOR_LATITUDE_RAD"), abs=1e-10)
        assert detector.longitude == pytest.approx(getattr(lal, f"{prefix}_DETECTOR_LONGITUDE_RAD"), abs=1e-10)
        assert detector.x_azimuth == pytest.approx(getattr(lal, f"{prefix}_DETECTOR_ARM_X_AZIMUTH_RAD"), abs=1e-10)
        # LAL rounds the WGS-84 polar radius to the millimetre (b = 6356752.314 m): 0.3 mm apart
        assert np.abs(detector.location.numpy() - np.array(cached.location)).max() < 1e-3
        arm_x = [getattr(lal, f"{prefix}_ARM_X_DIRECTION_{c}") for c in "XYZ"]
        arm_y = [getattr(lal, f"{prefix}_ARM_Y_DIRECTION_{c}") for c in "XYZ"]
        ours_x = detector.arm(detector.x_azimuth, detector.x_altitude).numpy()
        ours_y = detector.arm(detector.y_azimuth, detector.y_altitude).numpy()
        assert np.abs(ours_x - arm_x).max() < 1e-10 and np.abs(ours_y - arm_y).max() < 1e-10
        # LAL stores the response tensor in single precision: agreement to float32 rounding
        assert np.abs(detector.response.numpy() - np.array(cached.response)).max() < 3e-8


def test_antenna_patterns_equal_lal(sim, sky, lal):
    ra, dec, psi = sky
    for k, cached in enumerate(_lal_detectors(lal)):
        # the same (single-precision) tensor in both: checks the formula and conventions to rounding. F = sum_ij
        # D_ij M_ij with M = X X^T - Y Y^T (or X Y^T + Y X^T), |M_ij| <= 1: on each side X, Y (6 sin/cos of 1 ulp,
        # 2 products, a sum: <= 8 eps/2 per component, entering twice) and the 9-term contraction round to
        # <= 13 eps sum |D_ij|, and the hour angle gmst - ra to ulp(2 pi) = 4 eps (|dF/d ra| <= 2 sum |D_ij|):
        # <= 2 (13 + 4) eps sum |D_ij| = 34 eps sum |D_ij| (1.5e-14 for L1; observed 2e-16)
        response32 = sim.responses[k].numpy().astype(np.float32)
        rounding = 34 * EPS * np.abs(response32.astype(np.float64)).sum()
        fplus, fcross = antenna_patterns(torch.from_numpy(response32).double()[None], ra, dec, psi, sim.gmst)
        theirs = np.array([lal.ComputeDetAMResponse(response32, a, d, p, sim.gmst)
                           for a, d, p in zip(ra.tolist(), dec.tolist(), psi.tolist())])
        assert np.abs(fplus[:, 0].numpy() - theirs[:, 0]).max() <= rounding
        assert np.abs(fcross[:, 0].numpy() - theirs[:, 1]).max() <= rounding
        # the simulator's float64 tensor against LAL's cached detector (float32): |dF| = |sum dD_ij M_ij|
        # <= ||dD||_F ||M||_F = sqrt(2) ||dD||_F (M has eigenvalues +-1, 0): 2.4e-8 (H1), 3.3e-8 (L1), plus the
        # rounding above
        difference = sim.responses[k].numpy() - np.array(cached.response, dtype=np.float64)
        bound = math.sqrt(2) * np.linalg.norm(difference) + rounding
        theta = torch.zeros(len(ra), 9, dtype=torch.float64)
        theta[:, 5], theta[:, 6], theta[:, 7] = ra, dec, psi
        fplus, fcross = sim.antenna_patterns(theta)
        theirs = np.array([lal.ComputeDetAMResponse(cached.response, a, d, p, sim.gmst)
                           for a, d, p in zip(ra.tolist(), dec.tolist(), psi.tolist())])
        assert np.abs(fplus[:, k].numpy() - theirs[:, 0]).max() <= bound
        assert np.abs(fcross[:, k].numpy() - theirs[:, 1]).max() <= bound
        assert float(fplus.abs().max()) <= 1 and float(fcross.abs().max()) <= 1


def test_time_delays_equal_lal(sim, sky, lal):
    """LAL takes a GPS time and its own sidereal time (UT1 = UTC): the same hour angle needs ra shifted."""
    ra, dec, _ = sky
    gps = sim.options["reference_time"]
    shift = lal.GreenwichMeanSiderealTime(gps) - sim.gmst
    theta = torch.zeros(len(ra), 9, dtype=torch.float64)
    theta[:, 5], theta[:, 6] = ra, dec
    ours = sim.time_delays(theta).numpy()
    for k, cached in enumerate(_lal_detectors(lal)):
        theirs = np.array([lal.TimeDelayFromEarthCenter(cached.location, a + shift, d, gps)
                           for a, d in zip(ra.tolist(), dec.tolist())])
        # seconds; delays are up to 21 ms. The vertices differ by <= 0.3 mm (1e-12 s of light travel) and LAL's
        # hour angle is a difference of ~3.6e4 rad values (ulp 7e-12 rad, x 21 ms/rad): <= 1.3e-12 s < 1e-11
        assert np.abs(ours[:, k] - theirs).max() < 1e-11
    baseline = float(torch.linalg.norm(sim.locations[0] - sim.locations[1])) / 299792458.0
    assert np.abs(ours[:, 0] - ours[:, 1]).max() == pytest.approx(baseline, rel=0.02)  # 10.0 ms, nearly reached
    assert np.abs(ours[:, 0] - ours[:, 1]).max() <= baseline


def test_sidereal_time_is_lal_at_ut1(sim, lal):
    """astropy's GMST is UT1-based; LAL's takes UT1 = UTC: equal once LAL is given the UT1 instant."""
    from astropy.time import Time

    gps = sim.options["reference_time"]
    dut1 = float(Time(gps, format="gps").delta_ut1_utc)
    assert sim.gmst == greenwich_sidereal_time(gps, "mean")
    assert abs(sim.gmst - lal.GreenwichMeanSiderealTime(gps) % (2 * math.pi)) == pytest.approx(1.84e-5, rel=0.01)
    # what remains is IAU 1982 (LAL) vs IAU 2006 (astropy) GMST: 1.4e-7 rad here
    assert abs(sim.gmst - lal.GreenwichMeanSiderealTime(gps + dut1) % (2 * math.pi)) < 5e-7
    apparent = greenwich_sidereal_time(gps, "apparent")
    assert 0 < abs(apparent - sim.gmst) < 1e-4  # the equation of the equinoxes
    with pytest.raises(ValueError, match="'mean' or 'apparent'"):
        greenwich_sidereal_time(gps, "local")
    with pytest.raises(ValueError, match="outside astropy's bundled IERS tables"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # erfa: "dubious year" for 2043
        greenwich_sidereal_time(2e9)


def test_strain_equals_lal_polarizations_and_response(sim, lal):
    """Per detector: LAL's TaylorF2 (hplus, hcross) with inclination, LAL's F+, Fx and delay."""
    lalsim = pytest.importorskip("lalsimulation")
    f, df, gps = sim.frequencies.numpy(), sim.delta_f, sim.options["reference_time"]
    first = int(round(f[0] / df))
    ours = sim.detector_strain(THETA).numpy()
    for row, theta in enumerate(THETA):
        m1, m2 = (float(m) for m in component_masses(theta[0], theta[1]))
        series = lalsim.SimInspiralChooseFDWaveform(
            m1 * lal.MSUN_SI, m2 * lal.MSUN_SI, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, float(theta[2]) * 1e6 * lal.PC_SI,
            float(theta[8]), float(lal_phi_ref(theta[:5])), 0.0, 0.0, 0.0, df, 20.0, 0.0, 0.0, None, lalsim.TaylorF2,
        )
        hplus, hcross = (np.zeros(first + len(f), dtype=np.complex128) for _ in range(2))
        for full, s in zip((hplus, hcross), series):
            n = min(s.data.length, full.size)
            full[:n] = s.data.data[:n]
        hplus, hcross = hplus[first:], hcross[first:]
        scale = np.abs(hplus).max()
        ra, dec, psi = float(theta[5]), float(theta[6]), float(theta[7])
        for k, cached in enumerate(_lal_detectors(lal)):
            fplus, fcross = lal.ComputeDetAMResponse(cached.response, ra, dec, psi, sim.gmst)
            delay = lal.TimeDelayFromEarthCenter(
                cached.location, ra + lal.GreenwichMeanSiderealTime(gps) - sim.gmst, dec, gps
            )
            theirs = (fplus * hplus + fcross * hcross) * np.exp(-2j * np.pi * f * (float(theta[4]) + delay))
            assert np.array_equal(ours[row, k] != 0, theirs != 0)
            # waveform to 1e-8 (test_gw_lal), F to LAL's float32 response tensor (sqrt(2) ||dD||_F <= 3.3e-8 of
            # |h+| + |hx| <= 2 |h+|), the delays to 1.3e-12 s (2 pi 256 Hz: 2e-9 rad): <= 8e-8 < 1e-7 of |h+|
            assert np.abs(ours[row, k] - theirs).max() < 1e-7 * scale


def test_network_snr_is_the_sum_over_detectors(sim):
    """SNR_det^2 = [F+^2 ((1 + cos^2 i) / 2)^2 + Fx^2 cos^2 i] SNR_gw^2 (delays only rotate phases)."""
    theta = sim.prior.sample(50, torch.Generator().manual_seed(3)).double()
    h = sim.whitened_waveform(theta)
    per_detector = (h.abs() ** 2).sum(-1)  # [n, 2]
    # two sums of n = 2 * 1889 positive terms, each |h|^2 rounded <= 3 times: <= (n + 3) eps = 8.4e-13 relative
    torch.testing.assert_close(sim.optimal_snr(theta) ** 2, per_detector.sum(-1), rtol=1e-12, atol=0)
    fplus, fcross = sim.antenna_patterns(theta)
    cos_i = torch.cos(theta[:, 8:9])
    single = GravitationalWave().optimal_snr(theta[:, :5]).unsqueeze(-1) ** 2  # F+ = 1, face-on
    expected = (fplus**2 * (0.5 * (1 + cos_i**2)) ** 2 + fcross**2 * cos_i**2) * single
    # |h_det|^2 = |h|^2 (F+^2 A+^2 + Fx^2 Ax^2) to ~10 eps per bin; sums of 1889 positive terms (<= 1889 eps
    # each): <= 1e-12 relative
    torch.testing.assert_close(per_detector, expected, rtol=1e-10, atol=0)
    assert bool((per_detector > 0).all())


def test_whitened_noise_is_standard_normal_and_independent_across_detectors(sim):
    theta = sim.prior.sample(150, torch.Generator().manual_seed(1)).double()
    x = sim.simulate(theta, torch.Generator().manual_seed(2)).double()
    noise = x - torch.view_as_real(sim.whitened_waveform(theta)).transpose(-1, -2)
    n = noise.numel()
    assert n > 1_000_000
    assert abs(float(noise.mean())) < 5 / math.sqrt(n)
    assert abs(float(noise.var()) - 1) < 5 * math.sqrt(2 / n)
    for k in range(2):
        assert abs(float(noise[:, k].var()) - 1) < 5 * math.sqrt(4 / n)
    cross = (noise[:, 0] * noise[:, 1]).mean()
    assert abs(float(cross)) < 5 / math.sqrt(n / 2)


def test_likelihood_is_chi_square_at_the_truth(sim):
    theta = sim.prior.sample(400, torch.Generator().manual_seed(3))
    x = sim.simulate(theta, torch.Generator().manual_seed(4))
    log_l = sim.log_likelihood(theta, x)
    statistic = (x.double() ** 2).sum((-3, -2, -1)) - 2 * log_l
    dof = 2 * 2 * sim.num_bins
    assert stats.kstest(statistic.numpy(), stats.chi2(dof).cdf).pvalue > 1e-3
    assert abs(float(statistic.mean()) - dof) < 5 * math.sqrt(2 * dof / len(statistic))


def test_likelihood_batching_definition_and_sky_sensitivity(sim):
    theta = sim.prior.sample(3, torch.Generator().manual_seed(7)).double()
    theta[:, 2] = 400.0  # loud enough for the sky position to matter
    x = sim.simulate(theta, torch.Generator().manual_seed(8))
    other = sim.prior.sample(4 * 3, torch.Generator().manual_seed(9)).double().reshape(4, 3, 9)
    log_l = sim.log_likelihood(other, x)
    assert log_l.shape == (4, 3)
    h = sim.whitened_waveform(other)  # [4, 3, 2, n]
    d = torch.complex(x[:, :, 0].double(), x[:, :, 1].double())  # [3, 2, n]
    direct = (h.conj() * d).real.sum((-2, -1)) - 0.5 * (h.abs() ** 2).sum((-2, -1))
    # the same waveforms h on both sides; they differ in how h (x - h/2) is rounded and summed over the n real
    # terms: whatever the order, each is within gamma_(n+3) T of the exact value, T = sum |h| (|x| + |h|)
    h_real = torch.view_as_real(h).transpose(-1, -2)  # [4, 3, 2, 2, n], like x
    magnitude = (h_real.abs() * (x.double().abs() + h_real.abs())).sum((-3, -2, -1))
    n = h_real[0, 0].numel()
    assert bool(((log_l - direct).abs() <= (n + 3) * EPS * magnitude).all())
    moved = theta.clone()
    moved[:, 6] = -moved[:, 6]  # the mirrored declination changes delays and antenna patterns
    assert bool((sim.log_likelihood(theta, x) > sim.log_likelihood(moved, x)).all())
    bad = theta.clone()
    bad[0, 2] = -1.0
    result = sim.log_likelihood(bad, x)
    assert result[0] == -math.inf and bool(torch.isfinite(result[1:]).all())


def test_bad_theta_shapes_and_options_are_named(sim):
    with pytest.raises(ValueError, match=r"theta must be \[n, 9\] \(chirp_mass, .*inclination\), got shape \[4, 5\]"):
        sim.simulate(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"theta must be \[n, 9\]"):
        sim.simulate(torch.zeros(9))
    x = torch.zeros(3, *sim.x_shape)
    with pytest.raises(ValueError, match=r"theta must be \[\.\.\., B, 9\] .* B = 3 observations, got shape \[2, 9\]"):
        sim.log_likelihood(torch.zeros(2, 9), x)
    with pytest.raises(ValueError, match=r"theta must be \[\.\.\., 9\]"):
        sim.whitened_waveform(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"distinct names from \['H1', 'L1'\]"):
        GravitationalWaveNetwork(detectors=("H1", "V1"))
    with pytest.raises(ValueError, match="one per detector"):
        GravitationalWaveNetwork(psd=["aligo_zdhp"])
    with pytest.raises(ValueError, match="'declination': a cosine density needs"):
        GravitationalWaveNetwork(declination=(-2.0, 1.0))
    with pytest.raises(ValueError, match="mass_ratio <= 1"):
        GravitationalWaveNetwork(mass_ratio=(0.5, 1.5))


def test_options_single_detector_and_quantities():
    sim = GravitationalWaveNetwork(detectors=["L1"], inclination=(0 * u.deg, 90 * u.deg), f_max=128 * u.Hz)
    assert sim.x_shape == (1, 2, (128 - 20) * 8 + 1)
    assert sim.prior.high[8] == pytest.approx(math.pi / 2)
    theta = sim.prior.sample(2000, torch.Generator().manual_seed(0))
    assert float(theta[:, 8].max()) <= math.pi / 2
    # sine prior on [0, pi/2]: cos(iota) uniform on [0, 1]
    assert stats.kstest(torch.cos(theta[:, 8].double()).numpy(), "uniform").pvalue > 1e-3
