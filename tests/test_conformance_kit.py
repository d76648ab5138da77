"""The conformance kit catches deliberately broken plugins, each with its own message, and passes correct ones."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from sbi_gen import Parameter, PosteriorEstimator, Simulator, UniformPrior
from sbi_gen.hookspecs import EmbeddingCapabilities, EmbeddingSpec, EstimatorCapabilities, SimulatorSpec
from sbi_gen.registry import Registry
from sbi_gen.testing import ConformanceError, ConformanceReport, check_embedding, check_estimator, check_simulator

# -- simulators --------------------------------------------------------------------------------------------------------


class Line(Simulator):
    """A correct simulator: ``x = theta + N(0, 0.1^2)`` on a box prior, with its exact likelihood."""

    def __init__(self) -> None:
        self.options = {}
        self.prior = UniformPrior([0.0, 0.0], [1.0, 1.0], [Parameter("a", "m"), Parameter("b", "s")])
        self.x_shape = (2,)

    def simulate(self, theta, generator=None):
        return (theta.double() + 0.1 * torch.randn(len(theta), 2, generator=generator, dtype=torch.float64)).float()

    def log_likelihood(self, theta, x):
        residual = (x.double() - theta.double()) / 0.1
        return -0.5 * (residual**2).sum(-1) - 2 * math.log(0.1 * math.sqrt(2 * math.pi))


class WrongShape(Line):
    def simulate(self, theta, generator=None):
        return torch.cat([super().simulate(theta, generator), torch.zeros(len(theta), 1)], -1)  # [n, 3], not [n, 2]


class IgnoresGenerator(Line):
    def simulate(self, theta, generator=None):
        return (theta + 0.1 * torch.randn(len(theta), 2)).float()  # torch's global random state


class FixedNoise(Line):
    def simulate(self, theta, generator=None):
        return super().simulate(theta, torch.Generator().manual_seed(0))  # the same noise whatever the seed


class FlippedLikelihood(Line):
    def log_likelihood(self, theta, x):
        return -super().log_likelihood(theta, x)


class DropsBatchOfOne(Line):
    def simulate(self, theta, generator=None):
        return super().simulate(theta, generator).squeeze(0)


class NaNAtTheEdge(Line):
    def simulate(self, theta, generator=None):
        x = super().simulate(theta, generator)
        return torch.where(theta[:, :1] > 0.9, torch.full_like(x, math.nan), x)


class SplitLine(Line):
    """A correct signal split: the signal is ``theta`` itself with ``b`` zeroed; ``b`` and the noise are cheap."""

    redrawn_parameters = ("b",)
    signal_shape = (2,)

    def simulate_signal(self, theta):
        return theta * torch.tensor([1.0, 0.0])

    def simulate_from_signal(self, theta, signal, generator=None):
        return super().simulate(signal + theta * torch.tensor([0.0, 1.0]), generator)


class SignalReadsB(SplitLine):
    def simulate_signal(self, theta):
        return theta.clone()  # reads the re-drawn b


class SplitShifted(SplitLine):
    def simulate_from_signal(self, theta, signal, generator=None):
        return super().simulate_from_signal(theta, signal, generator) + 0.5  # not distributed as simulate


def test_a_correct_simulator_passes_and_reports_its_checks():
    report = check_simulator(Line())
    assert isinstance(report, ConformanceReport) and report.kind == "simulator"
    assert {"prior units", "seeded reproducibility", "log_likelihood prefers the true theta"} <= set(report.checks)
    assert report.skipped == {"reference posterior": "not declared", "signal split": "not declared"}
    assert "log_likelihood prefers the true theta" in str(report)
    assert "signal split" in check_simulator(SplitLine()).checks


@pytest.mark.parametrize("simulator, check, message", [
    (WrongShape(), "simulate shape and dtype", r"returned x of shape \[256, 3\] for theta \[256, 2\], expected "
                                                r"\[256, 2\]"),
    (DropsBatchOfOne(), "simulate shape and dtype", r"simulate of one row returned \[2\], expected \[1, 2\]"),
    (IgnoresGenerator(), "seeded reproducibility", r"the same generator seed gave different x \(it advanced the "
                                                   r"global random state: it ignores its generator\)"),
    (FixedNoise(), "seeded reproducibility", "two generator seeds gave identical x: simulate ignores its generator"),
    (NaNAtTheEdge(), "simulate finite", r"\d+ of 256 prior draws gave NaN or inf, first theta \[0\.9"),
    (SignalReadsB(), "signal split", r"simulate_signal changed when only the re-drawn parameters \['b'\] changed"),
    (SplitShifted(), "signal split", r"differ in their per-row mean \(two-sample KS p = "),
    (FlippedLikelihood(), "log_likelihood prefers the true theta", r"more likely than another prior draw in only "
                                                                   r"0\.0\d\d of 128 comparisons"),
])
def test_a_broken_simulator_fails_with_its_own_message(simulator, check, message):
    with pytest.raises(ConformanceError, match=message) as failure:
        check_simulator(simulator)
    assert failure.value.check == check and failure.value.plugin == type(simulator).__name__
    assert isinstance(failure.value, AssertionError) and "To fix:" in str(failure.value)
    assert str(pickle.loads(pickle.dumps(failure.value))) == str(failure.value)  # crosses process boundaries


def test_a_spec_and_a_registered_name_are_checked_too():
    registry = Registry(autoload=False)

    class Plugin:
        @staticmethod
        def sbi_gen_simulators():
            return [SimulatorSpec("line", "x = theta + noise", Line)]

    Plugin.sbi_gen_simulators.sbi_gen_impl = {}  # what @hookimpl sets (no options)
    registry.register(Plugin(), "line_plugin")
    assert "describe round trip" in check_simulator("line", registry=registry).checks
    assert check_simulator(SimulatorSpec("line", "x = theta + noise", Line)).plugin == "line"
    with pytest.raises(ConformanceError, match="fails the conformance check 'build'.*unexpected keyword .*'noise'"):
        check_simulator("line", registry=registry, simulator_options={"noise": 0.2})


# -- estimators --------------------------------------------------------------------------------------------------------


class _Location(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))


class ZGaussian(PosteriorEstimator):
    """A correct (if uninformed) estimator: one Gaussian in the standardized space, whatever ``x``."""

    name = "z_gaussian"
    capabilities = EstimatorCapabilities(has_log_prob=True, log_prob_method="exact")

    def build(self, theta_dim, x_shape, embedding):
        return _Location(theta_dim)

    def loss_z(self, z, x):
        return -self.log_prob_z(z[None], x)[0]

    def _normal(self):
        return torch.distributions.Normal(self.core.loc, self.core.log_scale.exp())

    def sample_z(self, x, n, generator):
        noise = torch.randn(n, len(x), self.prior.dim, generator=generator)
        return self.core.loc + self.core.log_scale.exp() * noise

    def log_prob_z(self, z, x):
        return self._normal().log_prob(z).sum(-1)


class NarrowDensity(ZGaussian):
    def log_prob_z(self, z, x):  # the density of half the spread that sample_z draws
        return torch.distributions.Normal(self.core.loc, 0.5 * self.core.log_scale.exp()).log_prob(z).sum(-1)


class Unnormalized(ZGaussian):
    def log_prob_z(self, z, x):
        return super().log_prob_z(z, x) + 1.0


class Leaky(ZGaussian):
    def sample(self, x_obs, n, generator=None, max_batch=100_000):
        return super().sample(x_obs, n, generator, max_batch) + 0.5 * (self.prior.high - self.prior.low).float()


class Transposed(ZGaussian):
    def sample(self, x_obs, n, generator=None, max_batch=100_000):
        return super().sample(x_obs, n, generator, max_batch).transpose(0, 1)


class Tracking(ZGaussian):
    """A correct estimator whose posterior moves with ``x``: ``N(x[:2], 0.3^2)`` in standardized space at first."""

    def build(self, theta_dim, x_shape, embedding):
        core = _Location(theta_dim)
        core.shift = nn.Linear(x_shape[0], theta_dim)
        with torch.no_grad():
            core.shift.weight.copy_(torch.eye(theta_dim, x_shape[0]))
            core.shift.bias.zero_()
            core.log_scale.fill_(math.log(0.3))
        return core

    def _loc(self, x):
        return self.core.shift(x)  # [B, d]

    def sample_z(self, x, n, generator):
        return self._loc(x) + self.core.log_scale.exp() * torch.randn(n, len(x), self.prior.dim, generator=generator)

    def log_prob_z(self, z, x):
        return torch.distributions.Normal(self._loc(x), self.core.log_scale.exp()).log_prob(z).sum(-1)


class ScoresAnotherObservation(Tracking):
    def log_prob_z(self, z, x):
        return super().log_prob_z(z, x.flip(0))  # observation b scored against observation B - 1 - b


class Unseeded(ZGaussian):
    def sample_z(self, x, n, generator):
        return super().sample_z(x, n, None)


@pytest.mark.parametrize("estimator", [ZGaussian, Tracking])
def test_a_correct_estimator_passes(estimator):
    report = check_estimator(estimator)
    assert {"no posterior mass outside the prior", "sample and log_prob agree", "save/load round trip",
            "damaged weights are refused"} <= set(report.checks)
    assert "registration" not in report.checks  # not registered: loaded through the class's from_config


@pytest.mark.parametrize("estimator, check, message", [
    (Transposed, "sample shape", r"sample\(x \[3, \.\.\.\], 1000\) returned \[3, 1000, 2\], expected \[1000, 3, 2\]"),
    (Unseeded, "seeded sampling", "the same generator seed gave different draws"),
    (Leaky, "no posterior mass outside the prior", r"\d+ of 3000 posterior draws lie outside the prior support"),
    (NarrowDensity, "sample and log_prob agree", r"the mean of 2 q / \(q \+ r\) over draws of sample and of a "
                                                 r"reference r is 0\.\d+, but it is 1 \+- 0\.150"),
    (Unnormalized, "sample and log_prob agree", r"reference r is 1\.[34]\d+, but it is 1 \+- 0\.150"),
    (ScoresAnotherObservation, "sample and log_prob agree", r"for observation [02], the mean .* is 0\.[0-7]"),
])
def test_a_broken_estimator_fails_with_its_own_message(estimator, check, message):
    with pytest.raises(ConformanceError, match=message) as failure:
        check_estimator(estimator)
    assert failure.value.check == check and failure.value.kind == "estimator"


# -- embeddings --------------------------------------------------------------------------------------------------------


class Flatten(nn.Module):
    def __init__(self, x_shape, output_features, extra=0):
        super().__init__()
        self.linear = nn.Linear(math.prod(x_shape), output_features + extra)

    def forward(self, x):
        return self.linear(x.flatten(1))


class Detached(Flatten):
    def forward(self, x):
        return super().forward(x).detach()


class Unused(Flatten):
    def __init__(self, x_shape, output_features):
        super().__init__(x_shape, output_features)
        self.spare = nn.Linear(2, 2)


def test_a_correct_embedding_passes_and_a_set_embedding_is_checked_for_invariance():
    assert "differentiable" in check_embedding(Flatten, output_features=6).checks
    assert "permutation invariance" in check_embedding("deepsets", x_shape=(10, 2), output_features=4).checks


@pytest.mark.parametrize("embedding, check, message", [
    (lambda shape, features: Flatten(shape, features, extra=1), "output shape",
     r"embedding x \[5, 4, 3\] gave \[5, 7\], expected \[5, 6\]"),
    (Detached, "differentiable", "the output does not depend differentiably on anything"),
    (Unused, "differentiable", r"no gradient reaches the parameter\(s\) \['spare.weight', 'spare.bias'\]"),
    (EmbeddingSpec("flat_set", "claims to be a set embedding", Flatten, EmbeddingCapabilities(set_axis=0)),
     "permutation invariance", r"permuting x along set_axis 0 changed the summary by"),
])
def test_a_broken_embedding_fails_with_its_own_message(embedding, check, message):
    with pytest.raises(ConformanceError, match=message) as failure:
        check_embedding(embedding, output_features=6)
    assert failure.value.check == check
