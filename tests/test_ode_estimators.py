"""The ODE-based estimators (`diffusion`, `flow_matching`): their options, old models, the ODE density, accuracy.

The estimator contract (shapes, seeding, support, sample / log_prob agreement, save / load) is run over
every estimator by tests/test_contract.py with the conformance kit, sbi_gen.testing.
"""

import json

import pytest
import torch

import sbi_gen
from sbi_gen import load_estimator
from sbi_gen.calibration import c2st, sbc_test
from sbi_gen.errors import ModelFileError
from sbi_gen.hookspecs import EstimatorCapabilities
from sbi_gen_plugins.ode import heun_integrate, ode_log_prob

ODE_ESTIMATORS = ["diffusion", "flow_matching"]
SMALL = {"hidden_features": 32, "num_blocks": 1, "num_steps": 5, "log_prob_steps": 5}


def test_registered_with_ode_density():
    for name in ODE_ESTIMATORS:
        spec = sbi_gen.get_registry().spec("estimator", name)
        assert spec.capabilities == EstimatorCapabilities(has_log_prob=True, log_prob_method="ode")
        assert spec.factory.name == name and spec.capabilities is spec.factory.capabilities  # declared once


def test_models_of_an_older_format_are_refused_with_the_reason(toy, tmp_path):
    """Format 1 (no checksums) was only ever written by development versions: there is no older model to honour."""
    data = sbi_gen.simulate(toy, 300, seed=0)
    estimator = sbi_gen.get_estimator("flow_matching", **SMALL)
    estimator.fit(data, prior=toy.prior, max_epochs=1, progress=False)
    estimator.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["checksums"]
    config["format_version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="format version 1 .* retrain the model"):
        load_estimator(tmp_path)


def test_reverse_sde_sampler_and_hutchinson_density(toy):
    data = sbi_gen.simulate(toy, 1000, seed=0)
    estimator = sbi_gen.get_estimator("diffusion", sampler="sde", exact_divergence_max_dim=1, **SMALL)
    estimator.fit(data.theta, data.x, toy.prior, max_epochs=2, progress=False)
    x = data.x[:3]
    samples = estimator.sample(x, 20, torch.Generator().manual_seed(0))
    assert samples.shape == (20, 3, 3) and bool(torch.isfinite(samples).all())
    assert torch.equal(samples, estimator.sample(x, 20, torch.Generator().manual_seed(0)))
    log_q = estimator.log_prob(samples, x)  # d = 3 > 1: Hutchinson, with fixed probes
    assert bool(torch.isfinite(log_q).all()) and torch.equal(log_q, estimator.log_prob(samples, x))


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="unknown sde 've'"):
        sbi_gen.get_estimator("diffusion", sde="ve")
    with pytest.raises(ValueError, match="unknown sampler 'pc'"):
        sbi_gen.get_estimator("diffusion", sampler="pc")
    with pytest.raises(ValueError, match="unknown parameterization 'x0'"):
        sbi_gen.get_estimator("diffusion", parameterization="x0")
    with pytest.raises(ValueError, match="sigma_min"):
        sbi_gen.get_estimator("flow_matching", sigma_min=1.5)
    with pytest.raises(ValueError, match="unknown option 'bogus' for estimator 'flow_matching'"):
        sbi_gen.get_estimator("flow_matching", bogus=1)


def test_exact_divergence_density_of_a_linear_flow():
    """dz/dt = A z carries N(0, I) at t = 1 back to N(0, (M^T M)^-1) at t = 0, with M = expm(A)."""
    generator = torch.Generator().manual_seed(0)
    a = 0.4 * torch.randn(3, 3, generator=generator, dtype=torch.float64)
    m = torch.linalg.matrix_exp(a)
    z = torch.randn(50, 3, generator=generator, dtype=torch.float64)
    times = [i / 100 for i in range(101)]

    def field(state, t):
        return state @ a.T

    truth = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64), precision_matrix=m.T @ m)
    assert torch.allclose(ode_log_prob(field, z, times), truth.log_prob(z), atol=1e-4)
    assert torch.allclose(heun_integrate(field, z, times), z @ m.T, atol=1e-4)
    # Hutchinson is exact for a diagonal Jacobian with Rademacher probes
    diagonal = torch.diag(torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64))
    probe = torch.randint(0, 2, z.shape, generator=generator).double() * 2 - 1
    exact = ode_log_prob(lambda s, t: s @ diagonal, z, times)
    # the same states on both sides (the field does not see the probe); the divergences, 3 diagonal terms summed in
    # two orders, differ by <= 2 eps sum |J_ii| per evaluation, ~2e-16 after integrating over t in [0, 1]: << 1e-10
    assert torch.allclose(ode_log_prob(lambda s, t: s @ diagonal, z, times, probe), exact, atol=1e-10)


# -- accuracy on the toy Gaussian (slow: trains d = 5 on 10,000 simulations) ---------------------------------------

#: epochs are capped so both models train in about a minute each on one core; the plugins'
#: own defaults (patience 60, up to 2,000 epochs) train longer and are at least as accurate
SLOW_TRAINING = {"max_epochs": 200, "patience": 30, "lr_patience": 10}


@pytest.fixture(scope="module", params=ODE_ESTIMATORS)
def trained(request):
    torch.set_num_threads(1)  # module fixtures are set up before the per-test thread setting
    simulator = sbi_gen.get_simulator("toy_gaussian")  # d = 5
    data = sbi_gen.simulate(simulator, 10_000, seed=1)
    estimator = sbi_gen.get_estimator(request.param)
    estimator.fit(data.theta, data.x, simulator.prior, seed=0, progress=False, **SLOW_TRAINING)
    return simulator, estimator


@pytest.mark.slow
def test_posterior_is_close_to_the_analytic_one(trained):
    """Mean C2ST over 5 observations <= 0.56, with 3,000 samples per observation (each side)."""
    simulator, estimator = trained
    observations = sbi_gen.simulate(simulator, 5, seed=99)
    samples = estimator.sample(observations.x, 3000, torch.Generator().manual_seed(0))
    reference = simulator.reference_posterior(observations.x).sample(3000, torch.Generator().manual_seed(1))
    accuracies = [c2st(reference[:, b], samples[:, b], seed=b).accuracy for b in range(5)]
    assert sum(accuracies) / 5 <= 0.56, accuracies


@pytest.mark.slow
def test_ode_log_prob_agrees_with_the_analytic_density(trained):
    """1,000 posterior samples (200 for each of 5 observations): |mean log q - log p| <= 0.1, mean |.| <= 0.25 nats.

    The mean of ``log q - log p`` over posterior samples is ``-KL(p || q)``: the issue's "within 0.1 nats on
    average". Measured: diffusion -0.026 (mean |.| 0.18), flow_matching -0.029 (0.15); the default flow on
    the same observations -0.072 (0.27). The solver's share is below 5e-3 nats (25 against 400 Heun steps);
    the rest is the network's and shrinks with the budget (diffusion at 50,000 simulations: -0.003, mean
    |.| 0.11, 0.06-0.11 for four observations and 0.24 for the one whose posterior lies 2.3 prior standard
    deviations out, where training pairs are scarce).
    """
    simulator, estimator = trained
    observations = sbi_gen.simulate(simulator, 5, seed=99)
    posterior = simulator.reference_posterior(observations.x)
    theta = posterior.sample(200, torch.Generator().manual_seed(2)).float()
    difference = estimator.log_prob(theta, observations.x) - posterior.log_prob(theta)
    assert bool(torch.isfinite(difference).all())
    assert abs(float(difference.mean())) <= 0.1, float(difference.mean())
    assert float(difference.abs().mean()) <= 0.25, float(difference.abs().mean())


@pytest.mark.slow
def test_sbc_does_not_reject(trained):
    """SBC on 200 held-out pairs with 200 posterior samples each."""
    simulator, estimator = trained
    test = sbi_gen.simulate(simulator, 200, seed=7)
    samples = estimator.sample(test.x, 200, torch.Generator().manual_seed(0))
    assert not sbc_test(samples, test.theta).rejects(0.01)
