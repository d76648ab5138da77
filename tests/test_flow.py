"""The `flow` plugin's own behaviour (flow types, their densities) and the estimator base class's error messages.

The estimator contract (shapes, seeding, support, sample / log_prob agreement, save / load) is run over
every estimator by tests/test_contract.py with the conformance kit, sbi_gen.testing.
"""

import json
import math

import pytest
import torch

import sbi_gen
from sbi_gen import DataError, ModelFileError, UniformPrior, load_estimator
from sbi_gen.posterior_draws import ACCEPTANCE_DRAWS, log_acceptance


def test_corrupt_model_files_are_named(small_flow, tmp_path):
    path = small_flow.save(tmp_path / "model")
    (path / "weights.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelFileError, match="weights.safetensors does not match the checksum"):
        load_estimator(path)
    (path / "config.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match="config.json is corrupt"):
        load_estimator(path)
    with pytest.raises(ModelFileError, match="config.json is missing"):
        load_estimator(tmp_path / "nowhere")


def test_weights_that_do_not_fit_the_config_are_named(small_flow, tmp_path):
    path = small_flow.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config["options"]["hidden_features"] = 16
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="config.json: options changed after the model was saved"):
        load_estimator(path)


def test_bad_observations_are_named(small_flow):
    with pytest.raises(DataError, match=r"shape \[B, 3\] or \[3\], got \[2, 4\]"):
        small_flow.sample(torch.zeros(2, 4), 5)
    with pytest.raises(DataError, match="NaN"):
        small_flow.sample(torch.tensor([[0.0, float("nan"), 0.0]]), 5)
    with pytest.raises(DataError, match=r"theta must have shape \[n, 1, 3\]"):
        small_flow.log_prob(torch.zeros(4, 2, 3), torch.zeros(1, 3))


def test_unknown_flow_type_is_named():
    with pytest.raises(ValueError, match="unknown flow 'realnvp'"):
        sbi_gen.get_estimator("flow", flow="realnvp")


@pytest.mark.parametrize("flow,bounded", [("nsf", "truncate"), ("maf", "truncate"), ("nsf_ar", "truncate"),
                                          ("nsf", "logit")])
def test_bounded_prior_no_leakage_and_density_integrates_to_one(flow, bounded):
    """On a 2-D box prior every sample lies inside, and exp(log_prob) integrates to 1 over the box.

    Grid error: 0.02 (a 1200^2 midpoint grid on the steep corner posterior). Truncated, the density is
    divided by an acceptance ``a`` estimated from ``M`` draws, whose binomial relative error is
    ``sqrt((1 - a) / (a M))``; 4 of those are added.
    """
    prior = UniformPrior([0.0, -1.0], [1.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    theta = prior.sample(2000, generator)
    x = theta + 0.05 * torch.randn(2000, 2, generator=generator)
    estimator = sbi_gen.get_estimator("flow", flow=flow, num_transforms=2, hidden_features=16,
                                      bounded_support=bounded)
    estimator.fit(theta, x, prior, max_epochs=5, progress=False)
    x_obs = torch.tensor([[0.02, 0.98], [0.5, 0.0]])
    samples = estimator.sample(x_obs, 5000, generator)
    assert bool(prior.contains(samples).all())
    n = 1200  # the corner posterior is steep: a coarser grid under-integrates it
    g0 = (torch.arange(n) + 0.5) / n
    g1 = -1 + 2 * (torch.arange(n) + 0.5) / n
    grid = torch.cartesian_prod(g0, g1)
    cell = (1.0 / n) * (2.0 / n)
    assert estimator.network["theta_transform"].truncates == (bounded == "truncate")
    for b in range(2):
        log_q = estimator.log_prob(grid[:, None, :], x_obs[b : b + 1])[:, 0]
        tolerance = 0.02
        if bounded == "truncate":
            x_std = estimator._standardized_x(x_obs[b : b + 1])
            a = log_acceptance(lambda m, g, x_std=x_std: estimator._raw_draws(x_std, m, g), prior).exp().item()
            tolerance += 4 * math.sqrt((1 - a) / (a * ACCEPTANCE_DRAWS))
        assert float(log_q.exp().sum() * cell) == pytest.approx(1.0, abs=tolerance)
    outside = estimator.log_prob(torch.tensor([[1.5, 0.0]]), x_obs[:1])
    assert outside.item() == -math.inf


def test_conditional_affine_layer_inverts_and_its_log_determinant_is_the_jacobians():
    """u = (z - mu(c)) exp(-s(c)): the inverse recovers z to float32 rounding (scale up to e^2 here: 1e-5 is
    ~100 ulp of |z| ~ 3), and log|det du/dz| equals the autograd Jacobian's (float64, to 1e-10)."""
    from sbi_gen_plugins.flow import ConditionalAffine

    torch.manual_seed(0)
    layer = ConditionalAffine(3, context_features=4, hidden_features=8)
    z, context = torch.randn(5, 3), torch.randn(5, 4)
    u, log_det = layer(z, context)
    assert torch.equal(u, z) and torch.equal(log_det, torch.zeros(5))  # zero-initialized: the identity
    with torch.no_grad():
        layer.net[-1].bias.uniform_(-2.0, 2.0)
        layer.net[-1].weight.normal_(0.0, 0.3)
    u, log_det = layer(z, context)
    back, inverse_log_det = layer.inverse(u, context)
    assert float((back - z).abs().max()) < 1e-5 and float((log_det + inverse_log_det).abs().max()) < 1e-5
    layer = layer.double()
    for i in range(2):
        row = context[i : i + 1].double()
        jacobian = torch.autograd.functional.jacobian(lambda v, row=row: layer(v[None], row)[0][0], z[i].double())
        expected = torch.linalg.slogdet(jacobian).logabsdet
        assert abs(float(layer(z[i : i + 1].double(), row)[1]) - float(expected)) < 1e-10


def test_a_flow_with_the_conditional_affine_layer_trains_saves_and_loads(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    data = sbi_gen.simulate(simulator, 400, seed=0)
    estimator = sbi_gen.get_estimator("flow", conditional_affine=True, hidden_features=16, num_transforms=2)
    estimator.fit(data, prior=simulator.prior, max_epochs=2, progress=False)
    estimator.save(tmp_path / "m")
    loaded = sbi_gen.load_estimator(tmp_path / "m")
    assert loaded.options.conditional_affine
    theta = simulator.prior.sample(4, torch.Generator().manual_seed(1))
    assert torch.equal(loaded.log_prob(theta, data.x[:4]), estimator.log_prob(theta, data.x[:4]))


def test_the_identity_embedding_needs_no_size_and_names_a_wrong_one(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=3)
    data = sbi_gen.simulate(simulator, 300, seed=0)
    estimator = sbi_gen.get_estimator("flow", embedding="identity", hidden_features=16, num_transforms=2)
    estimator.fit(data, prior=simulator.prior, max_epochs=1, progress=False)
    assert estimator.core.embedding(data.x[:2]).shape == (2, 3)  # the context is x itself
    estimator.save(tmp_path / "m")
    theta = simulator.prior.sample(4, torch.Generator().manual_seed(1))
    loaded = sbi_gen.load_estimator(tmp_path / "m")
    assert torch.equal(loaded.log_prob(theta, data.x[:4]), estimator.log_prob(theta, data.x[:4]))
    wrong = sbi_gen.get_estimator("flow", embedding="identity", embedding_features=32)
    with pytest.raises(ValueError, match="identity embedding keeps all 3 entries of x, not 32"):
        wrong.fit(data, prior=simulator.prior, max_epochs=1, progress=False)
