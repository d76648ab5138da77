"""sbibm's own tasks in the suite: priors and observations as sbibm's, seeded simulation, both classifiers.

sbibm is installed without its dependencies (README, the bench extra); CI installs it, so these run there.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.benchmark import SuiteConfig, run_suite
from sbi_gen.benchmark.classifiers import check_classifiers, score
from sbi_gen.benchmark.suite import cell_spec, prepare_reference
from sbi_gen.benchmark.tables import markdown
from sbi_gen.cli import main
from sbi_gen.cli.benchmark import _expand_tasks

sbibm = pytest.importorskip("sbibm")

TASKS = ["two_moons", "slcp", "gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "bernoulli_glm"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _simulator(task: str):
    return sbi_gen.get_registry().simulator(f"sbibm_{task}")


@pytest.mark.parametrize("task", TASKS)
def test_prior_is_sbibms(task):
    simulator = _simulator(task)
    theta = simulator.prior.sample(2000, torch.Generator().manual_seed(0)).double()
    ours = simulator.prior.log_prob(theta)
    theirs = simulator.task.prior_dist.log_prob(theta.float()).double()
    # sbibm evaluates in float32: |log p| <~ 30 here, so rounding stays below 30 * 2^-23 * a few operations
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-4), float((ours - theirs).abs().max())
    drawn = simulator.task.get_prior()(num_samples=2000).double()  # sbibm's own prior draws lie in our support
    assert bool(torch.isfinite(simulator.prior.log_prob(drawn)).all())


@pytest.mark.parametrize("task", TASKS)
def test_simulate_is_seeded_and_leaves_the_global_generator_alone(task):
    simulator = _simulator(task)
    theta = simulator.prior.sample(8, torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    first = simulator.simulate(theta, torch.Generator().manual_seed(5))
    again = simulator.simulate(theta, torch.Generator().manual_seed(5))
    other = simulator.simulate(theta, torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.shape == (8, *simulator.x_shape) and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_each_row_is_simulated_at_its_own_theta():
    # sbibm's gaussian_linear: x = theta + N(0, 0.1 I); rows alternate between two parameter vectors
    simulator = _simulator("gaussian_linear")
    pair = torch.stack([torch.full((10,), -0.5), torch.full((10,), 0.7)])
    theta = pair.repeat(2000, 1)
    x = simulator.simulate(theta, torch.Generator().manual_seed(0)).double()
    for row in (0, 1):
        mean = x[row::2].mean(0)
        # standard error sqrt(0.1 / 2000) = 0.0071 per coordinate; 5 of them
        assert torch.allclose(mean, pair[row].double(), atol=0.036), mean


@pytest.mark.parametrize("task", ["two_moons", "bernoulli_glm"])
def test_reference_observations_are_sbibms_published_ones(task):
    simulator = _simulator(task)
    theta, x, samples = simulator.reference_observations()
    assert theta.shape == (10, simulator.prior.dim) and x.shape == (10, *simulator.x_shape)
    assert samples.shape == (10_000, 10, simulator.prior.dim)
    for number in (1, 5, 10):
        assert torch.equal(x[number - 1], simulator.task.get_observation(num_observation=number)[0])
        assert torch.equal(theta[number - 1], simulator.task.get_true_parameters(num_observation=number)[0])
        published = simulator.task.get_reference_posterior_samples(num_observation=number)
        assert torch.equal(samples[:, number - 1], published.float())
    assert bool(torch.isfinite(simulator.prior.log_prob(samples.double())).all())


def test_prepare_reference_uses_published_observations_and_reuses_only_what_matches(tmp_path):
    registry = sbi_gen.get_registry()
    path = tmp_path / "sbibm_two_moons.npz"
    info = prepare_reference(registry, "sbibm_two_moons", {}, 3, 500, 0, path)
    assert info == {**info, "reused": False, "observations": "published"}
    theta, x, samples = _simulator("two_moons").reference_observations()
    with np.load(path) as stored:
        assert np.array_equal(stored["x"], x[:3].numpy()) and np.array_equal(stored["theta"], theta[:3].numpy())
        assert np.array_equal(stored["samples"], samples[:500, :3].numpy())
    assert prepare_reference(registry, "sbibm_two_moons", {}, 3, 500, 1, path)["reused"]  # the seed plays no part
    assert not prepare_reference(registry, "sbibm_two_moons", {}, 2, 500, 0, path)["reused"]
    with pytest.raises(ValueError, match="publishes 10 observations"):
        prepare_reference(registry, "sbibm_two_moons", {}, 11, 500, 0, tmp_path / "more.npz")
    drawn = tmp_path / "two_moons.npz"
    prepare_reference(registry, "two_moons", {}, 2, 200, 0, drawn)
    assert prepare_reference(registry, "two_moons", {}, 2, 200, 0, drawn)["reused"]
    assert not prepare_reference(registry, "two_moons", {}, 2, 200, 1, drawn)["reused"]  # other seed: redrawn


@pytest.mark.parametrize("name", ["sbibm-mlp", "sbi-rf", "torch-mlp"])
def test_classifiers_tell_apart_what_differs_and_only_that(name):
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(400, 2, 2, generator=generator)
    samples = torch.randn(400, 2, 2, generator=generator)
    samples[:, 1, 0] += 6.0  # observation 1: shifted 6 standard deviations, Bayes accuracy Phi(3) = 0.9987
    accuracies, seconds = score(name, reference, samples, seed=0)
    # observation 0, the same distribution: 5-fold CV accuracy on 800 points has a standard error of 0.018;
    # 0.1 allows 5.6 of them, an overfitting classifier reading below 0.5 included
    assert abs(accuracies[0] - 0.5) < 0.1, accuracies
    assert accuracies[1] > 0.97, accuracies  # ~1 error expected of 800 at the Bayes rate
    assert seconds > 0


def test_unknown_classifier_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown C2ST classifier 'knn'"):
        check_classifiers(["knn"])
    with pytest.raises(ValueError, match="no C2ST classifier"):
        check_classifiers([])
    assert main(["benchmark", "--classifiers", "knn", "--out", str(tmp_path / "b"), "--sbi", "off"]) == 2
    assert "knn" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_tasks_sbibm_stands_for_every_sbibm_task():
    expanded = _expand_tasks(["two_moons", "sbibm", "sbibm_slcp"])
    every = [*TASKS, "sir", "lotka_volterra"]
    assert expanded[0] == "two_moons" and sorted(expanded[1:]) == sorted(f"sbibm_{t}" for t in every)


def test_a_cell_on_an_sbibm_task_is_scored_by_every_classifier(tmp_path):
    config = SuiteConfig(tasks=["sbibm_two_moons"], methods=["flow"], budgets=[300], num_observations=2,
                         num_samples=300, isolate=False, threads=1, training_options={"max_epochs": 2},
                         classifiers=["sbi-rf", "torch-mlp"])
    (cell,) = run_suite(config, tmp_path / "bench", log=lambda message: None)
    assert cell["error"] is None and cell["observations"] == "published"
    assert set(cell["c2st_by_classifier"]) == {"sbi-rf", "torch-mlp"}
    assert cell["c2st"] == cell["c2st_by_classifier"]["sbi-rf"]  # the first classifier is the primary one
    assert cell["train_cpu_seconds"] > 0
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "| sbibm_two_moons (sbibm) | flow |" in table
    stored = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert stored["references"]["sbibm_two_moons"]["observations"] == "published"


def test_measured_per_task_embedding_reaches_the_suite_and_the_user_still_wins(tmp_path):
    registry = sbi_gen.get_registry()
    config = SuiteConfig(tasks=["sbibm_gaussian_linear", "sbibm_slcp"], methods=["flow"], budgets=[300])
    linear = cell_spec(config, registry, "sbibm_gaussian_linear", "flow", 300, tmp_path)
    assert linear["estimator_options"] == {"embedding": "identity"}
    assert cell_spec(config, registry, "sbibm_slcp", "flow", 300, tmp_path)["estimator_options"] == {}
    sbi_cell = cell_spec(config, registry, "sbibm_gaussian_linear", "sbi:NPE-maf", 300, tmp_path)
    assert sbi_cell["estimator_options"] == {}  # sbi's NPE is run as sbi ships it
    mine = {"embedding": "mlp"}
    assert registry.estimator_options_for("flow", "sbibm_gaussian_mixture", mine) == mine
    simulator = _simulator("gaussian_linear_uniform")  # the instance carries its own task's suggestion
    assert simulator.capabilities.suggested_estimator_options == {"embedding": "identity"}
    assert _simulator("two_moons").capabilities.suggested_estimator_options == {}
    # the identity embedding fits on the 10-D x, and conditions the flow on x itself
    estimator = registry.estimator("flow", **registry.estimator_options_for("flow", "sbibm_gaussian_linear"))
    theta = simulator.prior.sample(64, torch.Generator().manual_seed(0))
    estimator.fit(theta, simulator.simulate(theta, torch.Generator().manual_seed(1)), prior=simulator.prior,
                  max_epochs=1, seed=0)
    assert estimator.sample(simulator.simulate(theta[:2], torch.Generator().manual_seed(2)), 4).shape == (4, 2, 10)


def test_every_table_row_has_as_many_cells_as_its_header():
    cell = {"budget": 1000, "error": None, "epochs": 3, "sample_seconds": 0.1, "peak_rss_mb": 100.0,
            "num_observations": 1, "num_samples": 10, "threads": 1, "train_cpu_seconds": 1.0, "task": "t"}
    results = [
        {**cell, "method": "flow", "c2st": [0.6], "c2st_mean": 0.6, "train_seconds": 1.0,
         "c2st_by_classifier": {"sbibm-mlp": [0.6], "sbi-rf": [0.58]}},
        {**cell, "method": "sbi:NPE-maf", "c2st": [0.7], "c2st_mean": 0.7, "train_seconds": 2.0,
         "c2st_by_classifier": {"sbibm-mlp": [0.7], "sbi-rf": [0.66]}},
    ]
    text = markdown(results, {"flow": ["sbi:NPE-maf"]})
    tables = [block for block in text.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2
    for block in tables:
        widths = {line.count("|") for line in block.splitlines()}
        assert len(widths) == 1, block
    assert "0.600 / 0.700 | 0.580 / 0.660" in text
