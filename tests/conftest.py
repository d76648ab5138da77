"""Shared fixtures: the registry, the toy simulator and a small trained flow."""

from __future__ import annotations

import pytest
import torch

import sbi_gen
from sbi_gen.registry import Registry


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test unless a test measures threading: with more, tests running next to other work
    oversubscribe the cores (on 2 cores, 2 threads per test took the suite from 6 to 37 minutes)."""
    torch.set_num_threads(1)


@pytest.fixture()
def registry() -> Registry:
    return Registry()


@pytest.fixture(scope="session")
def toy():
    return sbi_gen.get_simulator("toy_gaussian", dim=3)


@pytest.fixture(scope="session")
def trained_toy_flow():
    """The default flow trained on 10,000 simulations of the default toy Gaussian (d = 5): slow tests only."""
    simulator = sbi_gen.get_simulator("toy_gaussian")
    data = sbi_gen.simulate(simulator, 10_000, seed=1)
    estimator = sbi_gen.get_estimator("flow")
    estimator.fit(data.theta, data.x, simulator.prior, seed=0, progress=False)
    return simulator, estimator


@pytest.fixture(scope="session")
def small_flow(toy):
    """A flow trained briefly on 2,000 toy simulations: for interface tests, not accuracy."""
    data = sbi_gen.simulate(toy, 2000, seed=0)
    estimator = sbi_gen.get_estimator("flow", num_transforms=2, hidden_features=32)
    estimator.fit(data.theta, data.x, toy.prior, max_epochs=5, progress=False)
    return estimator

