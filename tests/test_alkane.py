"""The alkane simulators against independent quadratures of their 1-D Boltzmann densities."""

import math

import astropy.constants as const
import astropy.units as u
import numpy as np
import pytest
import torch
from scipy import stats

import sbi_gen
from sbi_gen.calibration import sbc_test
from sbi_gen_simulators.alkane import TRAPPE_TORSION
from sbi_gen_simulators.alkane_forcefield import (
    GAS_CONSTANT,
    ForceField,
    sample_angles,
    sample_bonds,
    sample_dihedrals,
    torsion_energy,
    torsion_log_normalizer,
)
from sbi_gen_simulators.alkane_geometry import internal_coordinates, nerf, random_rotations

FF = ForceField()
EPS = float(torch.finfo(torch.float64).eps)
THETAS = [(*TRAPPE_TORSION, 300.0), (6.0, -2.0, 10.0, 250.0), (0.0, 1.0, 2.0, 500.0)]


def density_grid(kind, theta):
    """Unnormalized 1-D Boltzmann density on a fine grid, by direct evaluation of the issue's formulas."""
    c, temperature = torch.tensor(theta[:3], dtype=torch.float64), theta[3]
    rt = GAS_CONSTANT * temperature
    if kind == "dihedral":
        grid = torch.linspace(-math.pi, math.pi, 400_001, dtype=torch.float64)
        return grid, torch.exp(-torsion_energy(c[None], grid[None])[0] / rt)
    if kind == "angle":
        grid = torch.linspace(1e-9, math.pi - 1e-9, 400_001, dtype=torch.float64)
        return grid, torch.sin(grid) * torch.exp(-FF.k_a * (grid - FF.a0) ** 2 / (2 * rt))
    grid = torch.linspace(0.08, 0.24, 400_001, dtype=torch.float64)
    return grid, grid**2 * torch.exp(-FF.k_b * (grid - FF.b0) ** 2 / (2 * rt))


def quadrature_cdf(kind, theta):
    grid, density = (t.numpy() for t in density_grid(kind, theta))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return lambda v: np.interp(v, grid, cdf)


def test_constants_follow_trappe_and_astropy():
    # the module evaluates this very expression (Python floats, no libm): equal on every machine
    assert GAS_CONSTANT == pytest.approx((const.k_B * const.N_A).to(u.kJ / u.mol / u.K).value, rel=1e-15)
    assert FF.k_a == pytest.approx(519.65, abs=0.01)
    assert math.degrees(FF.a0) == pytest.approx(114.0)
    # TraPPE torsion constants / k_B = 355.03, -68.19, 791.32 K (Martin and Siepmann 1998)
    assert np.allclose(np.array(TRAPPE_TORSION) / GAS_CONSTANT, [355.03, -68.19, 791.32], atol=0.1)
    assert float(torsion_energy(torch.tensor([TRAPPE_TORSION]), torch.tensor([math.pi]))) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("theta", THETAS)
def test_samplers_match_the_exact_densities(theta):
    generator = torch.Generator().manual_seed(0)
    c, temperature = torch.tensor([theta[:3]], dtype=torch.float64), torch.tensor([theta[3]], dtype=torch.float64)
    draws = {
        "dihedral": sample_dihedrals(c, temperature, 100_000, generator),
        "angle": sample_angles(FF, temperature, 100_000, generator),
        "bond": sample_bonds(FF, temperature, 100_000, generator),
    }
    for kind, values in draws.items():
        assert values.shape == (1, 100_000) and values.dtype == torch.float64
        pvalue = stats.kstest(values[0].numpy(), quadrature_cdf(kind, theta)).pvalue
        assert pvalue > 1e-3, f"{kind} draws at theta={theta}: KS p-value {pvalue:.2g}"


@pytest.mark.parametrize("theta", THETAS)
def test_normalizers_match_quadrature(theta):
    temperature = torch.tensor(theta[3], dtype=torch.float64)
    for kind, closed_form in [("angle", FF.angle_log_normalizer), ("bond", FF.bond_log_normalizer)]:
        grid, density = density_grid(kind, theta)
        # tails beyond the grid < 1e-20 (module docstring) and an integrand < 1e-35 at its ends leave rounding: 4e5
        # positive terms summed (<= 4e5 eps/2 = 4.4e-11 relative, any order) and ~100 eps in exp: << 1e-9
        assert float(closed_form(temperature)) == pytest.approx(math.log(torch.trapezoid(density, grid)), abs=1e-9)
    reduced = torch.tensor(theta[:3], dtype=torch.float64) / (GAS_CONSTANT * theta[3])
    # both periodic rules have converged (aliasing ~ I_128(|c| / RT) ~ 1e-200); rounding on each side: the exponents
    # (3-term products, cos: <= 4 eps sum |c_k| / RT <= 1e-14), torch's cascade sum in logsumexp (<= ~50 eps/2 for
    # 4096 terms) and the final log and add (~ 2 eps): <= 2.5e-14 each, 5e-14 apart < 1e-13
    assert float(torsion_log_normalizer(reduced)) == pytest.approx(float(torsion_log_normalizer(reduced, 4096)),
                                                                    abs=1e-13)
    grid, density = density_grid("dihedral", theta)
    # the periodic trapezoid rule on 4e5 points: rounding only, as for the bonds and angles above
    assert float(torsion_log_normalizer(reduced)) == pytest.approx(math.log(torch.trapezoid(density, grid)), abs=1e-9)


def test_nerf_round_trip():
    generator = torch.Generator().manual_seed(1)
    bonds = 0.154 + 0.01 * torch.randn(500, 9, generator=generator, dtype=torch.float64)
    angles = 0.2 + (math.pi - 0.4) * torch.rand(500, 8, generator=generator, dtype=torch.float64)
    dihedrals = math.pi * (2 * torch.rand(500, 7, generator=generator, dtype=torch.float64) - 1)
    dihedrals[0] = math.pi  # all-trans
    result = internal_coordinates(nerf(bonds, angles, dihedrals))
    wrapped = torch.remainder(result[2] - dihedrals + math.pi, 2 * math.pi) - math.pi
    # each bead is placed from its 3 predecessors with ~3 eps P of rounding (P = max |r| < 1 nm): bonds to ~3 eps P,
    # angles (atan2) to 2 (3 eps P) / b_min, dihedrals to 3 (3 eps P) / (b_min sin a_min), b_min > 0.1 nm and
    # a_min >= 0.2 rad: <= 1e-13 (observed 1.3e-15), below 1e-12
    assert (result[0] - bonds).abs().max() < 1e-12
    assert (result[1] - angles).abs().max() < 1e-12
    assert wrapped.abs().max() < 1e-12


def test_frame_and_permutation_leave_the_statistics_unchanged():
    simulator = sbi_gen.get_simulator("alkane_set")
    theta = simulator.prior.sample(3, torch.Generator().manual_seed(2))
    coordinates = nerf(*simulator.sample_internal(theta, torch.Generator().manual_seed(3)))  # [3, 20, 8, 3] float64
    rotations = random_rotations(3 * 20, torch.Generator().manual_seed(4)).reshape(3, 20, 3, 3)
    moved = coordinates @ rotations.transpose(-1, -2) + torch.randn(3, 20, 1, 3, dtype=torch.float64)
    moved = moved[:, torch.randperm(20, generator=torch.Generator().manual_seed(5))]
    reference = simulator.statistics_from_coordinates(coordinates)
    assert reference.shape == (3, 5)
    # Rounding only. Rotating and shifting moves a bead by <= 4 eps P (a 3-term product, the shift, R orthogonal
    # to ~eps; P = max |coordinate|, 3.1 nm) and each side rounds its bond vectors at <= eps P, so bond vectors are
    # <= db = 2 sqrt(3) 6 eps P apart: bonds by db, angles by 2 db / b_min, dihedrals by 3 db / (b_min sin a_min).
    # The statistics move by k d_phi (mean cos k phi), (180 / pi) d_angle (rms angle, deg) and 1000 db (rms bond,
    # pm): <= 1.4e-11 (observed 5e-15); a frame or order dependence would be >= 1e-6.
    bonds, angles, _ = internal_coordinates(coordinates)
    db = 2 * math.sqrt(3) * 6 * EPS * float(moved.abs().max())
    d_angle, d_phi = 2 * db / float(bonds.min()), 3 * db / float(bonds.min() * torch.sin(angles).min())
    bound = torch.tensor([d_phi, 2 * d_phi, 3 * d_phi, math.degrees(d_angle), 1000 * db], dtype=torch.float64)
    assert bool(((simulator.statistics_from_coordinates(moved) - reference).abs() <= bound).all())


def test_summary_and_set_variants_agree_with_the_exact_moments():
    theta = torch.tensor([[*TRAPPE_TORSION, 300.0]]).expand(2000, 4)
    summary = sbi_gen.get_simulator("alkane").simulate(theta, torch.Generator().manual_seed(6)).double()
    from_set = sbi_gen.get_simulator("alkane_set", num_conformations=50)
    x_set = from_set.statistics(from_set.simulate(theta, torch.Generator().manual_seed(7)))
    expected = []
    for k in (1, 2, 3):
        grid, density = density_grid("dihedral", theta[0].tolist())
        expected.append(float(torch.trapezoid(density * torch.cos(k * grid), grid) / torch.trapezoid(density, grid)))
    for kind, scale, reference in (("angle", math.degrees(1), FF.a0), ("bond", 1000.0, FF.b0)):
        grid, density = density_grid(kind, theta[0].tolist())
        msd = torch.trapezoid(density * (grid - reference) ** 2, grid) / torch.trapezoid(density, grid)
        expected.append(float(msd) * scale**2)
    for x in (summary, x_set):
        moments = torch.cat([x[:, :3].mean(0), (x[:, 3:] ** 2).mean(0)])
        error = torch.cat([x[:, :3].std(0), (x[:, 3:] ** 2).std(0)]) / math.sqrt(len(x))
        assert ((moments - torch.tensor(expected, dtype=torch.float64)).abs() < 4.5 * error).all(), (moments, expected)


@pytest.mark.parametrize("name", ["alkane", "alkane_set"])
def test_simulations_are_reproducible_and_shaped(name):
    simulator = sbi_gen.get_simulator(name)
    assert [p.unit for p in simulator.prior.parameters] == ["kJ / mol"] * 3 + ["K"]
    a, b = sbi_gen.simulate(simulator, 64, seed=5), sbi_gen.simulate(simulator, 64, seed=5)
    assert a.x.shape == (64, *simulator.x_shape) and a.x.dtype == torch.float32
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, sbi_gen.simulate(simulator, 64, seed=6).x)
    assert simulator.x_shape == ((5,) if name == "alkane" else (20, 8, 3))


def test_random_frame_changes_coordinates_but_not_statistics():
    theta = sbi_gen.get_simulator("alkane").prior.sample(4, torch.Generator().manual_seed(8))
    canonical = sbi_gen.get_simulator("alkane_set").simulate(theta, torch.Generator().manual_seed(9))
    random = sbi_gen.get_simulator("alkane_set", frame="random")
    rotated = random.simulate(theta, torch.Generator().manual_seed(9))
    assert (rotated - canonical).abs().max() > 0.05
    assert torch.allclose(random.statistics(rotated), random.statistics(canonical), atol=1e-4)
    assert rotated.mean(-2).abs().max() < 1e-6  # centred


def test_log_likelihood_is_the_conformations_log_density_up_to_a_constant():
    simulator = sbi_gen.get_simulator("alkane_set", num_conformations=3)
    generator = torch.Generator().manual_seed(10)
    x = simulator.simulate(simulator.prior.sample(1, generator), generator)
    bonds, angles, dihedrals = (t.reshape(-1) for t in internal_coordinates(x[0].double()))
    thetas = simulator.prior.sample(6, generator).double()

    def direct(theta):  # sum of the normalized 1-D log densities, by quadrature
        total = 0.0
        for kind, values in (("dihedral", dihedrals), ("angle", angles), ("bond", bonds)):
            grid, density = density_grid(kind, theta.tolist())
            log_z = math.log(torch.trapezoid(density, grid))
            total += float(torch.log(torch.from_numpy(np.interp(values, grid, density))).sum()) - len(values) * log_z
        return total

    difference = simulator.log_likelihood(thetas[:, None], x)[:, 0] - torch.tensor([direct(t) for t in thetas])
    assert difference.std() < 1e-3 * difference.abs().mean().clamp_min(1.0)
    summary = sbi_gen.get_simulator("alkane", num_conformations=3)
    # the same function of the same statistics on both sides (allclose's default atol, 1e-8, applies too)
    assert torch.allclose(summary.log_likelihood(thetas[:, None], simulator.statistics(x)),
                          simulator.log_likelihood(thetas[:, None], x), rtol=1e-12)


def test_dihedrals_only_depends_on_c_over_t():
    simulator = sbi_gen.get_simulator("alkane", dihedrals_only=True)
    assert simulator.x_shape == (3,)
    theta = torch.tensor([[2.0, -0.5, 5.0, 300.0]], dtype=torch.float64)
    x = simulator.simulate(theta.float(), torch.Generator().manual_seed(11))
    scaled = theta * 1.4
    # c / RT agrees to ~4 eps; log_l = -250 (E / RT + log Z_t(c / RT)), each term <= ~10: <= 1e-11 apart, within
    # allclose's default atol (1e-8)
    assert torch.allclose(simulator.log_likelihood(theta, x), simulator.log_likelihood(scaled, x), rtol=1e-12)
    frozen = sbi_gen.get_simulator("alkane_set", dihedrals_only=True)
    bonds, angles, _ = internal_coordinates(frozen.simulate(theta.float(), torch.Generator()).double())
    assert torch.allclose(bonds, torch.tensor(FF.b0, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(angles, torch.tensor(FF.a0, dtype=torch.float64), atol=1e-5)


def test_reference_posterior_is_calibrated():
    torch.set_num_threads(1)  # many small tensors: threads only add overhead
    simulator = sbi_gen.get_simulator("alkane")
    data = sbi_gen.simulate(simulator, 200, seed=5)
    reference = simulator.reference_posterior(data.x, chains=16)
    samples = reference.sample(100, torch.Generator().manual_seed(0))
    assert samples.shape == (100, 200, 4) and samples.dtype == torch.float32
    assert bool(simulator.prior.contains(samples).all())
    assert reference.diagnostics["max_split_rhat"] < 1.1
    result = sbc_test(samples, data.theta)
    assert not result.rejects(0.01), result.to_dict()
    log_prob = reference.log_prob(samples[:3].double())
    assert log_prob.shape == (3, 200) and bool(torch.isfinite(log_prob).all())
    assert bool(torch.isinf(reference.log_prob(torch.zeros(200, 4, dtype=torch.float64) - 1)).all())
