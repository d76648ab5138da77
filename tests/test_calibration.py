"""C2ST and SBC on exact and deliberately wrong posteriors of the toy model."""

import pytest
import torch

import sbi_gen
from sbi_gen.calibration import c2st, c2st_per_observation, sbc_ranks, sbc_test


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


def test_c2st_per_observation_keeps_each_observation_apart():
    # observation 0: same distribution; 1: shifted one sd along each axis (Bayes 0.807); 2: scaled by 3 in 1-D of 3
    reference = torch.stack([normal(3000, seed=0), normal(3000, seed=1), normal(3000, seed=2)], dim=1)
    wider = normal(3000, seed=5)
    wider[:, 0] *= 3.0
    estimate = torch.stack([normal(3000, seed=3), normal(3000, shift=1.0, seed=4), wider], dim=1)
    results = c2st_per_observation(reference, estimate, seed=0)
    assert [len(r.fold_accuracies) for r in results] == [5, 5, 5]
    assert abs(results[0].accuracy - 0.5) < 0.03
    assert results[1].accuracy == pytest.approx(0.807, abs=0.03)
    # Bayes accuracy of N(0, 1) vs N(0, 9) in one coordinate: 0.5 + (Phi(c) - Phi(c / 3)), c = 3 sqrt(ln 9 / 8)
    c = 3 * (torch.log(torch.tensor(9.0)) / 8).sqrt()
    normal_cdf = torch.distributions.Normal(0.0, 1.0).cdf
    bayes = float(0.5 + normal_cdf(c) - normal_cdf(c / 3))
    assert results[2].accuracy == pytest.approx(bayes, abs=0.03)
    # observation 1 alone gives the same answer up to classifier noise
    assert c2st(reference[:, 1], estimate[:, 1]).accuracy == pytest.approx(results[1].accuracy, abs=0.02)


def test_c2st_refuses_mismatched_or_too_few_samples():
    with pytest.raises(ValueError, match="differ in dimension"):
        c2st(normal(100, d=3), normal(100, d=2))
    with pytest.raises(ValueError, match="differ in observations"):
        c2st_per_observation(torch.zeros(100, 2, 3), torch.zeros(100, 3, 3))
    with pytest.raises(ValueError, match=r"shape|\[n, B, d\]"):
        c2st_per_observation(torch.zeros(100, 3), torch.zeros(100, 3))
    with pytest.raises(ValueError, match="at least 10 samples"):
        c2st(normal(6), normal(100))
    with pytest.raises(ValueError, match="finite"):
        c2st(torch.full((100, 2), float("nan")), normal(100, d=2))


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
