"""``check_simulator``: the contract of a simulator plugin, step by step (see :func:`check_simulator`)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import astropy.units as u
import numpy as np
import torch

from sbi_gen.hookspecs import SimulatorCapabilities, SimulatorSpec
from sbi_gen.prior import Prior, prior_from_config
from sbi_gen.simulation import simulate
from sbi_gen.testing.core import (
    Checker,
    ConformanceReport,
    default_registry,
    describe_shape,
    hoeffding_margin,
    plugin_label,
)

__all__ = ["check_simulator"]


def check_simulator(
    simulator: Any,
    *,
    simulator_options: dict[str, Any] | None = None,
    registry: Any = None,
    n: int = 256,
    seed: int = 0,
    stochastic: bool = True,
    reference: bool = True,
    reference_options: dict[str, Any] | None = None,
) -> ConformanceReport:
    """Check a simulator plugin against the contract; raise :class:`~sbi_gen.testing.ConformanceError` at the first
    broken rule, naming the step and what to fix; return a :class:`~sbi_gen.testing.ConformanceReport`.

    Arguments:
        simulator: a registered name (built through ``registry`` with ``simulator_options``), a
            :class:`~sbi_gen.hookspecs.SimulatorSpec`, or a built :class:`~sbi_gen.Simulator`.
        simulator_options: keyword options of the plugin (for a name or a spec).
        registry: the :class:`~sbi_gen.Registry` to look names up in (default: the process-wide one).
        n: pairs simulated (``n // 2`` likelihood comparisons, at least 2).
        seed: seeds every random draw of the check.
        stochastic: ``False`` for a noise-free simulator (then two seeds may give the same ``x``).
        reference: check ``reference_posterior`` where the simulator declares one.
        reference_options: keyword options of ``reference_posterior`` (e.g. fewer MCMC steps).

    Steps: the prior (names, astropy units, support ``low < high``, seeded float32 ``[n, d]`` draws
    inside the support, finite ``log_prob``); ``x_shape``; ``simulate`` (``[n, *x_shape]``, real
    floating, finite, also for ``n = 1``); seeded reproducibility (the same generator seed gives
    identical ``x``, another seed another ``x``, and torch's and numpy's global random state are
    left alone); the chunked pipeline :func:`sbi_gen.simulate`; ``describe()`` round trips (JSON,
    :func:`~sbi_gen.prior.prior_from_config`, and the registered plugin rebuilt from its options);
    the capabilities record; ``log_likelihood``, the signal split and ``reference_posterior`` where
    declared.

    A simulator draws its noise from one generator sequentially, so simulating a batch and
    simulating its halves give different ``x``; batching is checked through the shapes and
    reproducibility instead.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (pairs are compared two by two), got {n}")
    registry = default_registry(registry)
    c = Checker("simulator", plugin_label(simulator))
    with c.check("build", "the factory must accept its keyword options and return a Simulator"):
        sim, name = _build(simulator, simulator_options or {}, registry)
    g = lambda offset=0: torch.Generator().manual_seed(seed + offset)  # noqa: E731 - one seeded stream per use
    _check_prior(c, getattr(sim, "prior", None), n, g)
    with c.check("x_shape", "set self.x_shape in __init__ to one observation's shape, a tuple of positive ints"):
        shape = getattr(sim, "x_shape", None)
        c.require(isinstance(shape, tuple) and len(shape) > 0 and all(isinstance(s, int) and s > 0 for s in shape),
                  f"x_shape is {shape!r}")
    theta = sim.prior.sample(n, g(1))
    x = _check_simulate(c, sim, theta, g, stochastic)
    with c.check("simulation pipeline", "simulate(theta, generator) must be a function of theta and the generator"):
        half = max(1, n // 2)
        first, again = simulate(sim, n, seed=seed, chunk_size=half), simulate(sim, n, seed=seed, chunk_size=half)
        c.require(torch.equal(first.x, again.x), "sbi_gen.simulate(simulator, n, seed) gave other pairs when repeated")
    _check_describe(c, sim, name, registry)
    with c.check("capabilities", "a Simulator subclass derives them; other objects declare them on the spec"):
        record = getattr(sim, "capabilities", None)
        c.require(isinstance(record, SimulatorCapabilities),
                  f"capabilities is {record!r}, not a SimulatorCapabilities record")
    if record.has_log_likelihood:
        _check_log_likelihood(c, sim, theta, x)
    else:
        c.skip("log_likelihood", "not declared")
    if record.has_signal_split:
        _check_signal_split(c, sim, theta, x, g)
    else:
        c.skip("signal split", "not declared")
    if record.has_reference_posterior and reference:
        _check_reference(c, sim, x[:2], reference_options or {}, g(7))
    else:
        c.skip("reference posterior", "not declared" if reference else "reference=False")
    return c.done()


def _build(simulator: Any, options: dict[str, Any], registry: Any) -> tuple[Any, str | None]:
    """The simulator, and the name it is registered under (``None`` if it is not)."""
    if isinstance(simulator, str):
        return registry.simulator(simulator, **options), simulator
    if isinstance(simulator, SimulatorSpec):
        built = simulator.factory(**options)
        built.name = getattr(built, "name", "") or simulator.name
        if not isinstance(getattr(built, "capabilities", None), SimulatorCapabilities):
            built.capabilities = simulator.capabilities
        return built, None
    if options:
        raise TypeError("simulator_options apply to a name or a spec, not to a built simulator")
    name = getattr(simulator, "name", "") or None
    return simulator, name if name in registry.names("simulator") else None


def _check_prior(c: Checker, prior: Any, n: int, g) -> None:
    with c.check("prior", "set self.prior to a sbi_gen Prior (UniformPrior, GaussianPrior, IndependentPrior)"):
        c.require(isinstance(prior, Prior), f"prior is {type(prior).__name__}, not a sbi_gen.prior.Prior")
        names = prior.names
        c.require(len(names) == prior.dim > 0 and all(isinstance(s, str) and s for s in names)
                  and len(set(names)) == len(names), f"parameter names {names} are not {prior.dim} distinct names")
    with c.check("prior units", "give each Parameter an astropy unit string ('' for dimensionless), e.g. 'solMass'"):
        for parameter in prior.parameters:
            try:
                u.Unit(parameter.unit)
            except (ValueError, TypeError) as error:
                c.fail(f"parameter {parameter.name!r} has unit {parameter.unit!r}, which astropy cannot parse "
                       f"({error})")
    with c.check("prior support", "low and high are [d] tensors with low < high in every dimension"):
        low, high = torch.as_tensor(prior.low), torch.as_tensor(prior.high)
        c.require(low.shape == high.shape == (prior.dim,), f"low {describe_shape(low)}, high {describe_shape(high)}")
        c.require(bool((low < high).all()), f"the support is empty in some dimension: low {low.tolist()}, "
                  f"high {high.tolist()}")
    with c.check("prior samples", "prior.sample(n, generator) returns float32 [n, d] draws from the generator"):
        theta = prior.sample(n, g())
        c.require(isinstance(theta, torch.Tensor) and tuple(theta.shape) == (n, prior.dim),
                  f"prior.sample({n}) returned {describe_shape(theta)}, expected [{n}, {prior.dim}]")
        c.require(theta.dtype == torch.float32, f"prior.sample returned {theta.dtype}, expected torch.float32")
        c.require(bool(torch.isfinite(theta).all()), "prior.sample returned NaN or inf")
        c.require(bool(prior.contains(theta).all()), "prior.sample returned draws outside its own support")
        c.require(torch.equal(theta, prior.sample(n, g())), "the same generator seed gave other prior draws")
        log_p = prior.log_prob(theta)
        c.require(tuple(log_p.shape) == (n,) and bool(torch.isfinite(log_p).all()),
                  f"prior.log_prob of its own draws is {describe_shape(log_p)} with non-finite values or the wrong "
                  f"shape, expected finite [{n}]")


def _check_simulate(c: Checker, sim: Any, theta: torch.Tensor, g, stochastic: bool) -> torch.Tensor:
    n, expected = len(theta), list(sim.x_shape)
    with c.check("simulate shape and dtype", "simulate(theta [n, d], generator) returns a real floating tensor "
                 "[n, *x_shape] (float32), one row per row of theta"):
        x = sim.simulate(theta, g(2))
        c.require(isinstance(x, torch.Tensor), f"simulate returned a {type(x).__name__}, not a torch.Tensor")
        c.require(list(x.shape) == [n, *expected], f"simulate returned x of shape {list(x.shape)} for theta "
                  f"[{n}, {sim.prior.dim}], expected {[n, *expected]}")
        c.require(x.dtype.is_floating_point and not x.dtype.is_complex, f"simulate returned dtype {x.dtype}")
        one = sim.simulate(theta[:1], g(2))
        c.require(list(one.shape) == [1, *expected], f"simulate of one row returned {list(one.shape)}, "
                  f"expected {[1, *expected]} (a batch of one must keep its batch axis)")
    with c.check("simulate finite", "every prior draw must give finite x (reparameterize, or narrow the prior)"):
        bad = ~torch.isfinite(x.reshape(n, -1)).all(-1)
        c.require(not bool(bad.any()), f"{int(bad.sum())} of {n} prior draws gave NaN or inf, first theta "
                  f"{theta[bad][0].tolist() if bool(bad.any()) else None}")
    with c.check("seeded reproducibility", "draw every random number from the `generator` argument "
                 "(torch.randn(..., generator=generator)), never from torch's or numpy's global state"):
        torch_state, numpy_state = torch.get_rng_state(), _numpy_state()
        again = sim.simulate(theta, g(2))
        global_used = not torch.equal(torch_state, torch.get_rng_state()) or numpy_state != _numpy_state()
        used = " (it advanced the global random state: it ignores its generator)" if global_used else ""
        c.require(torch.equal(x, again), f"the same generator seed gave different x{used}")
        c.require(not global_used, "simulate advanced torch's or numpy's global random state")
        if stochastic:
            c.require(not torch.equal(x, sim.simulate(theta, g(3))),
                      "two generator seeds gave identical x: simulate ignores its generator",
                      "use the generator for the noise; pass stochastic=False for a noise-free simulator")
    return x


def _numpy_state() -> tuple[bytes, int]:
    """numpy's global random state (its key and position), comparable with ``==``."""
    state = np.random.get_state()
    return state[1].tobytes(), int(state[2])


def _check_describe(c: Checker, sim: Any, name: str | None, registry: Any) -> None:
    with c.check("describe round trip", "describe() returns JSON with the options the simulator was built with, "
                 "prior.to_config() and x_shape; record the keyword options in self.options"):
        described = sim.describe()
        json.dumps(described)
        rebuilt = prior_from_config(described["prior"])
        c.require(rebuilt.to_config() == sim.prior.to_config() and rebuilt.names == sim.prior.names,
                  "prior_from_config(describe()['prior']) is another prior")
        draws = sim.prior.sample(16, torch.Generator().manual_seed(0))
        # the same class with the same float64 parameters (a JSON round trip of floats is exact): equal bits
        c.require(torch.equal(rebuilt.log_prob(draws), sim.prior.log_prob(draws)),
                  "the prior rebuilt from describe() has another log_prob")
        c.require(list(described.get("x_shape", [])) == list(sim.x_shape), f"describe()['x_shape'] is "
                  f"{described.get('x_shape')!r}, x_shape {list(sim.x_shape)}")
        if name is not None:
            again = registry.simulator(name, **described["options"])
            c.require(again.describe() == described, "the plugin rebuilt from describe()['options'] describes itself "
                      "differently: a saved model could not name the simulator it was trained on")


def _check_log_likelihood(c: Checker, sim: Any, theta: torch.Tensor, x: torch.Tensor) -> None:
    """Shapes, finiteness at simulated pairs, and the true theta beating another one (statistically).

    For pairs ``(theta_a, x_a)``, ``(theta_b, x_b)`` simulated independently, the soft win
    ``s = sigmoid(l(theta_a, x_a) - l(theta_b, x_a))`` is the probability that ``x_a`` came from
    ``theta_a`` rather than ``theta_b``. With the true likelihood (up to a function of ``x``, which
    cancels), ``E[s] - 1/2 = (1/4) int (p_a - p_b)^2 / (p_a + p_b) dx >= 0``. Each pair gives
    ``tau = (s_a + s_b) / 2`` in ``[0, 1]``, independent across the ``m = n / 2`` pairs, so by
    Hoeffding a correct likelihood has ``mean tau < 1/2 - t`` with probability below 1e-9 for
    ``t = sqrt(ln(1e9) / 2m)`` (0.28 at ``n = 256``). A sign error or a swapped argument drives the
    mean far below 1/2 (built-ins: 0.97-1.0).
    """
    m = len(theta) // 2
    a, b, xa, xb = theta[0 : 2 * m : 2], theta[1 : 2 * m : 2], x[0 : 2 * m : 2], x[1 : 2 * m : 2]
    with c.check("log_likelihood shape", "log_likelihood(theta [..., B, d], x [B, *x_shape]) returns [..., B]"):
        own = sim.log_likelihood(a, xa)
        c.require(isinstance(own, torch.Tensor) and list(own.shape) == [m],
                  f"log_likelihood(theta [{m}, d], x [{m}, ...]) returned {describe_shape(own)}, expected [{m}]")
        stacked = sim.log_likelihood(torch.stack([a, b]), xa)
        c.require(list(stacked.shape) == [2, m], f"log_likelihood(theta [2, {m}, d], x [{m}, ...]) returned "
                  f"{list(stacked.shape)}, expected [2, {m}]")
    with c.check("log_likelihood finite", "log_likelihood must be finite at pairs the simulator itself produced"):
        bad = ~torch.isfinite(own)
        c.require(not bool(bad.any()), f"{int(bad.sum())} of {m} simulated pairs have non-finite log-likelihood")
    with c.check("log_likelihood broadcasting", "treat every leading axis of theta [..., B, d] as a batch of "
                 "parameters for the same B observations"):
        # the same arithmetic in another broadcast layout: only the order of the sums over x's entries may change,
        # which moves a sum of up to ~10^4 float32 terms by < 10^4 * 2^-24 ~ 6e-4 of its size (float64: ~1e-12);
        # 1e-3 of the largest |value| covers that, and a mixed-up batch axis moves values by their spread
        scale = 1e-3 * max(1.0, float(own.detach().abs().max()))
        close = bool(((stacked[0] - own).abs() <= scale).all())
        c.require(close, "row 0 of log_likelihood(theta [2, B, d], x) differs from log_likelihood(theta [B, d], x): "
                  "the leading axes of theta are mixed with the batch axis")
    with c.check("log_likelihood prefers the true theta", "log_likelihood(theta, x) must be log p(x | theta) (up to a "
                 "function of x alone): check its sign, the noise scale and the order of the arguments"):
        other = sim.log_likelihood(b, xa)
        c.require(not torch.equal(own, other), "log_likelihood does not depend on theta")
        wins_a = torch.sigmoid((own - other).double())
        wins_b = torch.sigmoid((sim.log_likelihood(b, xb) - sim.log_likelihood(a, xb)).double())
        tau = float((0.5 * (wins_a + wins_b)).mean())
        margin = hoeffding_margin(m, 1.0)
        c.require(tau >= 0.5 - margin, f"the theta that simulated x is more likely than another prior draw in only "
                  f"{tau:.3f} of {m} comparisons (a correct likelihood gives >= 0.5, and below 0.5 - {margin:.3f} "
                  "with probability < 1e-9)")
        c.note(f"log_likelihood: the true theta wins {tau:.3f} of {m} comparisons (>= {0.5 - margin:.3f} required)")


def _check_signal_split(c: Checker, sim: Any, theta: torch.Tensor, x: torch.Tensor, g) -> None:
    """``simulate_signal`` is deterministic and blind to the re-drawn parameters; ``simulate_from_signal`` is
    seeded and distributed as ``simulate`` (two-sample KS on per-row mean and norm at p > 1e-9 each)."""
    from scipy.stats import ks_2samp

    from sbi_gen.errors import DataError
    from sbi_gen.redraw import redrawn_columns

    n = len(theta)
    with c.check("signal split", "simulate_signal(theta) -> [n, *signal_shape] must be deterministic and read only "
                 "the parameters not in redrawn_parameters; simulate_from_signal must be distributed as simulate"):
        shape = getattr(sim, "signal_shape", None)
        c.require(isinstance(shape, tuple) and len(shape) > 0 and all(isinstance(k, int) and k > 0 for k in shape),
                  f"signal_shape is {shape!r}")
        try:
            columns = redrawn_columns(sim, sim.prior)
        except DataError as error:
            c.require(False, str(error))
        signal = torch.as_tensor(sim.simulate_signal(theta))
        c.require(list(signal.shape) == [n, *shape], f"simulate_signal returned {list(signal.shape)}, expected "
                  f"{[n, *shape]}")
        c.require(bool(torch.isfinite(signal).all()), "simulate_signal returned NaN or inf")
        c.require(torch.equal(signal, torch.as_tensor(sim.simulate_signal(theta))), "simulate_signal is not "
                  "deterministic: two calls gave different signals")
        mixed = theta.clone()
        mixed[:, columns] = sim.prior.sample(n, g(11))[:, columns]
        c.require(torch.equal(signal, torch.as_tensor(sim.simulate_signal(mixed))), "simulate_signal changed when "
                  f"only the re-drawn parameters {list(sim.redrawn_parameters)} changed")
        made = torch.as_tensor(sim.simulate_from_signal(theta, signal, g(12)))
        c.require(list(made.shape) == list(x.shape), f"simulate_from_signal returned {list(made.shape)}, expected "
                  f"{list(x.shape)}")
        c.require(torch.equal(made, torch.as_tensor(sim.simulate_from_signal(theta, signal, g(12)))),
                  "the same generator seed gave different x from simulate_from_signal")
        for what, stat in (("mean", lambda v: v.reshape(n, -1).double().mean(1)),
                           ("norm", lambda v: v.reshape(n, -1).double().norm(dim=1))):
            p = ks_2samp(stat(made).numpy(), stat(x).numpy()).pvalue
            c.require(p > 1e-9, f"x from simulate_from_signal and from simulate differ in their per-row {what} "
                      f"(two-sample KS p = {p:.2g} on the same theta)")


def _check_reference(c: Checker, sim: Any, x: torch.Tensor, options: dict[str, Any], generator) -> None:
    count, d = 20, sim.prior.dim
    with c.check("reference posterior", "reference_posterior(x [B, *x_shape]) returns an object whose "
                 "sample(n, generator) gives [n, B, d] draws inside the prior support"):
        with warnings.catch_warnings(record=True) as caught:  # convergence warnings of a short MCMC run: noted
            warnings.simplefilter("always")
            posterior = sim.reference_posterior(x, **options)
            draws = posterior.sample(count, generator)
        for warning in caught:
            c.note(f"reference posterior warned: {warning.message}")
        shape = [count, len(x), d]
        c.require(isinstance(draws, torch.Tensor) and list(draws.shape) == shape,
                  f"sample({count}) returned {describe_shape(draws)}, expected {shape}")
        c.require(bool(torch.isfinite(draws).all()), "the reference posterior drew NaN or inf")
        inside = sim.prior.contains(draws)
        c.require(bool(inside.all()), f"{int((~inside).sum())} of {inside.numel()} reference draws lie outside the "
                  "prior support")
        log_prob = getattr(posterior, "log_prob", None)
        if callable(log_prob):
            values = log_prob(draws)
            c.require(list(values.shape) == shape[:2] and bool(torch.isfinite(values).all()),
                      f"reference log_prob of its own draws is {describe_shape(values)} with non-finite values or "
                      f"the wrong shape, expected finite {shape[:2]}")
