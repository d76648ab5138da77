"""Statistical acceptance tests of the default flow on the toy Gaussian (slow: they train)."""

import pytest
import torch

import sbi_gen
from sbi_gen.calibration import c2st, sbc_test

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(trained_toy_flow):
    return trained_toy_flow


def test_flow_posterior_is_close_to_the_analytic_one(trained):
    simulator, estimator = trained
    observations = sbi_gen.simulate(simulator, 5, seed=99)
    samples = estimator.sample(observations.x, 10_000, torch.Generator().manual_seed(0))
    reference = simulator.reference_posterior(observations.x).sample(10_000, torch.Generator().manual_seed(1))
    accuracies = [c2st(reference[:, b], samples[:, b], seed=b).accuracy for b in range(5)]
    assert sum(accuracies) / 5 <= 0.55, accuracies


def test_flow_passes_sbc_and_an_overconfident_posterior_fails(trained):
    simulator, estimator = trained
    test = sbi_gen.simulate(simulator, 300, seed=7)
    flow_samples = estimator.sample(test.x, 1000, torch.Generator().manual_seed(0))
    assert not sbc_test(flow_samples, test.theta).rejects(0.01)
    overconfident = simulator.reference_posterior(test.x).scaled(covariance_factor=0.25)
    assert sbc_test(overconfident.sample(1000, torch.Generator().manual_seed(0)), test.theta).rejects(0.01)


def test_refining_the_flow_recovers_posterior_and_evidence(trained):
    from sbi_gen.refine import importance_sample

    simulator, estimator = trained
    x = sbi_gen.simulate(simulator, 1, seed=21).x
    result = importance_sample(estimator.posterior(x), simulator, x, 20_000, num_resampled=10_000,
                               generator=torch.Generator().manual_seed(5))
    assert result.efficiency > 0.3
    assert abs(result.log_evidence - float(simulator.log_evidence(x))) < 3 * result.log_evidence_se
    reference = simulator.reference_posterior(x).sample(10_000, torch.Generator().manual_seed(6))[:, 0]
    assert c2st(reference, result.resampled).accuracy <= 0.52
