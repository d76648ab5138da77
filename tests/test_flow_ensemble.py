"""flow_ensemble: the mixture density is the members' average, draws split multinomially, reproducibly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sbi_gen
from sbi_gen_plugins.flow_ensemble import FlowEnsemble


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class _Constant(nn.Module):
    """A member that always draws ``value`` (to tell the members' draws apart) and has density ``log_density``."""

    def __init__(self, value: float, log_density: float) -> None:
        super().__init__()
        self.value, self.log_density = value, log_density

    def sample(self, x, n, generator):
        return torch.full((n, len(x), 2), self.value)

    def log_prob(self, z, x):
        return torch.full(z.shape[:-1], self.log_density)


def test_draws_split_multinomially_and_are_shuffled():
    ensemble = FlowEnsemble([_Constant(float(k), 0.0) for k in range(4)])
    draws = ensemble.sample(torch.zeros(3, 1), 4000, torch.Generator().manual_seed(0))
    assert draws.shape == (4000, 3, 2)
    counts = torch.stack([(draws[:, 0, 0] == k).sum() for k in range(4)]).double()
    # multinomial(4000, 1/4): standard deviation sqrt(4000 * 1/4 * 3/4) = 27.4; 5 of them
    assert bool(((counts - 1000).abs() < 137).all()), counts
    assert len(set(draws[:50, 0, 0].tolist())) > 1  # shuffled, not in blocks of one member
    again = ensemble.sample(torch.zeros(3, 1), 4000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    assert ensemble.sample(torch.zeros(3, 1), 0, torch.Generator().manual_seed(0)).shape == (0, 3, 2)


def test_mixture_density_and_training_loss():
    ensemble = FlowEnsemble([_Constant(0.0, math.log(0.2)), _Constant(1.0, math.log(0.6))])
    z = torch.zeros(5, 3, 2)
    assert torch.allclose(ensemble.log_prob(z, torch.zeros(3, 1)), torch.full((5, 3), math.log(0.4)))
    loss = ensemble.loss(torch.zeros(3, 2), torch.zeros(3, 1))
    assert torch.allclose(loss, torch.full((3,), -(math.log(0.2) + math.log(0.6)) / 2))


def test_trained_ensemble_is_the_average_of_its_members():
    registry = sbi_gen.get_registry()
    simulator = registry.simulator("toy_gaussian", dim=2)
    data = sbi_gen.simulate(simulator, 1000, seed=0)
    estimator = registry.estimator("flow_ensemble", members=3, hidden_features=16, num_transforms=2)
    estimator.fit(data.theta, data.x, simulator.prior, max_epochs=3, progress=False, seed=1)
    members = estimator.core.members
    assert len(members) == 3 and len({id(m.embedding) for m in members}) == 3  # each member its own embedding
    first, second = (next(m.parameters()).detach() for m in members[:2])
    assert not torch.equal(first, second)  # independently initialized
    x = data.x[:4]
    theta = estimator.sample(x, 200, torch.Generator().manual_seed(2))
    network = estimator.network
    z, log_det = network["theta_transform"](theta)
    xs = network["x_standardize"](x)
    with torch.no_grad():
        per_member = torch.stack([m.log_prob(z, xs) for m in members]).double() + log_det
    expected = torch.logsumexp(per_member, 0) - math.log(3)
    # float32 network outputs of order 10: a few ulp of 10 each
    assert torch.allclose(estimator.log_prob(theta, x), expected, atol=1e-4)
