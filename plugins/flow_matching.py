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

from typing import Any

from torch import Tensor

from sbi_gen.hookspecs import EstimatorSpec, hookimpl
from sbi_gen_plugins.ode import ODEPosterior

__all__ = ["FlowMatchingPosterior"]


class FlowMatchingPosterior(ODEPosterior):
    """Amortized posterior from a conditional flow-matching velocity field.

    Arguments:
        sigma_min: width of the conditional paths at the data end.
        hidden_features: width of the residual MLP.
        num_blocks: its residual blocks.
        time_features: size of the sinusoidal time embedding.
        embedding: registered embedding-net name for ``x`` (``"mlp"``).
        embedding_features: size of the embedding.
        embedding_options: keyword options of the embedding net.
        num_steps: Heun steps when sampling (two network passes each), on a time grid denser
            near the data (``grid_rho = 2``). Paths that split into several modes bend near
            the data: on two moons (10^4 simulations, 5 observations) the mean C2ST is 0.679
            with 10 uniform steps, 0.539 / 0.525 with 10 / 16 steps of this grid, 0.527 with 50
            uniform steps; on the toy Gaussian 5 steps already suffice.
        log_prob_steps: Heun steps of the density ODE; 25 is within 1e-3 nats of 100 steps there.
        exact_divergence_max_dim: exact divergence up to this ``d``, Hutchinson above.
        linear_skip: add a linear map of ``[z_t, embed(x)]`` to the network's output.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Training defaults (``training_defaults``; explicit settings override them): as for
    ``diffusion`` (batch 256, step size 1e-3, up to 2,000 epochs, patience 60,
    step-size halving after 20 flat epochs, weight average with decay 0.995):
    the regression loss is noisy and keeps improving slowly.
    """

    name = "flow_matching"
    capabilities = {"has_log_prob": True, "log_prob_method": "ode"}
    training_defaults = {
        "batch_size": 256, "learning_rate": 1e-3, "max_epochs": 2000, "patience": 60, "lr_patience": 20,
        "ema_decay": 0.995,
    }
    t_min = 0.0
    grid_rho = 2.0

    def __init__(
        self,
        sigma_min: float = 1e-4,
        hidden_features: int = 128,
        num_blocks: int = 3,
        time_features: int = 32,
        embedding: str = "mlp",
        embedding_features: int = 32,
        embedding_options: dict[str, Any] | None = None,
        num_steps: int = 16,
        log_prob_steps: int = 25,
        exact_divergence_max_dim: int = 10,
        linear_skip: bool = True,
        device: str = "cpu",
    ) -> None:
        if not 0 <= sigma_min < 1:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
        super().__init__(
            device=device, hidden_features=hidden_features, num_blocks=num_blocks, time_features=time_features,
            embedding=embedding, embedding_features=embedding_features, embedding_options=embedding_options,
            num_steps=num_steps, log_prob_steps=log_prob_steps, exact_divergence_max_dim=exact_divergence_max_dim,
            sigma_min=sigma_min, linear_skip=linear_skip,
        )

    def pair_loss(self, z: Tensor, context: Tensor, u: Tensor, noise: Tensor) -> Tensor:
        shrink = 1 - self.options["sigma_min"]
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
            {"has_log_prob": True, "log_prob_method": "ode"},
        )
    ]
