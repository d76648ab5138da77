"""One contract test: the conformance kit over every registered simulator, estimator and embedding net.

The plugins are enumerated from the registry, so a third-party plugin installed into the
environment is checked like the built-in ones. What the kit checks, and why its statistical
steps cannot fail for a correct plugin, is documented in :mod:`sbi_gen.testing`.
Plugin-specific behaviour (flow types, ODE solvers, reference-posterior accuracy) is tested in
the plugins' own test files.
"""

from __future__ import annotations

import math

import pytest

import sbi_gen
from sbi_gen.testing import check_embedding, check_estimator, check_simulator

REGISTRY = sbi_gen.get_registry()

#: a short MCMC run for reference posteriors: the contract checks their shapes and support, not their convergence
#: (test_gw_reference.py, test_alkane.py and test_benchmark_tasks.py do that), so R-hat warnings are off
SHORT_MCMC = {"chains": 8, "init_draws": 256, "warmup": (50, 50), "min_steps": 50, "rhat_warning": math.inf}
#: faster settings for plugins whose optional parts are slow at their defaults; any other plugin gets the kit's
FAST_SIMULATOR_CHECKS = {
    "slcp": {"reference_options": SHORT_MCMC},
    "alkane": {"reference_options": SHORT_MCMC},
    "alkane_set": {"reference_options": SHORT_MCMC},
    "gw": {"reference_options": {"walkers": 16, "burn_in": 50, "min_draws": 10, "restarts": 1, "max_nodes": 500,
                                 "rhat_warning": math.inf}},
}
#: an SVD basis of 256 waveforms instead of 10,000 (5 s): the same code, on a smaller matrix
FAST_EMBEDDING_OPTIONS = {"gw_svd": {"num_waveforms": 256, "num_basis": 16}}


def _skip_without_optional_package(name: str) -> None:
    """sbibm's tasks need the sbibm package, installed apart (README); CI installs it."""
    if name.startswith("sbibm_"):
        pytest.importorskip("sbibm")


@pytest.mark.parametrize("name", REGISTRY.names("simulator"))
def test_simulator_conforms(name):
    _skip_without_optional_package(name)
    report = check_simulator(name, **FAST_SIMULATOR_CHECKS.get(name, {}))
    assert "seeded reproducibility" in report.checks and "describe round trip" in report.checks


@pytest.mark.parametrize("name", REGISTRY.names("estimator"))
def test_estimator_conforms(name):
    report = check_estimator(name)  # small networks (sbi_gen.testing.small_options), 500 pairs, 2 epochs
    assert "save/load round trip" in report.checks


def _embedding_inputs(name: str) -> dict:
    """Inputs for embedding ``name``: the data and options of a simulator that suggests it, else the kit's defaults."""
    options = FAST_EMBEDDING_OPTIONS.get(name, {})
    for simulator_name in REGISTRY.names("simulator"):
        suggested = REGISTRY.spec("simulator", simulator_name).capabilities.suggested_estimator_options
        if suggested.get("embedding") == name:
            simulator = REGISTRY.simulator(simulator_name)
            x = sbi_gen.simulate(simulator, 5, seed=0).x
            # raw x stands in for standardized x: every built-in simulator's x is of order one
            return {"x_shape": simulator.x_shape, "x": x,
                    "options": {**suggested.get("embedding_options", {}), **options}}
    return {"options": options}


@pytest.mark.parametrize("name", REGISTRY.names("embedding"))
def test_embedding_conforms(name):
    report = check_embedding(name, **_embedding_inputs(name))
    assert "differentiable" in report.checks
    if REGISTRY.spec("embedding", name).capabilities.set_axis is not None:
        assert "permutation invariance" in report.checks


# -- the same at the plugins' own settings (slow: full reference posteriors, default network sizes) --------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTRY.names("simulator"))
def test_simulator_conforms_at_default_settings(name):
    _skip_without_optional_package(name)
    check_simulator(name, n=1024)


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTRY.names("estimator"))
def test_estimator_conforms_with_its_default_options(name):
    check_estimator(name, options={}, num_simulations=2000, max_epochs=5)
