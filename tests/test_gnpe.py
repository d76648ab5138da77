"""GNPE: proxy alignment of gw strain, aligned training pairs, Gibbs draws and exact joint importance weights."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

import sbi_gen
from sbi_gen.errors import DataError
from sbi_gen.gnpe import AlignedPairs, ProxyAlignment, has_alignment
from sbi_gen.gnpe_posterior import GNPEEstimator, load_gnpe
from sbi_gen.pairs import SimulationSet
from sbi_gen.prior import UniformPrior
from sbi_gen.refine import importance_sample
from sbi_gen.simulator import Simulator


@pytest.fixture(scope="module")
def gw():
    return sbi_gen.get_simulator("gw")


def _strain(sim, theta):
    return torch.view_as_real(sim.whitened_waveform(theta)).transpose(-1, -2)  # [n, 1, 2, n_bins] float64


def test_alignment_removes_the_time_shift_exactly_and_keeps_the_noise_white(gw):
    theta = torch.tensor([[12.0, 0.45, 1700.0, 2.0, -0.005], [12.0, 0.45, 1700.0, 2.0, 0.011]], dtype=torch.float64)
    h = _strain(gw, theta)
    aligned = gw.align(h, ProxyAlignment(gw).coordinates(theta))
    # the two differ only in t_c: aligned on their own proxies they are the same signal. The phases are
    # up to 2 pi f |t| ~ 32 rad, so float64 rounding leaves ~1e-14 of the amplitude (0.57): 1e-10 is safe
    assert (aligned[0] - aligned[1]).abs().max() < 1e-10 * h.abs().max()
    noise = torch.randn(3, *gw.x_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rotated = gw.align(noise, torch.tensor([[150.0, 0.01], [90.0, -0.003], [300.0, 0.0]], dtype=torch.float64))
    power = lambda v: v[:, :, 0] ** 2 + v[:, :, 1] ** 2  # noqa: E731
    # a unit-modulus factor per bin: |x|^2 per bin is kept to float64 rounding (relative 1e-15; bound 1e-12)
    assert torch.allclose(power(rotated), power(noise), rtol=1e-12, atol=1e-12)


def test_alignment_removes_the_newtonian_chirp(gw):
    theta = torch.tensor([[12.0, 0.45, 1700.0, 2.0, -0.005]], dtype=torch.float64)
    h = _strain(gw, theta)
    aligned = gw.align(h, ProxyAlignment(gw).coordinates(theta))

    def largest_phase_step(v):
        z = torch.complex(v[0, 0, 0], v[0, 0, 1])
        step = torch.angle(z[z.abs() > 0]).diff()
        return float(torch.remainder(step + math.pi, 2 * math.pi).sub(math.pi).abs().max())

    # raw: the chirp turns the phase by radians per 1/8 Hz bin at 20 Hz; aligned, only the 1PN and higher
    # terms remain (0.1 rad per bin measured); 0.3 leaves room and is still 8x below the raw step
    assert largest_phase_step(h) > 2.0
    assert largest_phase_step(aligned) < 0.3


def test_proxy_coordinates_round_trip_and_kernel(gw):
    alignment = ProxyAlignment(gw)
    theta = gw.prior.sample(64, torch.Generator().manual_seed(1))
    proxy = alignment.draw_proxies(theta, torch.Generator().manual_seed(2))
    assert bool(((proxy - alignment.coordinates(theta)).abs() <= alignment.half_widths).all())
    aligned = alignment.to_aligned(theta, proxy)
    assert bool(alignment.aligned_prior.contains(aligned).all())
    # float32 round trip through u ~ 80-360 rad: relative 1e-6 of Mc, far inside 1e-4
    assert torch.allclose(alignment.from_aligned(aligned, proxy), theta, rtol=1e-4, atol=1e-6)
    assert bool(torch.isfinite(alignment.log_kernel(proxy, theta)).all())
    far = proxy + 2 * alignment.half_widths
    assert bool((alignment.log_kernel(far, theta) == -math.inf).all())


def test_aligned_pairs_are_reproducible_per_seed(gw):
    data = sbi_gen.simulate(gw, 64, seed=3)
    pairs = AlignedPairs(data, ProxyAlignment(gw))

    def first(seed, epoch=0):
        return next(pairs.batches("train", 16, epoch=epoch, seed=seed, validation_fraction=0.25))

    (t1, x1), (t2, x2), (t3, _) = first(0), first(0), first(0, epoch=1)
    assert torch.equal(t1, t2) and torch.equal(x1, x2)
    assert not torch.equal(t1, t3)
    assert x1.shape == (16, math.prod(gw.x_shape) + 2)


def test_bad_kernels_and_simulators_are_named():
    sim = sbi_gen.get_simulator("toy_gaussian")
    assert not has_alignment(sim)
    with pytest.raises(DataError, match="cannot align"):
        ProxyAlignment(sim)
    with pytest.raises(DataError, match="positive kernel half widths"):
        ProxyAlignment(sbi_gen.get_simulator("gw"), half_widths=[1.0, -0.1])


class ShiftedPair(Simulator):
    """``x = theta + N(0, 0.3^2)`` in 2-D; the proxy is on ``y = sinh(theta_0)`` (a curved coordinate, so the
    Jacobian of the proxy coordinates enters the weights) and aligning subtracts ``asinh(y_hat)``."""

    sigma = 0.3
    proxy_parameters, proxy_names, proxy_units, proxy_half_widths = ("a",), ("sinh_a",), ("",), (0.6,)

    def __init__(self) -> None:
        self.prior = UniformPrior([-3.0, -3.0], [3.0, 3.0], ["a", "b"])
        self.x_shape = (2,)

    def simulate(self, theta, generator=None):
        return (theta + self.sigma * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)).float()

    def log_likelihood(self, theta, x):
        return torch.distributions.Normal(theta.double(), self.sigma).log_prob(x.double()).sum(-1)

    def to_proxy_coordinates(self, values):
        return torch.sinh(values)

    def from_proxy_coordinates(self, coordinates):
        return torch.asinh(coordinates)

    def log_abs_det_proxy_coordinates(self, values):
        return torch.log(torch.cosh(values[:, 0]))

    def align(self, x, proxy):
        shift = torch.zeros(len(proxy), 2, dtype=torch.float64)
        shift[:, 0] = torch.asinh(proxy[:, 0])
        return (x.double() - shift).to(x.dtype)


@pytest.mark.slow
def test_joint_importance_weights_are_exact_on_a_known_posterior():
    torch.manual_seed(0)
    sim = ShiftedPair()
    theta = sim.prior.sample(4000, torch.Generator().manual_seed(0))
    pairs = SimulationSet(theta, sim.simulate(theta, torch.Generator().manual_seed(1)))
    options = {"embedding": "mlp", "embedding_features": 16, "hidden_features": 32, "bounded_support": "logit"}
    gnpe = GNPEEstimator(sim, "flow", options, iterations=4)
    gnpe.fit(pairs, seed=0, max_epochs=30, progress=False)
    x = torch.tensor([[1.0, -0.4]])
    draws = gnpe.sample(x, 2000, torch.Generator().manual_seed(2))[:, 0]
    # the exact posterior is N(x, 0.3^2) (truncation at +-3 is > 6 sigma away); a network trained for
    # seconds is only roughly right, so this only checks that the Gibbs chains found it
    assert torch.allclose(draws.mean(0), x[0], atol=0.15) and bool(((draws.std(0) - 0.3).abs() < 0.15).all())
    result = importance_sample(gnpe.posterior(x), sim, x[0], 8000, generator=torch.Generator().manual_seed(3))
    assert result.trustworthy and result.proposal_log_prob_method == "joint"
    exact = math.log(1 / 36) + sum(math.log(norm.cdf((3 - v) / 0.3) - norm.cdf((-3 - v) / 0.3)) for v in (1.0, -0.4))
    # unbiased weights: the estimate is within a few standard errors of the exact evidence (4 se, plus
    # 0.01 for the se's own sampling error); leaving out log cosh(a) ~ 0.43 would miss by far more
    assert abs(result.log_evidence - exact) < 4 * result.log_evidence_se + 0.01
    weights = torch.softmax(result.log_weights, 0)
    mean = (weights[:, None] * result.samples.double()).sum(0)
    assert torch.allclose(mean, x[0].double(), atol=4 * 0.3 / math.sqrt(result.ess))


def test_gnpe_saves_and_loads_without_pickle(gw, tmp_path):
    data = sbi_gen.simulate(gw, 256, seed=4, signals=True)
    options = {**sbi_gen.get_registry().estimator_options_for("flow", "gw", {}, {}), "hidden_features": 16,
               "embedding_features": 8}
    options["embedding_options"] = {**options["embedding_options"], "num_basis": 8, "num_waveforms": 256,
                                    "hidden_features": 16}
    gnpe = GNPEEstimator(gw, "flow", options, iterations=2)
    gnpe.fit(sbi_gen.redraw.RedrawnPairs(data, gw), seed=0, max_epochs=1, progress=False)
    x = gw.simulate(gw.prior.sample(2, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(6))
    draws = gnpe.sample(x, 50, torch.Generator().manual_seed(7))
    assert draws.shape == (50, 2, 5) and bool(torch.isfinite(draws).all())
    gnpe.save(tmp_path / "m")
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pt"))
    loaded = load_gnpe(tmp_path / "m")
    assert torch.equal(loaded.sample(x, 50, torch.Generator().manual_seed(7)), draws)
