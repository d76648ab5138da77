"""sbi-gen: amortized simulation-based inference of physics posteriors.

The core knows no simulator or estimator by name: every one of them, built-in
or third-party, is a plugin found through the ``sbi_gen`` entry-point group.

Example:
    >>> import sbi_gen
    >>> simulator = sbi_gen.get_simulator("toy_gaussian", dim=3)
    >>> data = sbi_gen.simulate(simulator, 1000, seed=0)
    >>> estimator = sbi_gen.get_estimator("flow")
    >>> history = estimator.fit(data, prior=simulator.prior)  # doctest: +SKIP
"""

from __future__ import annotations

from sbi_gen._version import __version__
from sbi_gen.data import load_simulations, save_simulations
from sbi_gen.errors import (
    DataError,
    DuplicatePluginError,
    ModelFileError,
    NotFittedError,
    PluginError,
    PriorSupportError,
    SbiGenError,
    UnknownPluginError,
)
from sbi_gen.estimator import PosteriorEstimator, load_estimator
from sbi_gen.pairs import SimulationSet
from sbi_gen.posterior import Posterior
from sbi_gen.prior import (
    GaussianPrior,
    IndependentPrior,
    LogNormalPrior,
    Parameter,
    Prior,
    UniformPrior,
    prior_from_config,
)
from sbi_gen.registry import Registry, get_estimator, get_registry, get_simulator
from sbi_gen.seeding import RandomStreams
from sbi_gen.simulation import simulate
from sbi_gen.simulator import Simulator
from sbi_gen.training import TrainingConfig, TrainingHistory

__all__ = [
    "__version__",
    "DataError",
    "DuplicatePluginError",
    "GaussianPrior",
    "IndependentPrior",
    "LogNormalPrior",
    "ModelFileError",
    "NotFittedError",
    "Parameter",
    "PluginError",
    "Posterior",
    "PosteriorEstimator",
    "Prior",
    "PriorSupportError",
    "RandomStreams",
    "Registry",
    "SbiGenError",
    "SimulationSet",
    "Simulator",
    "TrainingConfig",
    "TrainingHistory",
    "UniformPrior",
    "UnknownPluginError",
    "get_estimator",
    "get_registry",
    "get_simulator",
    "load_estimator",
    "load_simulations",
    "prior_from_config",
    "save_simulations",
    "simulate",
]
