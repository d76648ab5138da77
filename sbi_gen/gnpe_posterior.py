"""GNPE as a trained object: an initialization network, the aligned network, Gibbs sampling, exact IS.

:class:`GNPEEstimator` holds two ordinary estimators from the registry: ``init``, trained on the
pairs as they are (it only has to land each Gibbs chain within a kernel width of the posterior),
and ``aligned``, trained on :class:`~sbi_gen.gnpe.AlignedPairs`. Sampling runs ``iterations``
Gibbs sweeps per chain, one chain per draw (Dax et al. 2022, ICLR, arXiv:2111.13139)::

    theta_0 ~ q_init(theta | x);   y_hat_t = y(theta_{t-1}) + eps_t;   theta_t ~ q_aligned(theta | x, y_hat_t)

Densities. The Gibbs marginal has no closed form, but importance sampling only needs a proposal
with a density on *some* space whose target marginal is the posterior. On ``(theta, y_hat)`` the
target is ``p(theta | x) kappa(y_hat | theta)``; the proposal (:meth:`GNPEEstimator.joint_proposal`)
draws ``y_hat`` from ``q(y_hat) = mean_j kappa(y_hat | theta_j)`` over ``seeds`` Gibbs draws
``theta_j`` (the kernel density estimate that ``p(y_hat | x)`` is the exact version of), then
``theta ~ q_aligned(. | x, y_hat)``. Its density is exact, so the weights
``p(x | theta) p(theta) kappa(y_hat | theta) / (q(y_hat) q_aligned(theta | x, y_hat))`` are exact, as
DINGO-IS does for GNPE (Dax et al. 2023, PRL 130, 171403, arXiv:2210.05686).
:meth:`GNPEEstimator.posterior` returns a :class:`~sbi_gen.posterior.Posterior` whose
``sample_with_log_prob`` gives such draws with ``log q(theta, y_hat) - log kappa(y_hat | theta)``, which
:func:`sbi_gen.refine.importance_sample` uses in place of a marginal density.

Saving: ``init/`` and ``aligned/`` are ordinary estimator directories, ``gnpe.json`` the rest
(simulator name and options, kernel, iterations); no pickle.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import ModelFileError
from sbi_gen.gnpe import AlignedPairs, ProxyAlignment
from sbi_gen.pairs import check_observations
from sbi_gen.posterior import Posterior

__all__ = ["GNPEEstimator", "aligned_estimator_options", "load_gnpe"]

GNPE_FILE = "gnpe.json"
#: rows of (chain, observation) sent through the aligned network at once
_CHUNK = 8192


def aligned_estimator_options(options: dict[str, Any], alignment: ProxyAlignment) -> dict[str, Any]:
    """The init network's ``options`` for the aligned one: its embedding moves inside ``proxy_context``,
    a ``gw_svd`` basis is computed from waveforms aligned with this kernel, and a truncated support
    becomes the logit map."""
    options = dict(options)
    # every aligned draw has a context of its own, and a truncated density is renormalized per context by
    # 4096 draws (sbi_gen.posterior_draws): the logit map keeps log_prob one network pass
    if options.get("bounded_support", "truncate") == "truncate":
        options["bounded_support"] = "logit"
    inner_options = dict(options.pop("embedding_options", {}) or {})
    inner = options.pop("embedding", "mlp")
    if inner == "gw_svd":
        inner_options["aligned_half_widths"] = alignment.half_widths.tolist()
    options["embedding"] = "proxy_context"
    options["embedding_options"] = {"data_shape": list(alignment.simulator.x_shape),
                                    "num_proxies": alignment.num_proxies, "embedding": inner,
                                    "embedding_options": inner_options}
    return options


class GNPEEstimator:
    """Amortized GNPE posterior for a simulator with alignment (module docstring).

    Arguments:
        simulator: the simulator (with ``proxy_parameters`` ... ``align``, :mod:`sbi_gen.gnpe`).
        estimator: registry name of both networks' plugin (needs densities).
        options: the init network's options (default: what the simulator suggests for ``estimator``).
        half_widths: kernel half widths (default: the simulator's ``proxy_half_widths``).
        iterations: Gibbs sweeps per draw.
        device: where both networks live.
    """

    def __init__(self, simulator, estimator: str = "flow", options: dict[str, Any] | None = None,
                 half_widths: Any = None, iterations: int = 8, device: str = "cpu", registry=None) -> None:
        from sbi_gen.registry import get_registry

        self.registry = registry or get_registry()
        self.simulator, self.estimator_name, self.device = simulator, estimator, device
        self.alignment = ProxyAlignment(simulator, half_widths=half_widths)
        if int(iterations) < 1:
            raise ValueError(f"GNPE needs at least one Gibbs iteration, got iterations={iterations}")
        self.iterations = int(iterations)
        name = getattr(simulator, "name", None) or ""
        self.options = dict(options if options is not None else
                            self.registry.estimator_options_for(estimator, name, {}, {}))
        self.init = self.registry.estimator(estimator, device=device, **self.options)
        self.aligned = self.registry.estimator(estimator, device=device,
                                               **aligned_estimator_options(self.options, self.alignment))
        self.history: dict[str, Any] = {}

    def fit(self, pairs: Any, seed: int = 0, max_seconds: float | None = None, init_share: float = 0.3,
            **training_options: Any) -> dict[str, Any]:
        """Train ``init`` for ``init_share`` of ``max_seconds``, then ``aligned`` for the rest, on ``pairs``
        (a :class:`~sbi_gen.pairs.SimulationSet` of pairs or :class:`~sbi_gen.redraw.RedrawnPairs`)."""
        start = time.perf_counter()
        prior = self.alignment.prior
        init_seconds = None if max_seconds is None else init_share * max_seconds
        init = self.init.fit(pairs, prior=prior, seed=seed, max_seconds=init_seconds, **training_options)
        rest = None if max_seconds is None else max(1.0, max_seconds - (time.perf_counter() - start))
        aligned = self.aligned.fit(AlignedPairs(pairs, self.alignment), prior=self.alignment.aligned_prior,
                                   seed=seed + 1, max_seconds=rest, **training_options)
        self.history = {name: {**h.to_dict(), "best_validation_loss": h.best_validation_loss,
                               "epochs": len(h.train_loss)} for name, h in (("init", init), ("aligned", aligned))}
        self.history["seconds"] = time.perf_counter() - start
        return self.history

    def _gibbs_sweep(self, theta: Tensor, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """One Gibbs sweep for rows ``theta [m, d]`` of observations ``x [m, *x_shape]``: the new ``theta [m, d]``."""
        out = []
        for start in range(0, len(theta), _CHUNK):
            rows = slice(start, start + _CHUNK)
            proxy = self.alignment.draw_proxies(theta[rows], generator)
            draw = self.aligned.sample(self.alignment.context(x[rows], proxy), 1, generator)[0]
            out.append(self.alignment.from_aligned(draw, proxy))
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, x_obs: Any, n: int, generator: torch.Generator | None = None,
               iterations: int | None = None) -> Tensor:
        """``[n, B, d]`` draws for ``x_obs [B, *x_shape]``: ``n`` Gibbs chains per observation."""
        x = check_observations(x_obs, tuple(self.simulator.x_shape))
        theta = self.init.sample(x, n, generator)  # [n, B, d]
        d = theta.shape[-1]
        rows = x.unsqueeze(0).expand(n, *x.shape).reshape(n * len(x), *x.shape[1:])
        flat = theta.reshape(n * len(x), d)
        for _ in range(iterations or self.iterations):
            flat = self._gibbs_sweep(flat, rows, generator)
        return flat.reshape(n, len(x), d)

    @torch.no_grad()
    def joint_proposal(self, x_obs: Any, n: int, generator: torch.Generator | None = None,
                       seeds: int = 2000) -> tuple[Tensor, Tensor]:
        """``n`` draws ``theta [n, 1, d]`` for one observation with ``log q(theta, y_hat) - log kappa(y_hat |
        theta)`` ``[n, 1]`` (module docstring); ``seeds`` Gibbs draws define ``q(y_hat)``."""
        x = check_observations(x_obs, tuple(self.simulator.x_shape))
        if len(x) != 1:
            raise ValueError(f"joint_proposal is for one observation, got {len(x)}")
        centres = self.alignment.coordinates(self.sample(x, seeds, generator)[:, 0])  # [seeds, k]
        picks = torch.randint(seeds, (n,), generator=generator)
        unit = torch.rand(n, self.alignment.num_proxies, generator=generator, dtype=torch.float64)
        proxy = centres[picks] + (2.0 * unit - 1.0) * self.alignment.half_widths
        context = self.alignment.context(x.expand(n, *x.shape[1:]), proxy)
        aligned = torch.cat([self.aligned.sample(context[i : i + _CHUNK], 1, generator)[0]
                             for i in range(0, n, _CHUNK)])
        log_q = torch.cat([self.aligned.log_prob(aligned[i : i + _CHUNK], context[i : i + _CHUNK]).double()
                           for i in range(0, n, _CHUNK)])
        theta = self.alignment.from_aligned(aligned, proxy)
        log_q_theta = log_q + self.alignment.log_jacobian(theta)  # q_aligned(theta | x, y_hat) in theta's units
        log_q_proxy = self._log_proxy_density(proxy, centres)
        return theta.unsqueeze(1), (log_q_proxy + log_q_theta - self.alignment.log_kernel(proxy, theta)).unsqueeze(1)

    def _log_proxy_density(self, proxy: Tensor, centres: Tensor) -> Tensor:
        """``log mean_j kappa(proxy | theta_j)`` ``[n]`` for the box kernel around ``centres [m, k]``."""
        kappa = self.alignment.half_widths
        counts = torch.cat([((proxy[i : i + 1024, None] - centres[None]).abs() <= kappa).all(-1).sum(-1)
                            for i in range(0, len(proxy), 1024)])
        return torch.log(counts.double() / len(centres)) - torch.log(2.0 * kappa).sum()

    def posterior(self, x_obs: Any, iterations: int | None = None) -> Posterior:
        """A :class:`~sbi_gen.posterior.Posterior` for ``x_obs``: Gibbs draws, and joint-density draws for IS."""
        x = check_observations(x_obs, tuple(self.simulator.x_shape))
        return Posterior(lambda n, generator=None: self.sample(x, n, generator, iterations), None,
                         prior=self.alignment.prior, x=x, name="GNPE",
                         sample_with_log_prob=lambda n, generator=None: self.joint_proposal(x, n, generator))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.init.save(path / "init")
        self.aligned.save(path / "aligned")
        config = {"format": "sbi-gen-gnpe", "format_version": 1, "estimator": self.estimator_name,
                  "simulator": getattr(self.simulator, "name", None),
                  "simulator_options": dict(getattr(self.simulator, "options", {}) or {}),
                  "options": self.options, "iterations": self.iterations, **self.alignment.to_config(),
                  "history": self.history}
        (path / GNPE_FILE).write_text(json.dumps(config, indent=2))
        return path


def load_gnpe(path: str | os.PathLike, device: str = "cpu", registry=None) -> GNPEEstimator:
    """Load a saved :class:`GNPEEstimator` (its simulator is rebuilt from the registry by name and options)."""
    from sbi_gen.estimator import load_estimator
    from sbi_gen.registry import get_registry

    path = Path(path)
    try:
        config = json.loads((path / GNPE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path / GNPE_FILE}: not a readable GNPE model ({error})") from None
    if config.get("format") != "sbi-gen-gnpe" or not config.get("simulator"):
        raise ModelFileError(f"{path / GNPE_FILE}: not an sbi-gen GNPE model of a named simulator")
    registry = registry or get_registry()
    simulator = registry.simulator(config["simulator"], **config["simulator_options"])
    gnpe = GNPEEstimator(simulator, config["estimator"], config["options"], config["half_widths"],
                         config["iterations"], device, registry)  # unfitted estimators: options only, no networks
    gnpe.history = config.get("history", {})
    gnpe.init = load_estimator(path / "init", device=device, registry=registry)
    gnpe.aligned = load_estimator(path / "aligned", device=device, registry=registry)
    if math.prod(gnpe.aligned.x_shape) != math.prod(gnpe.alignment.x_shape):
        raise ModelFileError(f"{path}: the aligned network was trained for another simulator or kernel")
    return gnpe
