"""The suite's sbi adapter: every prior kind reaches sbi as a distribution sbi can transform and train with."""

from __future__ import annotations

import pytest
import torch

from sbi_gen.prior import LogNormalPrior

pytest.importorskip("sbi")

from sbi.utils.sbiutils import mcmc_transform  # noqa: E402

from sbi_gen.benchmark.sbi_backend import as_torch_prior, train_and_sample  # noqa: E402


def test_log_normal_prior_reaches_sbi_exactly_and_sbi_trains_on_it():
    # sbibm's sir and lotka_volterra priors are log-normal; through the generic wrapper sbi's check_transform
    # failed on the support [0, inf] and every sbi cell of those tasks exited 1
    prior = LogNormalPrior([-0.5, 0.3], [0.4, 0.2], ["beta", "gamma"])
    torch_prior = as_torch_prior(prior)
    theta = prior.sample(64, torch.Generator().manual_seed(0))
    # float32 densities of the same formula: agreement to float32 rounding of a log density of order 1 (1e-5)
    assert torch.allclose(torch_prior.log_prob(theta), prior.log_prob(theta).float(), atol=1e-5)
    transform = mcmc_transform(torch_prior)  # runs sbi's own round-trip check
    assert torch.allclose(transform.inv(transform(theta)), theta, rtol=1e-4)
    x = torch.log(theta) + 0.1 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    result = train_and_sample("sbi:NPE-maf", prior, theta, x, x[:2], 20, seed=0,
                              train_options={"max_num_epochs": 2})
    assert result["samples"].shape == (20, 2, 2) and bool((result["samples"] > 0).all())
