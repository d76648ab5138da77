"""An ensemble of conditional normalizing flows: ``q(theta | x) = (1 / K) sum_k q_k(theta | x)``.

Deep ensembles (Lakshminarayanan et al. 2017, arXiv:1612.01474) average ``K``
networks that differ only in their random initialization. For neural posterior
estimation they are both more accurate than one member and more conservative
(wider where the members disagree): Hermans et al. 2022, "A Trust Crisis in
Simulation-Based Inference?", arXiv:2110.06581; sbi offers the same as its
``EnsemblePosterior``.

Each member is a :mod:`~sbi_gen_plugins.flow` network with its own embedding net,
built from the same options. They are trained side by side on the same batches
by the shared training loop, on the mean of their negative log densities (the
gradients of the members do not interact, so this is ``K`` independent fits
sharing early stopping and the learning-rate schedule). Training costs ``K``
times one flow; sampling draws each member's share of the ``n`` draws
(multinomial counts from the caller's generator, then shuffled), and
``log_prob`` is the exact mixture density, ``logsumexp_k log q_k - log K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sbi_gen.hookspecs import EstimatorSpec, hookimpl
from sbi_gen_plugins.flow import FlowOptions, FlowPosterior

__all__ = ["FlowEnsemblePosterior", "FlowEnsembleOptions", "FlowEnsemble"]


@dataclass(frozen=True)
class FlowEnsembleOptions(FlowOptions):
    """Options of ``flow_ensemble``: those of ``flow`` for every member, and their number."""

    #: number of flows ``K`` (training costs ``K`` flows)
    members: int = 5

    def validate(self) -> None:
        super().validate()
        if self.members < 1:
            raise ValueError(f"option 'members' must be positive, got {self.members}")


class FlowEnsemble(nn.Module):
    """``K`` conditional flows as one mixture: ``log_prob``, ``sample`` and the training ``loss``."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_log_probs(self, z: Tensor, x: Tensor) -> Tensor:
        """``[K, *z.shape[:-1]]``: each member's ``log q_k(z | x)``."""
        return torch.stack([member.log_prob(z, x) for member in self.members])

    def loss(self, z: Tensor, x: Tensor) -> Tensor:
        """``[b]``: the members' mean negative log density of the pairs ``z [b, d]``, ``x [b, ...]``."""
        return -self.member_log_probs(z, x).mean(0)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """The mixture's ``log q(z | x)``: ``z [n, B, d]`` (or ``[B, d]``) -> ``[n, B]`` (or ``[B]``)."""
        return torch.logsumexp(self.member_log_probs(z, x), 0) - math.log(len(self.members))

    def sample(self, x: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        """``[n, B, d]`` mixture draws for ``x [B, ...]``: multinomial member counts, then a shuffle."""
        k = len(self.members)
        counts = torch.bincount(torch.multinomial(torch.full((k,), 1.0 / k), n, replacement=True,
                                                  generator=generator), minlength=k) if n else torch.zeros(k)
        parts = [member.sample(x, int(count), generator) for member, count in zip(self.members, counts) if count]
        if not parts:
            return self.members[0].sample(x, 0, generator)
        draws = torch.cat(parts)
        return draws[torch.randperm(n, generator=generator).to(draws.device)]


class FlowEnsemblePosterior(FlowPosterior):
    """Mixture of ``members`` independently initialized flows (module docstring); options: ``FlowEnsembleOptions``."""

    name = "flow_ensemble"
    Options = FlowEnsembleOptions
    options: FlowEnsembleOptions

    def build(self, theta_dim: int, x_shape: tuple[int, ...], embedding: nn.Module) -> nn.Module:
        members = [FlowPosterior.build(self, theta_dim, x_shape, embedding if k == 0 else self._embedding(x_shape))
                   for k in range(self.options.members)]
        return FlowEnsemble(members)

    def loss_z(self, z: Tensor, x: Tensor) -> Tensor:
        return self.core.loss(z, x)


@hookimpl
def sbi_gen_estimators() -> list[EstimatorSpec]:
    return [
        EstimatorSpec(
            "flow_ensemble",
            "ensemble of K conditional normalizing flows (mixture density; more accurate and more conservative "
            "than one flow, K times the training)",
            FlowEnsemblePosterior,
        )
    ]
