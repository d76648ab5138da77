"""``check_estimator``: the contract of an estimator plugin, on a tiny problem (see :func:`check_estimator`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import ModelFileError, NotFittedError
from sbi_gen.estimator import PosteriorEstimator, load_estimator
from sbi_gen.estimator_options import EstimatorOptions
from sbi_gen.hookspecs import EstimatorCapabilities, EstimatorSpec
from sbi_gen.model_files import CONFIG_FILE, WEIGHTS_FILE, read_model_files
from sbi_gen.posterior import Posterior
from sbi_gen.prior import Parameter, UniformPrior
from sbi_gen.simulation import simulate
from sbi_gen.simulator import Simulator
from sbi_gen.testing.agreement import LogitGaussian, mixture_weights
from sbi_gen.testing.core import (
    Checker,
    ConformanceReport,
    default_registry,
    describe_shape,
    hoeffding_margin,
    plugin_label,
)

__all__ = ["check_estimator", "small_options", "SMALL_ESTIMATOR_OPTIONS", "BoxToy"]

#: option values that keep a network small, applied where an estimator has options of these names
SMALL_ESTIMATOR_OPTIONS: dict[str, int] = {"hidden_features": 16, "num_transforms": 2, "num_blocks": 1,
                                            "num_steps": 5, "log_prob_steps": 5, "embedding_features": 8}


class BoxToy(Simulator):
    """The checks' tiny problem: ``theta = (a, b)`` uniform on ``[0, 1] x [-1, 1]``, ``x = (a, b, a - b)`` plus
    ``N(0, 0.1^2)`` noise: ``x [3]``."""

    def __init__(self) -> None:
        self.options = {}
        self.prior = UniformPrior([0.0, -1.0], [1.0, 1.0], [Parameter("a", "", "$a$"), Parameter("b", "m", "$b$")])
        self.x_shape = (3,)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        theta = theta.double()
        mean = torch.stack([theta[:, 0], theta[:, 1], theta[:, 0] - theta[:, 1]], -1)
        return (mean + 0.1 * torch.randn(mean.shape, generator=generator, dtype=torch.float64)).float()


def small_options(factory: Any) -> dict[str, Any]:
    """:data:`SMALL_ESTIMATOR_OPTIONS` for the options ``factory.Options`` has (never above their defaults)."""
    options = getattr(factory, "Options", None)
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        return {}
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    return {key: min(value, defaults[key]) if isinstance(defaults[key], int) else value
            for key, value in SMALL_ESTIMATOR_OPTIONS.items() if key in defaults}


def check_estimator(
    estimator: Any,
    *,
    options: dict[str, Any] | None = None,
    registry: Any = None,
    simulator: Any = None,
    num_simulations: int = 500,
    max_epochs: int = 2,
    num_samples: int = 1000,
    num_observations: int = 3,
    seed: int = 0,
) -> ConformanceReport:
    """Fit an estimator plugin on a tiny problem and check it against the contract; raise
    :class:`~sbi_gen.testing.ConformanceError` at the first broken rule, naming the step and what to fix.

    Arguments:
        estimator: a registered name, an :class:`~sbi_gen.hookspecs.EstimatorSpec`, a
            :class:`~sbi_gen.PosteriorEstimator` subclass, or an instance (refitted here).
        options: the plugin's options (for a name, spec or class); ``None``: :func:`small_options`.
        registry: resolves names and embeddings (default: the process-wide one).
        simulator: the problem to fit (a name or a Simulator); default :class:`BoxToy` (d = 2, a box prior).
        num_simulations, max_epochs: the training run (seconds, not accuracy).
        num_samples: ``N``, draws per observation in each of the sampling checks.
        num_observations: ``B``, observations sampled at once.
        seed: seeds the simulations, the training and every draw.

    Steps: typed capabilities and an ``Options`` dataclass (and, if registered, that the spec
    shares them and ``name`` matches); an unfitted estimator refuses to sample; ``fit``;
    ``sample(x [B, ...], N)`` is finite ``[N, B, d]``, also for one observation, with every draw
    inside the prior support (no mass outside the prior); the same generator gives identical draws,
    another seed others; ``log_prob`` is deterministic, ``[N, B]`` (``[B]`` for ``theta [B, d]``),
    finite inside the support and ``-inf`` outside; ``sample`` and ``log_prob`` agree (below);
    ``posterior(x)`` is ``sample`` / ``log_prob``; ``save`` / ``load`` round trip bit for bit, with
    the weights' checksum recorded and a damaged weights file refused.

    Agreement of ``sample`` and ``log_prob``, per observation. Let ``s`` be the law of ``sample``'s
    draws and ``q`` the density ``log_prob`` claims. Fit a Gaussian ``r`` (in logit coordinates of
    the box) to one set of ``N`` draws; draw ``N`` more from ``sample`` and ``N`` from ``r``; average
    ``w = 2 q / (q + r)`` over all ``2N`` points. Its expectation is
    ``int (s + r) q / (q + r) = int q + int q (s - q) / (q + r)``, exactly 1 when ``s = q`` and ``q``
    is normalized on the support, whatever ``r``; and ``w`` lies in ``[0, 2]``, so by Hoeffding the
    mean strays more than ``t = sqrt(ln(2B / 1e-9) / N)`` (0.15 at ``N = 1000``, ``B = 3``) from 1 with
    probability below 1e-9: a correct estimator cannot fail. A density off by a factor ``c`` moves
    the mean by about ``(c - 1) / (c + 1)`` (``r`` is close to ``s``), one of another law by up to
    1, so a missing Jacobian, a wrong normalization or observations scored in the wrong order fail.
    For ``log_prob_method="ode"`` the density is that of the discretized flow: the margin must also
    absorb ``2 TV(s, q) + |int q - 1|``, the solver's error (measured: below 0.015 at 5 steps on this
    problem, after 2 or 40 epochs).
    """
    registry = default_registry(registry)
    c = Checker("estimator", plugin_label(estimator))
    with c.check("build", "the factory must be a PosteriorEstimator subclass accepting its options"):
        est, name, fresh = _build(estimator, options, registry)
    cls = type(est)
    with c.check("capabilities and options", "declare `capabilities = EstimatorCapabilities(...)` and `Options`, a "
                 "frozen dataclass subclassing sbi_gen.estimator_options.EstimatorOptions, on the class"):
        c.require(isinstance(cls.capabilities, EstimatorCapabilities), f"capabilities is {cls.capabilities!r}")
        c.require(dataclasses.is_dataclass(cls.Options) and issubclass(cls.Options, EstimatorOptions),
                  f"Options is {cls.Options!r}")
        c.require(isinstance(est.options, cls.Options), f"options is a {type(est.options).__name__}")
        json.dumps(est.options.to_dict())
    if name is not None:
        with c.check("registration", "register the class itself, with `name` set to the registered name"):
            spec = registry.spec("estimator", name)
            c.require(spec.factory is cls and cls.name == name, f"the spec's factory {spec.factory!r} with name "
                      f"{getattr(spec.factory, 'name', None)!r} does not build {cls.__qualname__} named {name!r}")
            c.require(spec.capabilities is cls.capabilities, "the spec's capabilities are not the class's record")
    with c.check("training data", "pass simulator= a name or a Simulator that passes check_simulator"):
        sim = BoxToy() if simulator is None else registry.simulator(simulator) if isinstance(simulator, str) \
            else simulator
        data = simulate(sim, num_simulations + num_observations, seed=seed)
    prior, x_obs = sim.prior, data.x[num_simulations:]
    g = lambda k: torch.Generator().manual_seed(seed + k)  # noqa: E731 - one seeded stream per use
    if fresh:
        with c.check("unfitted estimator refuses", "sample before fit must raise sbi_gen.NotFittedError"):
            try:
                est.sample(x_obs, 2)
            except NotFittedError:
                pass
            else:
                c.fail("sample before fit returned draws instead of raising NotFittedError")
    with c.check("fit", "fit(theta, x, prior, **training_options) trains and returns a TrainingHistory"):
        history = est.fit(data.theta[:num_simulations], data.x[:num_simulations], prior, max_epochs=max_epochs,
                          seed=seed, progress=False)
        losses = list(getattr(history, "train_loss", [])) + list(getattr(history, "validation_loss", []))
        c.require(bool(losses) and all(math.isfinite(v) for v in losses), f"training losses are {losses}")
    draws, again = _check_sampling(c, est, x_obs, num_samples, g)
    if cls.capabilities.has_log_prob:
        log_q = _check_log_prob(c, est, again, x_obs, g)
        _check_agreement(c, est, draws, again, log_q, x_obs, g)
    else:
        with c.check("no log_prob", "an estimator with has_log_prob=False raises NotImplementedError in log_prob"):
            try:
                est.log_prob(draws[:1], x_obs)
            except NotImplementedError:
                pass
            else:
                c.fail("capabilities say has_log_prob=False, but log_prob returned values")
        c.skip("log_prob", "has_log_prob=False")
    _check_posterior(c, est, x_obs, again, g)
    _check_save_load(c, est, name, x_obs, again, registry, g)
    return c.done()


def _build(estimator: Any, options: dict[str, Any] | None, registry: Any) -> tuple[Any, str | None, bool]:
    """The estimator, the name it is registered under (``None`` if not) and whether it is unfitted."""
    if isinstance(estimator, str):
        factory = registry.spec("estimator", estimator).factory
        return registry.estimator(estimator, **(small_options(factory) if options is None else options)), \
            estimator, True
    if isinstance(estimator, EstimatorSpec):
        estimator = estimator.factory
    if isinstance(estimator, type):
        built = estimator(**(small_options(estimator) if options is None else options))
        built.registry = registry
        name = estimator.name if estimator.name in registry.names("estimator") else None
        return built, name if name and registry.spec("estimator", name).factory is estimator else None, True
    if not isinstance(estimator, PosteriorEstimator):
        raise TypeError(f"{estimator!r} is not a PosteriorEstimator (a name, spec, class or instance)")
    if options:
        raise TypeError("options apply to a name, spec or class, not to a built estimator")
    name = type(estimator).name
    registered = name in registry.names("estimator") and registry.spec("estimator", name).factory is type(estimator)
    return estimator, name if registered else None, estimator.network is None


def _check_sampling(c: Checker, est: Any, x_obs: Tensor, n: int, g) -> tuple[Tensor, Tensor]:
    b, d = len(x_obs), est.prior.dim
    with c.check("sample shape", "sample(x [B, *x_shape], n, generator) returns [n, B, d]; one observation of shape "
                 "x_shape is B = 1"):
        draws = est.sample(x_obs, n, g(10))
        c.require(isinstance(draws, Tensor) and list(draws.shape) == [n, b, d],
                  f"sample(x [{b}, ...], {n}) returned {describe_shape(draws)}, expected {[n, b, d]}")
        c.require(draws.dtype.is_floating_point, f"sample returned dtype {draws.dtype}")
        one = est.sample(x_obs[0], 5, g(11))
        c.require(list(one.shape) == [5, 1, d], f"sample of one observation returned {describe_shape(one)}, "
                  f"expected {[5, 1, d]}")
    with c.check("sample finite", "sampling must not diverge (check the network's numerics)"):
        c.require(bool(torch.isfinite(draws).all()), "sample returned NaN or inf")
    with c.check("no posterior mass outside the prior", "map draws into the prior support (the base class's "
                 "ParameterTransform does it: do not post-process its draws)"):
        inside = est.prior.contains(draws)
        c.require(bool(inside.all()), f"{int((~inside).sum())} of {inside.numel()} posterior draws lie outside the "
                  "prior support")
    with c.check("seeded sampling", "draw every random number from the `generator` argument of sample_z"):
        c.require(torch.equal(draws, est.sample(x_obs, n, g(10))), "the same generator seed gave different draws")
        again = est.sample(x_obs, n, g(12))
        c.require(not torch.equal(draws, again), "two generator seeds gave identical draws")
    return draws, again


def _check_log_prob(c: Checker, est: Any, theta: Tensor, x_obs: Tensor, g) -> Tensor:
    n, b = theta.shape[:2]
    with c.check("log_prob shape", "log_prob(theta [n, B, d], x [B, ...]) returns [n, B], and [B] for theta [B, d]"):
        log_q = est.log_prob(theta, x_obs)
        c.require(isinstance(log_q, Tensor) and list(log_q.shape) == [n, b],
                  f"log_prob(theta [{n}, {b}, d], x) returned {describe_shape(log_q)}, expected {[n, b]}")
        single = est.log_prob(theta[0], x_obs)
        c.require(list(single.shape) == [b], f"log_prob(theta [{b}, d], x) returned {describe_shape(single)}")
        # the same network on a batch of B rows instead of n B: a float32 kernel may then sum each layer's K inputs
        # in another order, moving a pre-activation by < K 2^-24 of its size (K <= 10^3: 6e-5), and a few layers
        # or ODE steps compound that; 1e-3 nats (plus 1e-4 of |log q|) is far above it and far below any real bug
        close = (single - log_q[0]).abs() <= 1e-3 + 1e-4 * log_q[0].abs()
        c.require(bool(close.all()), f"log_prob of theta [B, d] differs from row 0 of log_prob of theta [n, B, d] "
                  f"by up to {float((single - log_q[0]).abs().max()):.3g} nats")
        c.require(torch.equal(log_q, est.log_prob(theta, x_obs)), "log_prob gave other values when called again "
                  "(it must be deterministic: fix any random probes, e.g. from a fixed seed)")
    with c.check("log_prob finite inside the support", "log_prob must be finite at every point of the support"):
        c.require(bool(torch.isfinite(log_q).all()), f"{int((~torch.isfinite(log_q)).sum())} of {log_q.numel()} of "
                  "the estimator's own draws have non-finite log_prob")
        prior_draws = est.prior.sample(64 * b, g(13)).reshape(64, b, -1)
        values = est.log_prob(prior_draws, x_obs)
        c.require(bool(torch.isfinite(values).all()), "log_prob is not finite at some prior draws")
    bounded = torch.isfinite(est.prior.low) & torch.isfinite(est.prior.high)
    if bool(bounded.any()):
        with c.check("log_prob outside the prior", "log_prob must be -inf outside the prior support"):
            j = int(bounded.nonzero()[0])
            outside = theta[:1].clone()
            outside[..., j] = float(est.prior.high[j] + (est.prior.high[j] - est.prior.low[j]))
            values = est.log_prob(outside, x_obs)
            c.require(bool((values == -math.inf).all()), f"log_prob outside the support is {values.tolist()}")
    else:
        c.skip("log_prob outside the prior", "no dimension of the prior is bounded on both sides")
    return log_q


def _check_agreement(c: Checker, est: Any, fit_draws: Tensor, draws: Tensor, log_q: Tensor, x_obs: Tensor, g) -> None:
    """The mixture-weight identity of :func:`check_estimator`'s docstring, per observation."""
    n, b = draws.shape[:2]
    with c.check("sample and log_prob agree", "log_prob(theta, x) must be the normalized density of sample(x)'s "
                 "draws: check the log|det| of every transform, the normalization constant, and that column b of "
                 "theta is scored against observation b"):
        proposal = LogitGaussian(est.prior, fit_draws)
        proposal_draws = proposal.sample(n, g(14))
        log_q_proposal = est.log_prob(proposal_draws, x_obs)
        mean = mixture_weights(torch.cat([log_q, log_q_proposal]), proposal.log_prob(torch.cat([draws,
                                                                                               proposal_draws])))
        margin = hoeffding_margin(2 * n, 2.0, two_sided=True, events=b)
        worst = int((mean - 1).abs().argmax())
        c.require(bool(((mean - 1).abs() <= margin).all()), f"for observation {worst}, the mean of 2 q / (q + r) "
                  f"over draws of sample and of a reference r is {float(mean[worst]):.3f}, but it is 1 +- "
                  f"{margin:.3f} when log_prob is the density of sample's draws")
        c.note(f"sample/log_prob agreement: mean weights {[round(float(v), 4) for v in mean]} (1 +- {margin:.3f})")


def _check_posterior(c: Checker, est: Any, x_obs: Tensor, theta: Tensor, g) -> None:
    with c.check("posterior(x)", "posterior(x) must return sbi_gen.posterior.Posterior over sample and log_prob"):
        posterior = est.posterior(x_obs)
        c.require(isinstance(posterior, Posterior), f"posterior(x) returned a {type(posterior).__name__}")
        c.require(posterior.capabilities == type(est).capabilities and posterior.prior is est.prior,
                  "the posterior's capabilities or prior are not the estimator's")
        c.require(torch.equal(posterior.sample(50, g(15)), est.sample(x_obs, 50, g(15))),
                  "posterior(x).sample(n, generator) differs from sample(x, n, generator)")
        if posterior.has_log_prob:
            c.require(torch.equal(posterior.log_prob(theta[:50]), est.log_prob(theta[:50], x_obs)),
                      "posterior(x).log_prob(theta) differs from log_prob(theta, x)")


def _check_save_load(c: Checker, est: Any, name: str | None, x_obs: Tensor, theta: Tensor, registry: Any, g) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model"
        with c.check("save/load round trip", "save must write config.json and weights.safetensors that "
                     "load_estimator (or the class's from_config) rebuilds exactly"):
            est.save(path)
            config = json.loads((path / CONFIG_FILE).read_text())
            c.require(config.get("plugin") == type(est).name, f"config.json names plugin {config.get('plugin')!r}")
            c.require(config.get("options") == est.options.to_dict(), "config.json records other options")
            weights = (path / WEIGHTS_FILE).read_bytes()
            recorded = (config.get("checksums") or {}).get("weights_sha256")
            c.require(recorded == hashlib.sha256(weights).hexdigest(), "config.json does not record the weights' "
                      "SHA-256 checksum")
            if name is not None:
                loaded = load_estimator(path, registry=registry)
            else:
                loaded = type(est).from_config(*read_model_files(path), registry=registry)
            c.require(type(loaded) is type(est), f"loading gave a {type(loaded).__name__}")
            c.require(torch.equal(loaded.sample(x_obs, 50, g(16)), est.sample(x_obs, 50, g(16))),
                      "the loaded estimator draws other samples from the same generator seed")
            if type(est).capabilities.has_log_prob:
                c.require(torch.equal(loaded.log_prob(theta[:50], x_obs), est.log_prob(theta[:50], x_obs)),
                          "the loaded estimator gives other log_prob values")
        with c.check("damaged weights are refused", "keep the base class's save/load, which verify checksums"):
            damaged = bytearray(weights)
            damaged[len(damaged) // 2] ^= 0xFF
            (path / WEIGHTS_FILE).write_bytes(bytes(damaged))
            try:
                read_model_files(path)
            except ModelFileError:
                pass
            else:
                c.fail("a weights file with one byte changed was read without error")
