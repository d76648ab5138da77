"""Example third-party sbi-gen plugin: a damped harmonic oscillator observed in noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_gen import Parameter, Simulator, UniformPrior
from sbi_gen.hookspecs import SimulatorSpec, hookimpl


class DampedOscillator(Simulator):
    """``y(t) = exp(-gamma t) cos(omega t)`` at ``num_times`` times in ``[0, 5] s``, plus N(0, noise^2)."""

    def __init__(self, num_times: int = 20, noise: float = 0.1) -> None:
        self.options = {"num_times": num_times, "noise": noise}
        self.noise = noise
        self.times_s = torch.linspace(0.0, 5.0, num_times, dtype=torch.float64)
        self.prior = UniformPrior(
            [0.5, 0.05], [3.0, 1.0],
            [Parameter("omega", "rad / s", r"$\omega$"), Parameter("gamma", "1 / s", r"$\gamma$")],
        )
        self.x_shape = (num_times,)

    def _signal(self, theta: Tensor) -> Tensor:
        omega, gamma = theta[..., :1].double(), theta[..., 1:2].double()
        return torch.exp(-gamma * self.times_s) * torch.cos(omega * self.times_s)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(theta.shape[0], self.x_shape[0], generator=generator, dtype=torch.float64)
        return (self._signal(theta) + self.noise * noise).float()

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        residual = (x.double() - self._signal(theta)) / self.noise
        n = self.x_shape[0]
        return -0.5 * (residual**2).sum(-1) - n * math.log(self.noise * math.sqrt(2 * math.pi))


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [SimulatorSpec("oscillator", "damped harmonic oscillator in Gaussian noise (example plugin)",
                          DampedOscillator)]
