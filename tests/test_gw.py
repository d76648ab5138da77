"""The gw simulator against analytic facts: amplitude, PN coefficients, match, SNR scaling, noise, likelihood."""

import math
from fractions import Fraction
from importlib import resources

import astropy.constants as const
import astropy.units as u
import numpy as np
import pytest
import torch
from scipy import stats

import sbi_gen
from sbi_gen_simulators.gw import GravitationalWave
from sbi_gen_simulators.gw_match import match
from sbi_gen_simulators.gw_psd import PSD_TABLES, frequency_grid, load_psd_table, psd_on_grid
from sbi_gen_simulators.gw_waveform import (
    TaylorF2,
    component_masses,
    isco_frequency,
    pn_phase_coefficients,
    symmetric_mass_ratio,
)

THETA = torch.tensor([17.0, 0.7, 1200.0, 1.1, 0.007], dtype=torch.float64)
EPS = float(torch.finfo(torch.float64).eps)


def phase_magnitude(generator: TaylorF2, theta: torch.Tensor) -> torch.Tensor:
    """``S = sum_k |c_k basis_k(f)| + pi/2`` ``[n, n_f]``: the magnitude of the terms summed into each phase (the
    ``pi/2`` turns the cosine slot into the sine one). A sum of these 12 terms rounds to within ``~ 6 eps S``
    whatever the order, so ``S`` (not ``|Psi|``, the terms cancel) sets the phase's rounding error."""
    return generator.phase_coefficients(theta).abs() @ generator._basis.abs() + math.pi / 2


@pytest.fixture(scope="module")
def sim():
    return sbi_gen.get_simulator("gw")


def test_registered_with_units_and_grid(sim):
    assert isinstance(sim, GravitationalWave)
    assert sim.x_shape == (1, 2, 1889)
    assert sim.prior.names == ["chirp_mass", "mass_ratio", "luminosity_distance", "coalescence_phase",
                               "coalescence_time"]
    assert [p.astropy_unit for p in sim.prior.parameters] == [u.solMass, u.one, u.Mpc, u.rad, u.s]
    assert sim.prior.low.tolist() == pytest.approx([10, 0.25, 500, 0, -0.02])
    assert sim.prior.high.tolist() == pytest.approx([25, 1, 2500, 2 * math.pi, 0.02])
    assert float(sim.frequencies[0]) == 20.0 and float(sim.frequencies[-1]) == 256.0
    assert float(sim.frequencies[1] - sim.frequencies[0]) == 0.125


def test_options_take_astropy_quantities():
    sim = GravitationalWave(luminosity_distance=(0.5, 2.0) * u.Gpc, coalescence_time=(-10 * u.ms, 10 * u.ms),
                            f_max=0.512 * u.kHz, duration=4 * u.s)
    assert sim.prior.low[2] == pytest.approx(500.0) and sim.prior.high[2] == pytest.approx(2000.0)
    assert sim.prior.high[4] == pytest.approx(0.01)
    assert sim.x_shape == (1, 2, (512 - 20) * 4 + 1)
    assert sim.describe()["options"]["luminosity_distance"] == pytest.approx([500.0, 2000.0])


def test_simulate_is_deterministic_float32(sim):
    theta = sim.prior.sample(4, torch.Generator().manual_seed(0))
    x1 = sim.simulate(theta, torch.Generator().manual_seed(5))
    x2 = sim.simulate(theta, torch.Generator().manual_seed(5))
    x3 = sim.simulate(theta, torch.Generator().manual_seed(6))
    assert x1.shape == (4, 1, 2, 1889) and x1.dtype == torch.float32
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)


def test_amplitude_and_isco_cut_from_the_formula():
    """|h| = sqrt(5/24) pi^(-2/3) (G Mc/c^3)^(5/6) (c/D_L) f^(-7/6), evaluated with astropy quantities."""
    f = frequency_grid(20.0, 256.0, 8.0)
    h = TaylorF2(f)(THETA)
    mc, distance = THETA[0].item() * u.solMass, THETA[2].item() * u.Mpc
    f_q = f.numpy() * u.Hz
    expected = (math.sqrt(5 / 24) * math.pi ** (-2 / 3) * (const.G * mc / const.c**3) ** (5 / 6)
                * (const.c / distance) * f_q ** (-7 / 6)).to_value(u.s)
    m_total = sum(component_masses(THETA[0], THETA[1])).item() * u.solMass
    f_isco = (const.c**3 / (6**1.5 * math.pi * const.G * m_total)).to_value(u.Hz)
    # ~10 roundings on each side (a pow, products of constants): <= ~10 eps = 2e-15, far below 1e-13
    assert float(isco_frequency(THETA[0], THETA[1])) == pytest.approx(f_isco, rel=1e-13)
    below = f.numpy() <= f_isco
    assert 0 < below.sum() < len(f)
    # |cos + i sin| = 1 to 2 eps; two pows and ~6 products each side: <= ~20 eps = 4e-15, far below 1e-12
    np.testing.assert_allclose(np.abs(h.numpy()[below]), expected[below], rtol=1e-12)
    assert np.all(h.numpy()[~below] == 0)


def test_low_order_pn_coefficients_by_hand():
    """0PN, 1PN and 1.5PN terms of BIOPS Eq. 3.18 from exact fractions."""
    for eta in (Fraction(1, 4), Fraction(6, 25), Fraction(4, 25)):
        a, b = pn_phase_coefficients(torch.tensor(float(eta), dtype=torch.float64))
        # basic IEEE operations only (no libm, no reductions): the same on every CPU, a few roundings from the exact
        # value (1.5 eps = 3.3e-16 for a[0]: float(eta), 3 / (128 eta), float(newtonian))
        newtonian = Fraction(3, 128) / eta
        assert a[0].item() == pytest.approx(float(newtonian), rel=1e-15)
        assert a[1].item() == 0.0
        assert a[2].item() == pytest.approx(float(newtonian * (Fraction(3715, 756) + Fraction(55, 9) * eta)), rel=1e-14)
        assert a[3].item() == pytest.approx(float(newtonian) * -16 * math.pi, rel=1e-14)
        assert b[:5].abs().max().item() == 0.0 and b[7].item() == 0.0
        assert b[6].item() == pytest.approx(float(newtonian) * -6848 / 21, rel=1e-14)
        c5 = math.pi * (38645 / 756 - 65 / 9 * float(eta))
        assert b[5].item() == pytest.approx(float(newtonian) * 3 * c5, rel=1e-14)


def test_phase_convention_time_delay_sign():
    """With h(f) = int h(t) e^(-2 pi i f t) dt, a later t_c multiplies h by e^(-2 pi i f dt)."""
    f = frequency_grid(20.0, 256.0, 8.0)
    later = THETA.clone()
    later[4] += 0.01
    rotated = THETA.clone()
    rotated[3] += 0.3
    h, h_later, h_rot = TaylorF2(f)(torch.stack([THETA, later, rotated]))
    nz = h != 0
    # the phases of two rows differ by rounding only: <= 56 eps S as in test_waveform_batch_equals_one_at_a_time
    # (rows of one batch may take the SIMD or the scalar path), S <= 431 rad for THETA: 5.4e-12, plus the reference
    # factor's exp and product (~ (2 pi 256 0.01 + 3) eps = 4e-15): below 1e-11
    torch.testing.assert_close(h_later[nz], (h * torch.exp(-2j * math.pi * f * 0.01))[nz], rtol=1e-11, atol=0)
    torch.testing.assert_close(h_rot[nz], (h * np.exp(0.3j))[nz], rtol=1e-11, atol=0)


@pytest.fixture(scope="module")
def waveform(sim):
    f = sim.frequencies
    return f.numpy(), TaylorF2(f)(THETA).numpy(), sim.psd.numpy()


def match_resolution(f, h, psd, t):
    """How well :func:`match` can locate a peak at ``t`` (s), and the phase there (rad), in float64 on any CPU.

    Near its maximum ``|z(t')| = |z(t)| (1 - (2 pi sigma_f (t' - t))^2 / 2)``, ``sigma_f`` the spread of ``f`` under
    the weight ``|h|^2 / S_n`` (23 Hz here). Each evaluation of ``|z|`` (numpy's pairwise sum of 1889 terms: each
    term rounded <= 22 times, plus its exp and product: ~27 eps/2) is good to ``eps_z = 16 eps`` relative, so two
    evaluations compare correctly only where the quadratic drop exceeds ``2 eps_z``: the maximizer is determined to
    ``2 sqrt(eps_z) / (2 pi sigma_f)`` (8e-10 s here), not to eps (the sqrt(eps) of any smooth maximum).
    scipy's bounded Brent search adds its stopping rule, ``2 (sqrt(eps) |t| + xatol / 3)``
    (``xatol = 1e-14 / df`` in gw_match). ``arg z`` moves by ``2 pi f_mean (t' - t)`` (``f_mean`` = 56 Hz), so the
    phase is known to ``2 pi f_mean dt + eps_z``: ``~ 2 (f_mean / sigma_f) sqrt(eps_z)`` = 3e-7 rad at ``t = 0``.
    """
    weight = np.abs(h) ** 2 / psd
    f_mean = np.sum(weight * f) / np.sum(weight)
    sigma_f = math.sqrt(np.sum(weight * (f - f_mean) ** 2) / np.sum(weight))
    eps_z = 16 * EPS
    xatol = 1e-14 * max(1.0, 1.0 / (f[1] - f[0]))
    dt = 2 * (math.sqrt(2.2e-16) * abs(t) + xatol / 3) + 2 * math.sqrt(eps_z) / (2 * math.pi * sigma_f)
    return dt, 2 * math.pi * f_mean * dt + eps_z


@pytest.mark.parametrize("t0", [0.0123456789, -0.3141592653, 2.5e-5])
def test_match_recovers_a_delay_with_its_sign(waveform, t0):
    f, h, psd = waveform
    dt, _ = match_resolution(f, h, psd, t0)  # 0.8e-9 .. 1.0e-8 s (for large |t| the Brent stop's sqrt(eps) |t|)
    result = match(h, h * np.exp(-2j * np.pi * f * t0), f, psd)
    # 1 - match <= (2 pi sigma_f dt)^2 / 2 + 2 eps_z ~ 1e-12 (a grid-step error, 1 ms, would cost ~ 0.01)
    assert result.match > 1 - 1e-9
    assert result.time_shift == pytest.approx(t0, abs=dt)
    result = match(h * np.exp(-2j * np.pi * f * t0), h, f, psd)
    assert result.time_shift == pytest.approx(-t0, abs=dt)


def test_match_ignores_phase_and_rejects_the_conjugate(waveform):
    f, h, psd = waveform
    result = match(h, h * np.exp(2.2j), f, psd)
    # |z| and the norm are sums of 1889 positive terms: <= 1889 eps each even summed naively (4e-13), well below 1e-12
    assert result.match == pytest.approx(1.0, abs=1e-12)
    _, phase_tolerance = match_resolution(f, h, psd, 0.0)  # 3e-7 rad (a 1 ms time error would give 0.35 rad)
    assert result.phase == pytest.approx(2.2, abs=phase_tolerance)
    assert match(h, np.conj(h), f, psd).match < 0.6
    other = TaylorF2(torch.as_tensor(f))(THETA * torch.tensor([1.02, 1, 1, 1, 1], dtype=torch.float64)).numpy()
    assert match(h, other, f, psd).match < 0.99


def test_snr_times_distance_is_constant(sim):
    theta = THETA.repeat(5, 1)
    theta[:, 2] = torch.tensor([100.0, 500.0, 1234.5, 2500.0, 10000.0], dtype=torch.float64)
    product = sim.optimal_snr(theta) * theta[:, 2]
    # h differs between rows only by the 1/D scale; sums of 1889 positive terms: <= 2 * 1889 eps (8e-13) any order
    assert float((product / product[0] - 1).abs().max()) < 1e-10
    assert 5 < float(sim.optimal_snr(THETA)) < 100  # a sensible SNR at 1.2 Gpc


def test_whitened_noise_is_standard_normal(sim):
    """Mean 0 and variance 1 within 5 standard errors over > 10^6 real numbers."""
    theta = sim.prior.sample(280, torch.Generator().manual_seed(1)).double()
    x = sim.simulate(theta, torch.Generator().manual_seed(2)).double()
    signal = torch.view_as_real(sim.whitened_waveform(theta)).transpose(-1, -2)
    noise = (x - signal).flatten()
    n = noise.numel()
    assert n > 1_000_000
    assert abs(float(noise.mean())) < 5 / math.sqrt(n)
    assert abs(float(noise.var()) - 1) < 5 * math.sqrt(2 / n)
    real, imag = (x - signal)[:, :, 0], (x - signal)[:, :, 1]
    assert abs(float((real * imag).mean())) < 5 / math.sqrt(real.numel())


def test_likelihood_is_chi_square_at_the_truth(sim):
    theta = sim.prior.sample(400, torch.Generator().manual_seed(3))
    x = sim.simulate(theta, torch.Generator().manual_seed(4))
    log_l = sim.log_likelihood(theta, x)
    statistic = (x.double() ** 2).sum((-3, -2, -1)) - 2 * log_l
    dof = 2 * sim.num_bins
    assert stats.kstest(statistic.numpy(), stats.chi2(dof).cdf).pvalue > 1e-3
    assert abs(float(statistic.mean()) - dof) < 5 * math.sqrt(2 * dof / len(statistic))


def test_likelihood_batching_and_definition(sim):
    theta = sim.prior.sample(3, torch.Generator().manual_seed(7)).double()
    x = sim.simulate(theta, torch.Generator().manual_seed(8))
    other = sim.prior.sample(4 * 3, torch.Generator().manual_seed(9)).double().reshape(4, 3, 5)
    log_l = sim.log_likelihood(other, x)
    assert log_l.shape == (4, 3)
    h = sim.whitened_waveform(other)  # [4, 3, 1, n]
    d = torch.complex(x[:, :, 0].double(), x[:, :, 1].double())
    direct = (h.conj() * d).real.sum((-2, -1)) - 0.5 * (h.abs() ** 2).sum((-2, -1))
    # the same waveforms h on both sides; they differ in how h (x - h/2) is rounded and summed over the n real
    # terms: whatever the order, each is within gamma_(n+3) T of the exact value, T = sum |h| (|x| + |h|)
    h_real = torch.view_as_real(h).transpose(-1, -2)  # [4, 3, 1, 2, n], like x
    magnitude = (h_real.abs() * (x.double().abs() + h_real.abs())).sum((-3, -2, -1))
    n = h_real[0, 0].numel()
    assert bool(((log_l - direct).abs() <= (n + 3) * EPS * magnitude).all())  # <= 2.7e-9 here
    # the truth beats a perturbed chirp mass
    worse = theta.clone()
    worse[:, 0] *= 1.05
    assert bool((sim.log_likelihood(theta, x) > sim.log_likelihood(worse, x)).all())
    bad = theta.clone()
    bad[0, 1] = 1.5
    assert sim.log_likelihood(bad, x)[0] == -math.inf and bool(torch.isfinite(sim.log_likelihood(bad, x)[1:]).all())


def test_waveform_batch_equals_one_at_a_time():
    f = frequency_grid(20.0, 256.0, 8.0)
    generator = TaylorF2(f, chunk_size=7)
    theta = GravitationalWave().prior.sample(40, torch.Generator().manual_seed(11)).double()
    batch = generator(theta)
    single = torch.stack([TaylorF2(f)(t) for t in theta])
    # A bound per element from the data, S = phase_magnitude (226-751 rad here):
    # - the 12-term dot product x = -Psi rounds to within gamma_12 S ~ 6 eps S in any order: 12 eps S apart;
    # - the coefficients u^(k-5) = exp((k-5) ln u) go through log/pow/exp, whose SIMD (batch) and scalar (one row)
    #   versions may differ by an ulp or two: |k-5| <= 5 and |ln(pi G M / c^3)| < 8 amplify that to <= ~40 eps of
    #   the largest (w^-5) term;
    # - cos/sin and the amplitude's pow: <= 4 eps of |h|.
    # |dh| / |h| <= |dPsi| + 4 eps <= 56 eps S; 64 eps S (<= 1.1e-11) for the rest. A wrong term, row or chunk
    # is O(1). Where single is 0 (above f_ISCO) batch must be 0 too: f_ISCO differs by ulps and lies >= 7.5e-6
    # (relative) from every grid frequency here.
    magnitude = phase_magnitude(generator, theta)
    assert bool(((batch - single).abs() <= 64 * EPS * magnitude * single.abs()).all())
    assert bool((batch[symmetric_mass_ratio(theta[:, 1]) > 0] != 0).any(-1).all())
    # The chunks (rows 0-6, 7-13, ...) are the same with and without workers and coefficients and amplitudes are
    # computed once, before the threads start, so every chunk sees the same [7, 12] @ [12, 2k] product. Only the
    # BLAS may split that product differently (MKL and OpenBLAS promise bitwise-equal results only for a fixed
    # internal thread count, which concurrent calls can change): the 12 eps S of the dot products, plus 2 ulp of
    # cos/sin at a different argument.
    threaded = TaylorF2(f, chunk_size=7, workers=2)(theta)
    assert bool(((threaded - batch).abs() <= (12 * magnitude + 4) * EPS * batch.abs()).all())


def test_psd_tables_ship_with_provenance():
    for name, filename in PSD_TABLES.items():
        assert "LIGO-T0900288" in resources.files("sbi_gen_simulators").joinpath("data", filename).read_text()
        f, psd = load_psd_table(name)
        assert f[0] <= 10 and f[-1] >= 2048 and bool(np.all(psd > 0)) and bool(np.all(np.diff(f) > 0))
    grid = frequency_grid(20.0, 256.0, 8.0)
    model, published = psd_on_grid(grid, "aligo_zdhp"), psd_on_grid(grid, "aligo_zdhp_t0900288")
    assert 1e-47 < float(model.min()) < float(model.max()) < 1e-44
    assert float((model / published - 1).abs().max()) < 0.25  # the model vs the GWINC table: ~17 %
    with pytest.raises(ValueError, match="tabulated"):
        psd_on_grid(torch.tensor([5.0, 100.0]))
