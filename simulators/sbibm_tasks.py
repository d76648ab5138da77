"""sbibm's benchmark tasks, with sbibm's own priors, simulators, observations and reference posterior samples.

The standard SBI benchmark (Lueckmann et al. 2021, "Benchmarking Simulation-Based
Inference", AISTATS, arXiv:2101.04653) ships as the ``sbibm`` package: for each
task a prior, a simulator, ten fixed observations and 10,000 reference posterior
samples per observation. Each task here wraps sbibm's task object unchanged and
is registered as ``sbibm_<task>`` (``sbibm_two_moons``, ...), beside our own
built-in ``two_moons`` and ``slcp``, which stay as they are. Scoring on these is
scoring on the published benchmark: :meth:`SbibmTask.reference_observations`
returns sbibm's observations 1-10 with their true parameters and reference samples,
and the benchmark suite uses them instead of drawing its own.

sbibm 1.1.0 pins ``sbi<0.22``, so it is installed without its dependencies, plus
what its tasks and metrics import::

    pip install --no-deps sbibm==1.1.0 && pip install pyro-ppl pandas future autograd

(the ``bench`` extra lists the last four). Its ``sir`` and ``lotka_volterra`` tasks
solve their ODEs through ``diffeqtorch`` (Julia); :mod:`sbi_gen_simulators.sbibm_ode`
offers them with the same models solved in numpy, and sbibm's observations.

Randomness: sbibm's simulators draw from torch's global generator (through pyro);
:meth:`SbibmTask.simulate` seeds a forked global generator from the ``generator``
it is given, so the same generator seed gives the same ``x``, and the caller's
global random state is left as it was.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import DataError, PluginError
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import GaussianPrior, Parameter, Prior, UniformPrior
from sbi_gen.simulator import Simulator

__all__ = ["SbibmTask", "TASKS", "INSTALL_HINT", "SUGGESTED_ESTIMATOR_OPTIONS"]

#: sbibm task name -> what it is (the tasks whose simulators run without Julia)
TASKS = {
    "two_moons": "2-D bimodal crescent posterior",
    "slcp": "5-D simple likelihood, complex (four-mode) posterior",
    "gaussian_linear": "10-D Gaussian prior and linear Gaussian simulator",
    "gaussian_linear_uniform": "10-D uniform prior, linear Gaussian simulator",
    "gaussian_mixture": "2-D mixture of a narrow and a wide Gaussian around theta",
    "bernoulli_glm": "10-D generalized linear model with Bernoulli spikes and summary statistics",
}
#: estimator options per task, chosen by measurement (benchmarks/results/2026-12-02-sbibm-options2: sbibm's
#: 10^4 pairs, observations 1-5, C2ST random forest / MLP). x is already a low-dimensional summary on the
#: linear-Gaussian and mixture tasks, so the flow conditions on it directly (identity embedding): gaussian_linear
#: 0.574 / 0.565 against 0.599 / 0.604 with the default learned MLP embedding, gaussian_linear_uniform
#: 0.611 / 0.599 against 0.621 / 0.613, gaussian_mixture 0.534 / 0.549 against 0.540 / 0.552 in 65 instead of
#: 109 CPU s. slcp keeps the learned embedding (identity: 0.837 / 0.821 against 0.817 / 0.799); two_moons is
#: even (0.539 / 0.521 against 0.545 / 0.520) and bernoulli_glm unmeasured, so both keep the default.
SUGGESTED_ESTIMATOR_OPTIONS: dict[str, dict[str, Any]] = {
    "gaussian_linear": {"embedding": "identity"},
    "gaussian_linear_uniform": {"embedding": "identity"},
    "gaussian_mixture": {"embedding": "identity"},
}
INSTALL_HINT = "pip install --no-deps sbibm==1.1.0 && pip install pyro-ppl pandas future autograd"
NUM_OBSERVATIONS = 10  # sbibm's observations 1-10 per task


@cache
def _task(name: str):
    try:
        import sbibm
    except ImportError as error:
        raise PluginError(f"simulator sbibm_{name} needs the sbibm package ({error}): {INSTALL_HINT}") from None
    return sbibm.get_task(name)


def _prior(task) -> Prior:
    """sbibm's pyro prior as the same sbi-gen prior (box uniform or multivariate normal), exactly."""
    distribution = task.prior_dist
    base = getattr(distribution, "base_dist", distribution)
    labels = task.get_labels_parameters()
    parameters = [Parameter(f"theta_{i + 1}", "", label) for i, label in enumerate(labels)]
    if isinstance(base, torch.distributions.Uniform):
        low, high = base.low.double().expand(task.dim_parameters), base.high.double().expand(task.dim_parameters)
        return UniformPrior(low, high, parameters)
    if isinstance(base, torch.distributions.MultivariateNormal):
        return GaussianPrior(base.loc.double(), base.covariance_matrix.double(), parameters)
    raise PluginError(f"sbibm task {task.name!r}: prior {type(base).__name__} has no sbi-gen counterpart")


class SbibmTask(Simulator):
    """One sbibm task (module docstring): ``theta [d]`` under sbibm's prior, ``x [dim_data]``.

    Arguments:
        task: the sbibm task name, one of :data:`TASKS`.
    """

    def __init__(self, task: str) -> None:
        if task not in TASKS:
            raise DataError(f"unknown sbibm task {task!r}; offered: {', '.join(TASKS)}")
        self.task = _task(task)
        self.options: dict[str, Any] = {}
        self.prior = _prior(self.task)
        self.x_shape = (int(self.task.dim_data),)
        self.capabilities = _capabilities(task)
        self._simulator = self.task.get_simulator()

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        theta = torch.as_tensor(theta)
        if theta.ndim != 2 or theta.shape[1] != self.prior.dim:
            raise DataError(f"sbibm_{self.task.name}: theta must be [n, {self.prior.dim}], got {list(theta.shape)}")
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = self._simulator(theta.float())
        return torch.as_tensor(x, dtype=torch.float32).reshape(len(theta), *self.x_shape)

    def reference_observations(self) -> tuple[Tensor, Tensor, Tensor]:
        """sbibm's observations 1-10: ``theta_true [10, d]``, ``x [10, dim_data]``, ``samples [10000, 10, d]``."""
        return _reference_observations(self.task.name)


@cache
def _reference_observations(name: str) -> tuple[Tensor, Tensor, Tensor]:
    task = _task(name)
    numbers = range(1, NUM_OBSERVATIONS + 1)
    theta = torch.cat([task.get_true_parameters(num_observation=i) for i in numbers]).float()
    x = torch.cat([task.get_observation(num_observation=i) for i in numbers]).float()
    samples = torch.stack([task.get_reference_posterior_samples(num_observation=i) for i in numbers], 1).float()
    return theta, x, samples


def _capabilities(task: str):
    """:class:`SbibmTask`'s capabilities with ``task``'s :data:`SUGGESTED_ESTIMATOR_OPTIONS`."""
    return replace(SbibmTask.capabilities, suggested_estimator_options=SUGGESTED_ESTIMATOR_OPTIONS.get(task, {}))


def _factory(task: str):
    def build() -> SbibmTask:
        return SbibmTask(task)

    build.__name__ = f"sbibm_{task}"
    return build


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(f"sbibm_{task}", f"sbibm {task}: {what}; sbibm's observations 1-10 and reference samples "
                      f"(needs sbibm: {INSTALL_HINT})", _factory(task), _capabilities(task))
        for task, what in TASKS.items()
    ]
