import math

import numpy as np
import pytest
import torch
from scipy import stats

from sbi_gen import (
    DataError,
    GaussianPrior,
    IndependentPrior,
    Parameter,
    PriorSupportError,
    UniformPrior,
    prior_from_config,
)


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


def test_independent_prior_marginals_follow_their_cdfs():
    """uniform, sine on [0, pi] (cos uniform), cosine on [-pi/2, pi/2] (sin uniform), and sub-intervals."""
    prior = IndependentPrior(
        ["uniform", "sine", "cosine", "sine", "cosine"],
        [1.0, 0.0, -math.pi / 2, 0.3, 0.1],
        [3.0, math.pi, math.pi / 2, 1.2, 1.0],
        ["a", "inclination", "declination", "b", "c"],
    )
    theta = prior.sample(20_000, torch.Generator().manual_seed(0)).double()
    assert bool(prior.contains(theta).all())
    cdfs = [
        lambda v: (v - 1.0) / 2.0,
        lambda v: (1 - np.cos(v)) / 2,
        lambda v: (np.sin(v) + 1) / 2,
        lambda v: (np.cos(0.3) - np.cos(v)) / (np.cos(0.3) - np.cos(1.2)),
        lambda v: (np.sin(v) - np.sin(0.1)) / (np.sin(1.0) - np.sin(0.1)),
    ]
    for j, cdf in enumerate(cdfs):
        assert stats.kstest(theta[:, j].numpy(), cdf).pvalue > 1e-3, prior.names[j]
    wrong = stats.kstest(theta[:, 1].numpy(), stats.uniform(0, math.pi).cdf).pvalue
    assert wrong < 1e-6  # the test can tell a sine from a uniform distribution


def test_independent_prior_density_is_normalized_and_zero_outside():
    prior = IndependentPrior(["sine", "cosine", "uniform"], [0.2, -1.0, -2.0], [2.5, 1.5, 2.0])
    for j in range(3):
        grid = torch.linspace(float(prior.low[j]), float(prior.high[j]), 20_001, dtype=torch.float64)
        theta = torch.zeros(grid.numel(), 3, dtype=torch.float64)
        theta[:, j] = grid
        others = [k for k in range(3) if k != j]
        theta[:, others] = 0.5 * (prior.low[others] + prior.high[others])
        # integrate the joint density along dimension j, divided by the others' (constant) density
        log_p = prior.log_prob(theta)
        theta_mid = theta[:1].clone()
        marginal_others = sum(
            float(IndependentPrior([prior.kinds[k]], [prior.low[k]], [prior.high[k]]).log_prob(theta_mid[:, k:k + 1]))
            for k in others
        )
        integral = torch.trapezoid(torch.exp(log_p - marginal_others), grid)
        assert float(integral) == pytest.approx(1.0, abs=1e-7)
    outside = torch.tensor([[2.6, 0.0, 0.0], [1.0, -1.2, 0.0]], dtype=torch.float64)
    assert prior.log_prob(outside).tolist() == [-math.inf, -math.inf]
    # float32 values rounded onto pi give a zero density (-inf), never NaN
    edge = IndependentPrior(["sine", "cosine"], [0.0, -math.pi / 2], [math.pi, math.pi / 2])
    assert edge.log_prob(torch.tensor([[math.pi, 0.0], [1.0, math.pi / 2]], dtype=torch.float32)).tolist() == [
        -math.inf, -math.inf
    ]


def test_independent_prior_config_round_trip_and_errors():
    prior = IndependentPrior(["uniform", "cosine"], [0.0, -math.pi / 2], [2 * math.pi, math.pi / 2],
                             [Parameter("ra", "rad"), Parameter("dec", "rad")])
    again = prior_from_config(prior.to_config())
    assert isinstance(again, IndependentPrior) and again.kinds == prior.kinds and again.parameters == prior.parameters
    theta = prior.sample(7, torch.Generator().manual_seed(1))
    assert torch.equal(again.log_prob(theta), prior.log_prob(theta))
    with pytest.raises(ValueError, match="'theta_0': unknown kind 'beta'"):
        IndependentPrior(["beta"], [0.0], [1.0])
    with pytest.raises(ValueError, match=r"'theta_0': a sine density needs \[low, high\] inside \[0, 3.14159\]"):
        IndependentPrior(["sine"], [-0.1], [1.0])
    with pytest.raises(ValueError, match="one kind, low and high per dimension"):
        IndependentPrior(["uniform", "sine"], [0.0], [1.0])
    with pytest.raises(ValueError, match="finite low < high"):
        IndependentPrior(["uniform"], [1.0], [1.0])
    with pytest.raises(DataError, match="missing the key 'kinds'"):
        prior_from_config({"type": "independent", "low": [0], "high": [1]})
