"""Shared fixtures: the registry, the toy simulator and a small trained flow."""

from __future__ import annotations

import fcntl
import os

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
def trained_toy_flow(tmp_path_factory):
    """The default flow trained on 10,000 simulations of the default toy Gaussian (d = 5): slow tests only.

    Trained once per test run: under pytest-xdist the first worker that needs it trains and saves it (under
    an exclusive lock) in the run's shared temporary folder, and the others load the saved model (its
    weights are the trained ones exactly: safetensors float32). It took about 140 s on each worker before.
    """
    simulator = sbi_gen.get_simulator("toy_gaussian")
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # shared by this run's workers
    model = root / "trained_toy_flow"
    with open(root / "trained_toy_flow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (model / "config.json").is_file():
            torch.set_num_threads(1)  # session fixtures run before the autouse one-thread fixture
            data = sbi_gen.simulate(simulator, 10_000, seed=1)
            estimator = sbi_gen.get_estimator("flow")
            estimator.fit(data.theta, data.x, simulator.prior, seed=0, progress=False)
            estimator.save(model)
    return simulator, sbi_gen.load_estimator(model)


@pytest.fixture(scope="session")
def small_flow(toy):
    """A flow trained briefly on 2,000 toy simulations: for interface tests, not accuracy."""
    data = sbi_gen.simulate(toy, 2000, seed=0)
    estimator = sbi_gen.get_estimator("flow", num_transforms=2, hidden_features=32)
    estimator.fit(data.theta, data.x, toy.prior, max_epochs=5, progress=False)
    return estimator

