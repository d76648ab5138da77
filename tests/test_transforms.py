"""The prior-support transform: invertible, inside the support, with the right Jacobian."""

import math

import pytest
import torch

from sbi_gen.nn import ParameterTransform

INF = math.inf


@pytest.fixture()
def transform():
    low = torch.tensor([0.0, -INF, 1.0, -INF])
    high = torch.tensor([2.0, 3.0, INF, INF])
    t = ParameterTransform(low, high)
    theta = torch.tensor([[0.5, 0.0, 2.0, -4.0], [1.9, 2.5, 10.0, 3.0], [0.1, -9.0, 1.5, 0.0]])
    return t.fit(theta), theta


def test_round_trip(transform):
    t, theta = transform
    z, _ = t(theta)
    assert torch.allclose(t.inverse(z), theta, atol=1e-5)


def test_any_z_maps_inside_the_support(transform):
    t, _ = transform
    theta = t.inverse(torch.randn(1000, 4, generator=torch.Generator().manual_seed(0)) * 10)
    assert bool(((theta >= t.low.float()) & (theta <= t.high.float())).all())


def test_log_det_matches_autograd(transform):
    t, theta = transform
    for row in theta.double():
        jacobian = torch.autograd.functional.jacobian(lambda v: t._to_unbounded(v)[0] / t.standardize.std.double(), row)
        _, log_det = t(row)
        assert log_det.item() == pytest.approx(torch.linalg.slogdet(jacobian).logabsdet.item(), abs=1e-6)
