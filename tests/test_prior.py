import math

import pytest
import torch

from sbi_gen import DataError, GaussianPrior, Parameter, PriorSupportError, UniformPrior, prior_from_config


def test_uniform_prior_samples_inside_and_density_is_normalized():
    prior = UniformPrior([0.0, -1.0], [2.0, 3.0], ["a", "b"])
    samples = prior.sample(10_000, torch.Generator().manual_seed(0))
    assert samples.shape == (10_000, 2)
    assert bool(prior.contains(samples).all())
    assert torch.allclose(samples.mean(0), torch.tensor([1.0, 1.0]), atol=0.05)
    assert prior.log_prob(torch.tensor([1.0, 0.0])).item() == pytest.approx(-math.log(8.0))
    assert prior.log_prob(torch.tensor([2.5, 0.0])).item() == -math.inf


def test_same_seed_same_samples():
    prior = GaussianPrior([0.0, 1.0], [1.0, 4.0])
    a = prior.sample(5, torch.Generator().manual_seed(3))
    b = prior.sample(5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gaussian_prior_matches_its_covariance():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    prior = GaussianPrior([1.0, -1.0], cov)
    samples = prior.sample(50_000, torch.Generator().manual_seed(0)).double()
    assert torch.allclose(torch.cov(samples.T), cov.double(), atol=0.05)


@pytest.mark.parametrize(
    "prior",
    [
        UniformPrior([0, 0], [1, 2], [Parameter("mass", "solMass", "$M$"), Parameter("distance", "Mpc")]),
        GaussianPrior([0.0, 1.0], [[1.0, 0.2], [0.2, 2.0]]),
    ],
)
def test_config_round_trip(prior):
    again = prior_from_config(prior.to_config())
    theta = prior.sample(7, torch.Generator().manual_seed(1))
    assert again.parameters == prior.parameters
    assert torch.allclose(again.log_prob(theta), prior.log_prob(theta))


def test_units_are_astropy_units_and_labels_carry_them():
    parameter = Parameter("chirp_mass", "solMass", r"$\mathcal{M}$")
    assert parameter.astropy_unit.to("kg") == pytest.approx(1.98840987e30, rel=1e-6)
    assert parameter.axis_label == r"$\mathcal{M}$ [solMass]"
    with pytest.raises(ValueError, match="unknown unit"):
        Parameter("x", "not_a_unit")


def test_outside_support_error_names_the_parameter():
    prior = UniformPrior([0.0, 0.0], [1.0, 1.0], ["alpha", "beta"])
    with pytest.raises(PriorSupportError, match=r"row 1: beta=1\.5 not in \[0, 1\]"):
        prior.check_contains(torch.tensor([[0.5, 0.5], [0.5, 1.5]]))


def test_bad_specs_are_named():
    with pytest.raises(DataError, match="unknown prior type 'beta'"):
        prior_from_config({"type": "beta"})
    with pytest.raises(DataError, match="missing the key 'high'"):
        prior_from_config({"type": "uniform", "low": [0]})
    with pytest.raises(ValueError, match="high > low"):
        UniformPrior([1.0], [0.0])
