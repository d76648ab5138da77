"""The DeepSets embedding: permutation invariance, registration, set sizes, use in an estimator."""

import pytest
import torch

import sbi_gen
from sbi_gen.nn import DeepSetsEmbedding
from sbi_gen.registry import get_registry


@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "mean_max"])
def test_permuting_the_set_leaves_the_embedding_unchanged(pooling):
    torch.manual_seed(0)
    net = DeepSetsEmbedding((20, 8, 3), 16, pooling=pooling).double()
    x = torch.randn(5, 20, 8, 3, dtype=torch.float64)
    permuted = x[:, torch.randperm(20)]
    out = net(x)
    assert out.shape == (5, 16)
    # rounding only: the 20-term pooled sum in another order (<= 2 gamma_20 ||sum_i |phi_i| ||_2 <= 1.1e-13 here, less
    # for mean, 0 for max) and phi's rows in other BLAS blocks (~ the same), through rho (Lipschitz ~1.05): < 1e-12
    assert (net(permuted) - out).abs().max() < 1e-12
    # but it does look at the elements
    assert (net(x + 0.1 * torch.randn_like(x)) - out).abs().max() > 1e-4


def test_registered_and_selectable_by_name():
    registry = get_registry()
    assert "deepsets" in registry.names("embedding")
    net = registry.embedding("deepsets", (20, 8, 3), 12, hidden_features=32, pooling="mean_max")
    assert isinstance(net, DeepSetsEmbedding)
    assert net(torch.randn(3, 20, 8, 3)).shape == (3, 12)


def test_mean_pooling_takes_any_set_size_and_rejects_wrong_elements():
    net = DeepSetsEmbedding((20, 4), 8)
    assert net(torch.randn(2, 7, 4)).shape == (2, 8)
    with pytest.raises(ValueError, match="deepsets expects"):
        net(torch.randn(2, 20, 5))
    with pytest.raises(ValueError, match="set axis"):
        DeepSetsEmbedding((20,), 8)
    with pytest.raises(ValueError, match="pooling"):
        DeepSetsEmbedding((20, 4), 8, pooling="median")


def test_flow_trains_on_conformation_sets_with_deepsets():
    simulator = sbi_gen.get_simulator("alkane_set", num_conformations=10)
    data = sbi_gen.simulate(simulator, 400, seed=0)
    estimator = sbi_gen.get_estimator("flow", num_transforms=2, hidden_features=32, embedding="deepsets",
                                      embedding_options={"hidden_features": 32})
    estimator.fit(data.theta, data.x, simulator.prior, max_epochs=2, progress=False)
    samples = estimator.sample(data.x[:3], 50, torch.Generator().manual_seed(0))
    assert samples.shape == (50, 3, 4)
    assert bool(simulator.prior.contains(samples).all())


def test_estimator_with_deepsets_is_invariant_to_permuting_the_set():
    """Standardization of x pools over the set axis, so the whole posterior ignores element order."""
    simulator = sbi_gen.get_simulator("alkane_set", num_conformations=10)
    data = sbi_gen.simulate(simulator, 300, seed=1)
    estimator = sbi_gen.get_estimator("flow", num_transforms=2, hidden_features=16, embedding="deepsets",
                                      embedding_options={"hidden_features": 16})
    estimator.fit(data.theta, data.x, simulator.prior, max_epochs=2, progress=False)
    standardize = estimator.network["x_standardize"]
    assert torch.equal(standardize.mean[0], standardize.mean[5])
    x = data.x[:4]
    permuted = x[:, torch.randperm(10, generator=torch.Generator().manual_seed(0))]
    theta = data.theta[:4]
    assert torch.allclose(estimator.log_prob(theta, x), estimator.log_prob(theta, permuted), atol=1e-4)
