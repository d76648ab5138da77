"""C2ST and SBC on exact and deliberately wrong posteriors of the toy model."""

import pytest
import torch

import sbi_gen
from sbi_gen.calibration import c2st, sbc_ranks, sbc_test


def normal(n, shift=0.0, scale=1.0, seed=0, d=3):
    return shift + scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_c2st_same_distribution_is_near_half():
    result = c2st(normal(3000, seed=0), normal(3000, seed=1))
    assert abs(result.accuracy - 0.5) < 0.03
    assert len(result.fold_accuracies) == 5


def test_c2st_detects_a_shift():
    # two unit Gaussians one sd apart along each axis: Bayes accuracy Phi(sqrt(3)/2) = 0.807
    result = c2st(normal(3000, seed=0), normal(3000, shift=1.0, seed=1))
    assert result.accuracy == pytest.approx(0.807, abs=0.03)


def test_sbc_ranks_counts_samples_below():
    samples = torch.tensor([[[0.0]], [[1.0]], [[2.0]]])
    assert sbc_ranks(samples, torch.tensor([[1.5]])).item() == 2


@pytest.fixture(scope="module")
def sbc_setup():
    simulator = sbi_gen.get_simulator("toy_gaussian")
    data = sbi_gen.simulate(simulator, 300, seed=11)
    return simulator.reference_posterior(data.x), data.theta


def test_sbc_accepts_the_exact_posterior(sbc_setup):
    posterior, theta = sbc_setup
    result = sbc_test(posterior.sample(500, torch.Generator().manual_seed(0)), theta)
    assert not result.rejects(0.01)


@pytest.mark.parametrize("factor", [0.25, 4.0])
def test_sbc_rejects_over_and_underconfident_posteriors(sbc_setup, factor):
    posterior, theta = sbc_setup
    wrong = posterior.scaled(covariance_factor=factor)
    result = sbc_test(wrong.sample(500, torch.Generator().manual_seed(0)), theta)
    assert result.rejects(0.01)


def test_sbc_false_alarm_rate_is_near_its_level():
    """Over 40 seeds of the exact posterior, a 5%-level test rejects rarely (Bonferroni is conservative)."""
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    rejections = 0
    for seed in range(40):
        data = sbi_gen.simulate(simulator, 100, seed=100 + seed)
        samples = simulator.reference_posterior(data.x).sample(100, torch.Generator().manual_seed(seed))
        rejections += sbc_test(samples, data.theta, seed=seed).rejects(0.05)
    assert rejections <= 5
