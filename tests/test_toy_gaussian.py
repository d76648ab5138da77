"""The toy simulator against an independent derivation of its posterior."""

import math

import pytest
import torch

import sbi_gen


def conditional_gaussian(simulator, x):
    """Posterior by conditioning the joint Gaussian of (theta, x): mean and covariance."""
    A, b, s = simulator.matrix, simulator.offset, simulator.noise_scale
    prior_cov = simulator.prior.covariance
    cov_xx = A @ prior_cov @ A.T + s**2 * torch.eye(A.shape[0], dtype=torch.float64)
    cov_tx = prior_cov @ A.T
    gain = cov_tx @ torch.linalg.inv(cov_xx)
    mean = (x.double() - b) @ gain.T
    return mean, prior_cov - gain @ cov_tx.T


@pytest.mark.parametrize("options", [{}, {"dim": 2, "x_dim": 4, "noise_scale": 0.2}])
def test_analytic_posterior_matches_joint_conditioning(options):
    simulator = sbi_gen.get_simulator("toy_gaussian", **options)
    x = sbi_gen.simulate(simulator, 4, seed=3).x
    mean, cov = conditional_gaussian(simulator, x)
    reference = simulator.reference_posterior(x)
    # two linear-algebra routes through well-conditioned (cond <~ 1e2) 2-5-D matrices: ~ cond eps |value| ~ 1e-13
    assert torch.allclose(reference.mean, mean, atol=1e-10)
    assert torch.allclose(reference.covariance[0], cov, atol=1e-10)


def test_simulator_noise_has_the_stated_scale():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=3, noise_scale=0.7)
    theta = torch.tensor([[0.3, -1.0, 2.0]]).expand(50_000, 3)
    x = simulator.simulate(theta, torch.Generator().manual_seed(0)).double()
    expected_mean = theta[0].double() @ simulator.matrix.T + simulator.offset
    assert torch.allclose(x.mean(0), expected_mean, atol=0.02)
    assert torch.allclose(x.std(0), torch.full((3,), 0.7, dtype=torch.float64), atol=0.01)


def test_log_likelihood_is_the_gaussian_density():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2, noise_scale=0.5)
    theta = torch.zeros(1, 2)
    x = simulator.offset.float()[None]
    expected = -2 * math.log(0.5) - math.log(2 * math.pi)
    assert simulator.log_likelihood(theta, x).item() == pytest.approx(expected)


def test_reference_samples_have_the_posterior_moments():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=3)
    x = sbi_gen.simulate(simulator, 2, seed=1).x
    reference = simulator.reference_posterior(x)
    samples = reference.sample(40_000, torch.Generator().manual_seed(0)).double()
    assert samples.shape == (40_000, 2, 3)
    assert torch.allclose(samples.mean(0), reference.mean, atol=0.02)
    assert torch.allclose(torch.cov(samples[:, 1].T), reference.covariance[1], atol=0.01)


def test_simulations_are_reproducible_from_the_seed():
    simulator = sbi_gen.get_simulator("toy_gaussian")
    a, b = sbi_gen.simulate(simulator, 100, seed=5), sbi_gen.simulate(simulator, 100, seed=5)
    assert torch.equal(a.theta, b.theta) and torch.equal(a.x, b.x)
    assert not torch.equal(a.x, sbi_gen.simulate(simulator, 100, seed=6).x)
