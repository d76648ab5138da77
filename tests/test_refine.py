"""Importance-sampling refinement against the toy model's exact posterior and evidence."""

import math

import pytest
import torch

import sbi_gen
from sbi_gen import Simulator, UniformPrior
from sbi_gen.calibration import c2st
from sbi_gen.reference import GaussianPosterior
from sbi_gen.refine import importance_sample


@pytest.fixture(scope="module")
def setup():
    simulator = sbi_gen.get_simulator("toy_gaussian")
    x = sbi_gen.simulate(simulator, 1, seed=21).x
    return simulator, x, simulator.reference_posterior(x), float(simulator.log_evidence(x))


def test_exact_proposal_gives_the_evidence_and_full_efficiency(setup):
    simulator, x, posterior, log_evidence = setup
    result = importance_sample(posterior, simulator, x, 2000, generator=torch.Generator().manual_seed(0))
    assert result.efficiency > 0.999
    assert result.log_evidence == pytest.approx(log_evidence, abs=1e-6)
    assert result.trustworthy and "reliable" in result.diagnosis


def test_inflated_proposal_is_corrected(setup):
    simulator, x, posterior, log_evidence = setup
    wide = posterior.scaled(covariance_factor=2.0)
    result = importance_sample(wide, simulator, x, 40_000, num_resampled=10_000,
                               generator=torch.Generator().manual_seed(1))
    assert abs(result.log_evidence - log_evidence) < 3 * result.log_evidence_se
    # exact efficiency for a 2x-inflated Gaussian in 5-D is (sqrt(3)/2)^5 = 0.487
    assert result.efficiency == pytest.approx((math.sqrt(3) / 2) ** 5, abs=0.03)
    reference = posterior.sample(10_000, torch.Generator().manual_seed(2))[:, 0]
    assert c2st(reference, result.resampled).accuracy <= 0.52
    unrefined = wide.sample(10_000, torch.Generator().manual_seed(3))[:, 0]
    assert c2st(reference, unrefined).accuracy > 0.6


@pytest.mark.parametrize("kind", ["too_narrow", "misses_the_mode"])
def test_bad_proposals_are_flagged(setup, kind):
    simulator, x, posterior, _ = setup
    sd = posterior.covariance[0].diagonal().sqrt()
    bad = posterior.scaled(covariance_factor=0.1) if kind == "too_narrow" else posterior.scaled(mean_shift=4 * sd)
    result = importance_sample(bad, simulator, x, 10_000, generator=torch.Generator().manual_seed(4))
    assert result.efficiency < 0.01
    assert not result.trustworthy
    assert "NOT trustworthy" in result.diagnosis


class BoxSimulator(Simulator):
    """theta ~ U(0, 1); x = theta + N(0, 0.1^2); the likelihood is -inf for theta > 0.9 (a hard cut)."""

    def __init__(self):
        self.prior = UniformPrior([0.0], [1.0])
        self.x_shape = (1,)
        self.options = {}

    def simulate(self, theta, generator=None):
        return theta + 0.1 * torch.randn(theta.shape, generator=generator)

    def log_likelihood(self, theta, x):
        value = -0.5 * ((x - theta[..., 0:1]) / 0.1) ** 2 - math.log(0.1 * math.sqrt(2 * math.pi))
        value = value[..., 0]
        return torch.where(theta[..., 0] > 0.9, torch.full_like(value, -math.inf), value)


def test_zero_weights_are_counted_not_fatal():
    simulator = BoxSimulator()
    proposal = GaussianPosterior(torch.tensor([[0.5]]), torch.tensor([[0.25]]))
    result = importance_sample(proposal, simulator, torch.tensor([0.5]), 20_000,
                               generator=torch.Generator().manual_seed(0))
    p_outside = 2 * torch.distributions.Normal(0.5, 0.5).cdf(torch.tensor(0.0)).item()
    assert result.zero_weight_reasons["outside_prior"] == pytest.approx(20_000 * p_outside, rel=0.05)
    assert result.zero_weight_reasons["likelihood_not_finite"] > 0
    assert result.num_zero_weight == result.zero_weight_reasons["outside_prior"] + result.zero_weight_reasons[
        "likelihood_not_finite"]
    assert bool((result.resampled >= 0).all() & (result.resampled <= 0.9).all())
    assert math.isfinite(result.log_evidence)


def test_refinement_needs_a_likelihood():
    class NoLikelihood(BoxSimulator):
        log_likelihood = Simulator.log_likelihood

    with pytest.raises(NotImplementedError, match="has no log_likelihood"):
        importance_sample(None, NoLikelihood(), torch.tensor([0.5]))
