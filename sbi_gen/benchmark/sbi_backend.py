"""Train and sample the ``sbi`` package's estimators on our simulations (optional; ``pip install sbi-gen[bench]``).

Written against sbi 0.27 (``sbi.inference.NPE / NPSE / FMPE``). Every method is
used with sbi's own defaults (architecture, batch size 200, learning rate 5e-4,
20 epochs of validation patience, its samplers: rejection of samples outside
the prior for NPE, 500 Euler-Maruyama steps for NPSE, the ODE for FMPE), so the
comparison is sbi as a user meets it. Sampling uses sbi's batched path
(``sample_batched``: all observations in one call) where it exists, as ours
does. ``x`` is flattened to ``[n, prod(x_shape)]`` (sbi's default embedding is
the identity). sbi's NPE defaults to MAF; NSF is run as well because it is the
better of the two on most tasks.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from sbi_gen.prior import GaussianPrior, LogNormalPrior, Prior, UniformPrior

__all__ = ["train_and_sample", "as_torch_prior"]


class _PriorDistribution(torch.distributions.Distribution):
    """Any sbi-gen prior as a float32 torch distribution (for priors that are neither box nor Gaussian)."""

    arg_constraints: dict = {}

    def __init__(self, prior: Prior) -> None:
        self.prior = prior
        low, high = prior.low.float(), prior.high.float()
        self._support = torch.distributions.constraints.independent(
            torch.distributions.constraints.interval(low, high), 1
        )
        super().__init__(event_shape=torch.Size([prior.dim]), validate_args=False)

    @property
    def support(self):
        return self._support

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        n = int(torch.Size(sample_shape).numel())
        return self.prior.sample(n).float().reshape(*sample_shape, self.prior.dim)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.prior.log_prob(value.to(torch.float64)).float()


def as_torch_prior(prior: Prior) -> torch.distributions.Distribution:
    """sbi needs a torch distribution: box-uniform, Gaussian and log-normal priors map exactly, others through a
    wrapper. (A log-normal through the wrapper would give sbi the support ``[0, inf]`` as an interval, whose
    sigmoid transform sbi's ``check_transform`` rejects: sbibm's sir and lotka_volterra failed so.)"""
    if isinstance(prior, UniformPrior):
        from sbi.utils import BoxUniform

        return BoxUniform(prior.low.float(), prior.high.float())
    if isinstance(prior, GaussianPrior):
        return torch.distributions.MultivariateNormal(prior.mean.float(), scale_tril=prior.scale_tril.float())
    if isinstance(prior, LogNormalPrior):
        return torch.distributions.Independent(torch.distributions.LogNormal(prior.loc.float(), prior.scale.float()), 1)
    return _PriorDistribution(prior)


class _NoTracking:
    """sbi's tracker protocol, doing nothing: by default sbi writes TensorBoard logs into ./sbi-logs."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def _inference(method: str, prior: torch.distributions.Distribution, device: str = "cpu"):
    from sbi.inference import FMPE, NPE, NPSE

    common = {"prior": prior, "show_progress_bars": False, "tracker": _NoTracking(), "device": device}
    if method == "sbi:NPE-maf":
        return NPE(density_estimator="maf", **common)
    if method == "sbi:NPE-nsf":
        return NPE(density_estimator="nsf", **common)
    if method == "sbi:NPSE":
        return NPSE(**common)
    if method == "sbi:FMPE":
        return FMPE(**common)
    raise ValueError(f"unknown sbi method {method!r}")


def train_and_sample(
    method: str, prior: Prior, theta: Tensor, x: Tensor, x_obs: Tensor, num_samples: int, seed: int,
    train_options: dict[str, Any] | None = None, device: str = "cpu",
) -> dict[str, Any]:
    """Train sbi's ``method`` on ``theta [n, d]``, ``x [n, *x_shape]``; ``num_samples`` draws per ``x_obs [B, ...]``.

    Returns ``samples [num_samples, B, d]``, ``train_seconds`` (wall), ``train_cpu_seconds``, ``sample_seconds`` (all
    observations), ``epochs`` and the sbi version.
    """
    import sbi

    torch.manual_seed(seed)
    inference = _inference(method, as_torch_prior(prior), device)
    flat_x = x.reshape(len(x), -1).float()
    start, cpu_start = time.perf_counter(), time.process_time()
    inference.append_simulations(theta.float(), flat_x)
    estimator = inference.train(**(train_options or {}))
    posterior = inference.build_posterior(estimator)
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    epochs = int((getattr(inference, "summary", {}).get("epochs_trained") or [-1])[-1])
    observations = x_obs.reshape(len(x_obs), -1).float()
    start = time.perf_counter()
    try:  # sbi's amortized path: all observations in one call
        samples = posterior.sample_batched((num_samples,), x=observations, show_progress_bars=False)
    except (NotImplementedError, AttributeError):
        rows = [posterior.sample((num_samples,), x=row.unsqueeze(0), show_progress_bars=False) for row in observations]
        samples = torch.stack(rows, dim=1)
    sample_seconds = time.perf_counter() - start
    return {"samples": samples, "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
            "sample_seconds": sample_seconds, "epochs": epochs, "toolkit": f"sbi {sbi.__version__}"}
