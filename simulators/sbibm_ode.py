"""sbibm's SIR and Lotka-Volterra tasks, with its priors, observations and reference samples, solved here.

sbibm (Lueckmann et al. 2021, arXiv:2101.04653) solves the ODEs of these two
tasks in Julia (``diffeqtorch``), which a pip install cannot provide. The models
below are sbibm's, term for term (``sbibm/tasks/sir/task.py``,
``sbibm/tasks/lotka_volterra/task.py``, sbibm 1.1.0); only the solver differs:
:func:`sbi_gen.ode_solver.solve_batched` (Dormand-Prince 5(4), rtol = atol = 1e-8
on the logarithms of the populations, so every state stays positive). sbibm's
Julia solve uses DifferentialEquations' defaults (rtol 1e-3), so our solutions are
the more accurate ones; the difference is far below the observation noise. The
observations 1-10 and reference posterior samples are read from sbibm's package
data (``sbibm/tasks/<task>/files``), so sbibm must be installed (README).

- ``sbibm_sir``: ``theta = (beta, gamma)``, log-normal prior
  ``log beta ~ N(log 0.4, 0.5^2)``, ``log gamma ~ N(log 0.125, 0.2^2)``; population
  ``N = 10^6``, one infected and none recovered at day 0;
  ``dS = -beta S I / N``, ``dI = beta S I / N - gamma I``; ``x_j ~ Binomial(1000, I(t_j) / N)``
  on days ``t_j = 0, 17, ..., 153`` (``x [10]``).
- ``sbibm_lotka_volterra``: ``theta = (alpha, beta, gamma, delta)``, log-normal prior with
  ``loc = (-0.125, -3, -0.125, -3)`` and scale 0.5; prey and predators start at 30 and 1;
  ``dX = alpha X - beta X Y``, ``dY = -gamma Y + delta X Y``; at ``t_j = 0, 2.1, ..., 18.9``
  ``x ~ LogNormal(log clamp(u, 1e-10, 10^4), 0.1^2)``, prey then predators (``x [20]``).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen.errors import DataError, PluginError
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.ode_solver import solve_batched
from sbi_gen.prior import LogNormalPrior, Parameter
from sbi_gen.simulator import Simulator
from sbi_gen_simulators.sbibm_tasks import INSTALL_HINT

__all__ = ["SIR", "LotkaVolterra"]


def _files(task: str) -> Path:
    try:
        import sbibm
    except ImportError as error:
        raise PluginError(f"simulator sbibm_{task} reads sbibm's observations ({error}): {INSTALL_HINT}") from None
    return Path(sbibm.__file__).parent / "tasks" / task / "files"


@cache
def _published(task: str) -> tuple[Tensor, Tensor, Tensor]:
    """sbibm's observations 1-10 of ``task``: ``theta_true [10, d]``, ``x [10, D]``, ``samples [10000, 10, d]``."""
    import pandas as pd

    root = _files(task)
    theta, x, samples = [], [], []
    for number in range(1, 11):
        folder = root / f"num_observation_{number}"
        theta.append(pd.read_csv(folder / "true_parameters.csv").to_numpy())
        x.append(pd.read_csv(folder / "observation.csv").to_numpy())
        samples.append(pd.read_csv(folder / "reference_posterior_samples.csv.bz2").to_numpy())
    as_tensor = lambda rows: torch.as_tensor(np.concatenate(rows), dtype=torch.float32)  # noqa: E731
    return as_tensor(theta), as_tensor(x), torch.as_tensor(np.stack(samples, 1), dtype=torch.float32)


class _OdeTask(Simulator):
    """What both tasks share: the input check and the published observations."""

    task: str

    def _theta(self, theta: Tensor) -> np.ndarray:
        theta = torch.as_tensor(theta)
        if theta.ndim != 2 or theta.shape[1] != self.prior.dim:
            raise DataError(f"sbibm_{self.task}: theta must be [n, {self.prior.dim}], got {list(theta.shape)}")
        return theta.double().numpy()

    def reference_observations(self) -> tuple[Tensor, Tensor, Tensor]:
        """sbibm's observations 1-10 with their true parameters and 10,000 reference samples each."""
        return _published(self.task)

    def _pairs(self, theta: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """``theta [..., B, d]`` flattened to ``[m, d]`` and ``x [B, D]`` broadcast to ``[m, D]`` (float64)."""
        theta, x = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1:] != self.x_shape or theta.shape[-1] != self.prior.dim or theta.ndim < 2:
            raise DataError(f"sbibm_{self.task}: need theta [..., B, {self.prior.dim}] and x [B, {self.x_shape[0]}], "
                            f"got {list(theta.shape)} and {list(x.shape)}")
        return theta.reshape(-1, self.prior.dim), x.expand(*theta.shape[:-1], -1).reshape(-1, x.shape[-1])


def _sir_rhs(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``d(log s, log i)/dt`` for fractions ``s = S / N``, ``i = I / N``; ``p = (beta, gamma)``."""
    return np.stack([-p[:, 0] * np.exp(y[:, 1]), p[:, 0] * np.exp(y[:, 0]) - p[:, 1]], 1)


class SIR(_OdeTask):
    """sbibm's SIR epidemic (module docstring): ``theta [2] = (beta, gamma)``, ``x [10]`` infected counts per 1000."""

    task = "sir"
    POPULATION, DAYS, TOTAL_COUNT = 1_000_000.0, np.arange(0.0, 154.0, 17.0), 1000

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.prior = LogNormalPrior([math.log(0.4), math.log(0.125)], [0.5, 0.2],
                                    [Parameter("beta", "1 / d", r"$\beta$"), Parameter("gamma", "1 / d", r"$\gamma$")])
        self.x_shape = (len(self.DAYS),)

    def infected_fraction(self, theta: Tensor) -> Tensor:
        """``I(t_j) / N`` ``[n, 10]`` (float64) on the observation days, noise-free."""
        params = self._theta(theta)
        start = np.log([(self.POPULATION - 1.0) / self.POPULATION, 1.0 / self.POPULATION])
        states = solve_batched(_sir_rhs, np.tile(start, (len(params), 1)), self.DAYS, params)
        return torch.as_tensor(np.exp(states[:, 1, :]))

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        fraction = self.infected_fraction(theta)
        failed = ~torch.isfinite(fraction).all(-1, keepdim=True)  # a failed solve gives a NaN row, as in sbibm
        probs = fraction.clamp(0.0, 1.0).nan_to_num(nan=0.0)
        counts = torch.binomial(torch.full_like(probs, float(self.TOTAL_COUNT)), probs, generator=generator)
        return counts.masked_fill(failed, math.nan).float()

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Binomial ``log p(x | theta)`` ``[..., B]`` for ``theta [..., B, 2]``, ``x [B, 10]``."""
        flat, counts = self._pairs(theta, x)
        probs = self.infected_fraction(flat).clamp(0.0, 1.0)
        log_pmf = torch.distributions.Binomial(self.TOTAL_COUNT, probs=probs, validate_args=False).log_prob(counts)
        return log_pmf.sum(-1).nan_to_num(nan=-math.inf).reshape(torch.as_tensor(theta).shape[:-1])


def _lv_rhs(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``d(log X, log Y)/dt``; ``p = (alpha, beta, gamma, delta)``."""
    return np.stack([p[:, 0] - p[:, 1] * np.exp(y[:, 1]), -p[:, 2] + p[:, 3] * np.exp(y[:, 0])], 1)


class LotkaVolterra(_OdeTask):
    """sbibm's Lotka-Volterra model (module docstring): ``theta [4]``, ``x [20]`` (10 prey, then 10 predator counts)."""

    task = "lotka_volterra"
    TIMES = np.arange(0, 201)[::21] * 0.1

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        names = [("alpha", r"$\alpha$"), ("beta", r"$\beta$"), ("gamma", r"$\gamma$"), ("delta", r"$\delta$")]
        self.prior = LogNormalPrior([-0.125, -3.0, -0.125, -3.0], [0.5] * 4,
                                    [Parameter(name, "", label) for name, label in names])
        self.x_shape = (2 * len(self.TIMES),)

    def populations(self, theta: Tensor) -> Tensor:
        """Prey then predator populations ``[n, 20]`` (float64) at the observation times, noise-free."""
        params = self._theta(theta)
        start = np.tile(np.log([30.0, 1.0]), (len(params), 1))
        return torch.as_tensor(np.exp(solve_batched(_lv_rhs, start, self.TIMES, params)).reshape(len(params), -1))

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        loc = torch.log(self.populations(theta).clamp(1e-10, 1e4))  # NaN (a failed solve) stays NaN
        noise = torch.randn(loc.shape, generator=generator, dtype=torch.float64)
        return torch.exp(loc + 0.1 * noise).float()

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Log-normal ``log p(x | theta)`` ``[..., B]`` for ``theta [..., B, 4]``, ``x [B, 20]`` (``x > 0``)."""
        flat, data = self._pairs(theta, x)
        loc = torch.log(self.populations(flat).clamp(1e-10, 1e4))
        log_x = torch.log(data)
        log_pdf = -0.5 * ((log_x - loc) / 0.1) ** 2 - math.log(0.1 * math.sqrt(2 * math.pi)) - log_x
        return log_pdf.sum(-1).nan_to_num(nan=-math.inf).reshape(torch.as_tensor(theta).shape[:-1])


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec("sbibm_sir", "sbibm SIR epidemic: 2 parameters, 10 binomial counts; sbibm's observations 1-10 "
                      f"and reference samples, the ODE solved here (needs sbibm: {INSTALL_HINT})", SIR),
        SimulatorSpec("sbibm_lotka_volterra", "sbibm Lotka-Volterra: 4 parameters, 20 log-normal counts; sbibm's "
                      f"observations 1-10 and reference samples, the ODE solved here (needs sbibm: {INSTALL_HINT})",
                      LotkaVolterra),
    ]
