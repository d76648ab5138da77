"""Flow-matching posterior estimation (FMPE): a conditional velocity field on optimal-transport paths.

Flow matching (Lipman et al. 2023, "Flow Matching for Generative Modeling",
arXiv:2210.02747) regresses a vector field onto the velocity of simple
conditional paths; Dax et al. 2023 ("Flow Matching for Scalable
Simulation-Based Inference", arXiv:2305.17161) condition it on the
observation for amortized posteriors. With ``t = 0`` the posterior and
``t = 1`` the standard normal (the convention of :mod:`sbi_gen_plugins.ode`),
the conditional optimal-transport path from a standardized sample ``z`` is

    z_t = (1 - (1 - sigma_min) t) z + t eps,     eps ~ N(0, I),

with constant velocity ``u = eps - (1 - sigma_min) z``, and the per-pair loss is

    L(z, x) = E_{t ~ U(0, 1), eps} || v(z_t, t, embed(x)) - u ||^2.

Its minimizer is the marginal velocity field whose ODE carries ``N(0, I)``
to ``q(z | x)``; the paths are nearly straight, so few Heun steps suffice.
Sampling and ``log_prob`` use the shared ODE machinery (exact divergence for
small ``d``, Hutchinson above a threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sbi_gen.hookspecs import EstimatorSpec, hookimpl
from sbi_gen_plugins.ode import ODEOptions, ODEPosterior

__all__ = ["FlowMatchingPosterior", "FlowMatchingOptions"]


@dataclass(frozen=True)
class FlowMatchingOptions(ODEOptions):
    """Options of the ``flow_matching`` estimator; the shared ones are those of :class:`ODEOptions`.

    ``num_steps`` (default 16) Heun steps on a time grid denser near the data (``grid_rho = 2``).
    Paths that split into several modes bend near the data: on two moons (10^4 simulations, 5
    observations) the mean C2ST is 0.679 with 10 uniform steps, 0.539 / 0.525 with 10 / 16 steps
    of this grid, 0.527 with 50 uniform steps; on the toy Gaussian 5 steps already suffice.
    ``log_prob_steps`` (25) is within 1e-3 nats of 100 steps there.
    """

    #: width of the conditional paths at the data end, in ``[0, 1)``
    sigma_min: float = 1e-4
    #: Heun steps when sampling (see above)
    num_steps: int = 16

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.sigma_min < 1:
            raise ValueError(f"option 'sigma_min' must be in [0, 1), got {self.sigma_min}")


class FlowMatchingPosterior(ODEPosterior):
    """Amortized posterior from a conditional flow-matching velocity field; options: :class:`FlowMatchingOptions`.

    Training defaults (``training_defaults``; explicit settings override them): as for
    ``diffusion`` (batch 256, step size 1e-3, up to 2,000 epochs, patience 60,
    step-size halving after 20 flat epochs, weight average with decay 0.995):
    the regression loss is noisy and keeps improving slowly.
    """

    name = "flow_matching"
    Options = FlowMatchingOptions
    options: FlowMatchingOptions
    training_defaults = {
        "batch_size": 256, "learning_rate": 1e-3, "max_epochs": 2000, "patience": 60, "lr_patience": 20,
        "ema_decay": 0.995,
    }
    t_min = 0.0
    grid_rho = 2.0

    def pair_loss(self, z: Tensor, context: Tensor, u: Tensor, noise: Tensor) -> Tensor:
        shrink = 1 - self.options.sigma_min
        z_t = (1 - shrink * u)[:, None] * z + u[:, None] * noise
        return ((self.core(z_t, u, context) - (noise - shrink * z)) ** 2).sum(-1)

    def velocity(self, z: Tensor, t: Tensor, context: Tensor) -> Tensor:
        return self.core(z, t, context)


@hookimpl
def sbi_gen_estimators() -> list[EstimatorSpec]:
    return [
        EstimatorSpec(
            "flow_matching",
            "flow-matching posterior estimation (FMPE, optimal-transport paths); ODE sampling and density",
            FlowMatchingPosterior,
        )
    ]
