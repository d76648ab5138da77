"""The typed plugin contract: capabilities declared once, options as validated dataclasses, the Posterior object."""

import inspect
import json

import pytest
import torch

import sbi_gen
from sbi_gen import DataError, Simulator, UniformPrior
from sbi_gen.calibration import draw_posterior
from sbi_gen.estimator_options import EstimatorOptions
from sbi_gen.hookspecs import (
    EmbeddingCapabilities,
    EmbeddingSpec,
    EstimatorCapabilities,
    EstimatorSpec,
    SimulatorCapabilities,
    SimulatorSpec,
)
from sbi_gen.posterior import Posterior, as_posterior
from sbi_gen.refine import importance_sample
from sbi_gen_plugins.diffusion import DiffusionOptions, DiffusionPosterior
from sbi_gen_plugins.flow import FlowOptions, FlowPosterior
from sbi_gen_simulators.toy_gaussian import ToyGaussian

# -- capabilities ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["simulator", "estimator", "embedding"])
def test_every_builtin_spec_carries_a_typed_record_declared_once(kind):
    registry = sbi_gen.get_registry()
    record = {"simulator": SimulatorCapabilities, "estimator": EstimatorCapabilities,
              "embedding": EmbeddingCapabilities}[kind]
    for name in registry.names(kind):
        spec = registry.spec(kind, name)
        assert isinstance(spec.capabilities, record), name
        if isinstance(getattr(spec.factory, "capabilities", None), record):
            assert spec.capabilities is spec.factory.capabilities, name  # one object, not a copy


def test_simulator_capabilities_follow_the_methods_it_implements():
    assert ToyGaussian.capabilities == SimulatorCapabilities(has_log_likelihood=True, has_reference_posterior=True)
    gw = sbi_gen.get_registry().spec("simulator", "gw").capabilities
    assert gw.suggested_estimator_options["embedding"] == "gw_svd"
    assert sbi_gen.get_registry().spec("simulator", "gw_network").capabilities.has_reference_posterior is False

    class OnlySimulates(Simulator):
        def simulate(self, theta, generator=None):
            return theta

    assert OnlySimulates.capabilities == SimulatorCapabilities()
    assert sbi_gen.get_registry().spec("embedding", "deepsets").capabilities.set_axis == 0


def test_capabilities_declared_twice_or_untyped_are_refused():
    with pytest.raises(TypeError, match="declares its capabilities itself.*declare them once"):
        EstimatorSpec("flow2", "x", FlowPosterior, EstimatorCapabilities(has_log_prob=True))
    with pytest.raises(TypeError, match="declares its capabilities itself"):
        SimulatorSpec("toy2", "x", ToyGaussian, SimulatorCapabilities(has_log_likelihood=True))
    with pytest.raises(TypeError, match="must be a EmbeddingCapabilities record, got dict"):
        EmbeddingSpec("sets", "x", torch.nn.Identity, {"set_axis": 0})
    with pytest.raises(ValueError, match="unknown log_prob_method 'mcmc'"):
        EstimatorCapabilities(log_prob_method="mcmc")
    with pytest.raises(ValueError, match="set_axis"):
        EmbeddingCapabilities(set_axis=-1)
    with pytest.raises(TypeError, match="capabilities must be an EstimatorCapabilities record"):
        type("Bad", (FlowPosterior,), {"capabilities": {"has_log_prob": True}})
    assert EstimatorCapabilities(has_log_prob=False).log_prob_method is None


def test_a_factory_without_its_own_record_declares_it_on_the_spec():
    def make(x_shape, output_features):
        return torch.nn.Flatten()

    spec = EmbeddingSpec("flat_sets", "x", make, EmbeddingCapabilities(set_axis=0))
    assert spec.capabilities.set_axis == 0
    assert EmbeddingSpec("flat", "x", make).capabilities == EmbeddingCapabilities()


# -- options -----------------------------------------------------------------


def test_options_are_a_dataclass_read_as_attributes_and_saved(small_flow, tmp_path):
    assert isinstance(small_flow.options, FlowOptions)
    assert small_flow.options.num_transforms == 2 and small_flow.options.hidden_features == 32
    parameters = inspect.signature(FlowPosterior).parameters
    assert list(parameters)[0] == "device" and set(FlowOptions.names()) == set(parameters) - {"device"}
    assert parameters["tail_bound"].default == 5.0
    path = small_flow.save(tmp_path / "model")
    assert json.loads((path / "config.json").read_text())["options"] == small_flow.options.to_dict()
    assert sbi_gen.load_estimator(path).options == small_flow.options


@pytest.mark.parametrize("options, message", [
    ({"num_transform": 3}, r"unknown option 'num_transform' for estimator 'flow'\. Did you mean 'num_transforms'\?"),
    ({"num_transforms": "3"}, r"estimator 'flow': option 'num_transforms' must be a whole number, got '3'"),
    ({"num_transforms": 2.5}, r"option 'num_transforms' must be a whole number, got 2\.5"),
    ({"num_bins": True}, r"option 'num_bins' must be a whole number, got True"),
    ({"tail_bound": "wide"}, r"option 'tail_bound' must be a number, got 'wide'"),
    ({"flow": "realnvp"}, r"unknown flow 'realnvp': option 'flow' takes one of \('nsf', 'maf', 'nsf_ar'\)"),
    ({"num_transforms": 0}, r"option 'num_transforms' must be positive, got 0"),
    ({"embedding_options": [1]}, r"option 'embedding_options' must be a dict"),
    ({"embedding_options": {"fn": print}}, r"options must be JSON values"),
])
def test_bad_options_are_named_whether_built_directly_or_through_the_registry(options, message):
    with pytest.raises(DataError, match=message):
        FlowPosterior(**options)
    with pytest.raises(DataError, match=message.replace("estimator 'flow': ", "")):
        sbi_gen.get_estimator("flow", **options)


def test_option_ranges_and_defaults_of_the_ode_estimators():
    with pytest.raises(DataError, match="'beta_min' and 'beta_max' need 0 < beta_min < beta_max"):
        DiffusionPosterior(beta_min=2.0, beta_max=1.0)
    with pytest.raises(DataError, match="option 'sigma_min' must be in"):
        sbi_gen.get_estimator("flow_matching", sigma_min=1.0)
    assert DiffusionOptions().num_steps == 25 and sbi_gen.get_estimator("flow_matching").options.num_steps == 16
    assert DiffusionOptions(embedding_options=None).embedding_options == {}
    with pytest.raises(DataError, match="unknown option 'tail_bound' for estimator 'diffusion'"):
        DiffusionPosterior(tail_bound=1.0)


def test_estimators_must_declare_an_options_dataclass():
    with pytest.raises(TypeError, match="Options must be an EstimatorOptions dataclass"):
        type("Bad", (FlowPosterior,), {"Options": dict})
    assert EstimatorOptions.names() == ["bounded_support"]  # the one option every estimator shares


# -- the Posterior object ----------------------------------------------------


def test_posterior_is_the_estimators_sample_and_log_prob(small_flow, toy):
    x = sbi_gen.simulate(toy, 3, seed=4).x
    posterior = small_flow.posterior(x)
    assert isinstance(posterior, Posterior) and posterior.has_log_prob and posterior.log_prob_method == "exact"
    assert posterior.prior is small_flow.prior and torch.equal(posterior.x, x)
    samples = posterior.sample(40, torch.Generator().manual_seed(1))
    # the same code path with the same generator seed: bit for bit, no tolerance needed
    assert torch.equal(samples, small_flow.sample(x, 40, torch.Generator().manual_seed(1)))
    assert samples.shape == (40, 3, 3)
    assert torch.equal(posterior.log_prob(samples), small_flow.log_prob(samples, x))
    assert posterior.log_prob(samples).shape == (40, 3)
    assert as_posterior(posterior) is posterior


def test_posterior_of_an_ode_estimator_says_how_its_density_is_computed(toy):
    data = sbi_gen.simulate(toy, 300, seed=0)
    estimator = sbi_gen.get_estimator("flow_matching", hidden_features=16, num_blocks=1, num_steps=3,
                                      log_prob_steps=3)
    estimator.fit(data.theta, data.x, toy.prior, max_epochs=1, progress=False)
    posterior = estimator.posterior(data.x[:1])
    assert posterior.log_prob_method == "ode"
    result = importance_sample(posterior, toy, data.x[0], 200, generator=torch.Generator().manual_seed(0))
    assert result.proposal_log_prob_method == "ode"


def test_consumers_read_has_log_prob_instead_of_probing(toy):
    reference = toy.reference_posterior(sbi_gen.simulate(toy, 2, seed=0).x)
    samples_only = Posterior(reference.sample, name="a sampler")
    assert not samples_only.has_log_prob and samples_only.log_prob_method is None
    with pytest.raises(NotImplementedError, match="a sampler has no log_prob"):
        samples_only.log_prob(torch.zeros(1, 2, 3))
    draws = draw_posterior(samples_only, torch.zeros(2, 3), 10, torch.Generator().manual_seed(0))
    assert draws.log_prob_true is None and draws.note == "the posterior has no log_prob"
    with pytest.raises(NotImplementedError, match="a sampler has no log_prob; importance sampling needs"):
        importance_sample(Posterior(lambda n, g=None: reference.sample(n, g)[:, :1], name="a sampler"), toy,
                          torch.zeros(3), 10)
    wrapped = as_posterior(reference)
    assert wrapped.has_log_prob and wrapped.log_prob_method == "exact"
    with pytest.raises(ValueError, match="capabilities say has_log_prob=True, but log_prob is missing"):
        Posterior(reference.sample, capabilities=EstimatorCapabilities())
    with pytest.raises(TypeError, match="needs sample"):
        as_posterior(object())


def test_unfitted_estimator_has_no_posterior():
    with pytest.raises(sbi_gen.NotFittedError):
        sbi_gen.get_estimator("flow").posterior(torch.zeros(1, 2))


def test_a_registry_gives_the_estimator_its_embeddings(monkeypatch):
    """The estimator resolves its embedding through the registry that built it, once, outside any network."""
    registry = sbi_gen.Registry()
    calls = []
    original = sbi_gen.Registry.embedding

    def recording(self, name, x_shape, output_features, **options):
        calls.append((self, name))
        return original(self, name, x_shape, output_features, **options)

    monkeypatch.setattr(sbi_gen.Registry, "embedding", recording)
    estimator = registry.estimator("flow", num_transforms=1, hidden_features=8)
    prior = UniformPrior([0.0, 0.0], [1.0, 1.0])
    theta = prior.sample(100, torch.Generator().manual_seed(0))
    estimator.fit(theta, theta + 0.1, prior, max_epochs=1, progress=False)
    assert calls == [(registry, "mlp")]
