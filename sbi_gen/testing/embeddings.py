"""``check_embedding``: the contract of an embedding-net plugin (see :func:`check_embedding`)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn

from sbi_gen.hookspecs import EmbeddingCapabilities, EmbeddingSpec
from sbi_gen.testing.core import Checker, ConformanceReport, default_registry, describe_shape, plugin_label

__all__ = ["check_embedding"]

#: float32 unit roundoff
_U32 = 2.0**-24


def check_embedding(
    embedding: Any,
    *,
    x_shape: tuple[int, ...] = (4, 3),
    output_features: int | None = None,
    options: dict[str, Any] | None = None,
    x: Tensor | None = None,
    set_axis: int | None | str = "declared",
    registry: Any = None,
    batch: int = 5,
    seed: int = 0,
) -> ConformanceReport:
    """Check an embedding-net plugin against the contract; raise :class:`~sbi_gen.testing.ConformanceError` at the
    first broken rule, naming the step and what to fix.

    Arguments:
        embedding: a registered name (built through ``registry``), an
            :class:`~sbi_gen.hookspecs.EmbeddingSpec`, or a factory ``(x_shape, output_features, **options)``.
        x_shape: the shape of one observation to embed.
        output_features: the summary size asked for (default: the number of entries of ``x``, which
            an embedding that keeps all of them also accepts).
        options: the factory's keyword options.
        x: observations ``[B, *x_shape]`` to embed (default: standard normal, as standardized data).
        set_axis: the axis of ``x [*x_shape]`` treated as a set; ``"declared"``: the spec's (or the
            factory's ``capabilities``).
        registry: resolves names (default: the process-wide one).
        batch: ``B`` for the default ``x``.
        seed: seeds ``x``, the weights and the permutation.

    Steps: the factory returns an ``nn.Module``; it maps ``[B, *x_shape]`` to finite float
    ``[B, output_features]`` (also for ``B = 1``), deterministically in eval mode; gradients of the
    output reach every trainable parameter (or the input, for a net without parameters); and, with
    a ``set_axis``, permuting ``x`` along it leaves the output unchanged.
    """
    registry = default_registry(registry)
    c = Checker("embedding", plugin_label(embedding))
    features = math.prod(x_shape) if output_features is None else output_features
    with c.check("build", "the factory (x_shape, output_features, **options) must return a torch.nn.Module"):
        with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's global random state is kept
            torch.manual_seed(seed)
            net, declared = _build(embedding, tuple(x_shape), features, options or {}, registry)
        c.require(isinstance(net, nn.Module), f"the factory returned a {type(net).__name__}")
    axis = declared if set_axis == "declared" else set_axis
    generator = torch.Generator().manual_seed(seed)
    if x is None:
        x = torch.randn(batch, *x_shape, generator=generator)
    x = torch.as_tensor(x, dtype=torch.float32)
    if tuple(x.shape[1:]) != tuple(x_shape):
        raise ValueError(f"x must be [B, *x_shape] = [B, {', '.join(map(str, x_shape))}], got {list(x.shape)}")
    expected = [len(x), features]
    with c.check("output shape", "forward(x [B, *x_shape]) must return [B, output_features]"), torch.no_grad():
        net.eval()
        out = net(x)
        c.require(isinstance(out, Tensor) and list(out.shape) == expected,
                  f"embedding x {list(x.shape)} gave {describe_shape(out)}, expected {expected}")
        c.require(out.dtype.is_floating_point, f"the output has dtype {out.dtype}")
        one = net(x[:1])
        c.require(list(one.shape) == [1, features], f"a batch of one gave {describe_shape(one)}, "
                  f"expected {[1, features]}")
    with c.check("output finite", "the summary must be finite for standardized input"):
        c.require(bool(torch.isfinite(out).all()), "the embedding returned NaN or inf")
    with c.check("deterministic in eval mode", "in eval mode forward must not draw random numbers"), torch.no_grad():
        c.require(torch.equal(out, net(x)), "two forward passes in eval mode gave different summaries")
    _check_gradients(c, net, x, generator)
    if axis is None:
        c.skip("permutation invariance", "no set_axis declared")
    else:
        _check_permutation(c, net, x, int(axis), out, generator)
    return c.done()


def _build(embedding: Any, x_shape: tuple[int, ...], features: int, options: dict[str, Any], registry: Any):
    """The net and its declared ``set_axis``."""
    if isinstance(embedding, str):
        spec = registry.spec("embedding", embedding)
        return registry.embedding(embedding, x_shape, features, **options), spec.capabilities.set_axis
    if isinstance(embedding, EmbeddingSpec):
        factory, capabilities = embedding.factory, embedding.capabilities
    else:
        factory, capabilities = embedding, getattr(embedding, "capabilities", None)
    try:
        takes_registry = "registry" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_registry = False
    if takes_registry:
        options = {**options, "registry": registry}
    axis = capabilities.set_axis if isinstance(capabilities, EmbeddingCapabilities) else None
    return factory(x_shape, features, **options), axis


def _check_gradients(c: Checker, net: nn.Module, x: Tensor, generator: torch.Generator) -> None:
    with c.check("differentiable", "build the output from differentiable torch operations on x and the parameters "
                 "(no .detach(), no torch.no_grad(), no numpy round trip)"):
        net.train()
        net.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(True)
        out = net(inputs)
        # a fixed random projection: a plain sum could cancel (e.g. normalized outputs) and hide the gradient
        weights = torch.randn(out.shape, generator=generator)
        c.require(out.requires_grad, "the output does not depend differentiably on anything")
        (out * weights).sum().backward()
        trainable = [(key, p) for key, p in net.named_parameters() if p.requires_grad]
        unreached = [key for key, p in trainable if p.grad is None]
        c.require(not unreached, f"no gradient reaches the parameter(s) {unreached[:5]}: they are unused or detached")
        broken = [key for key, p in trainable if not bool(torch.isfinite(p.grad).all())]
        c.require(not broken, f"the gradients of {broken[:5]} hold NaN or inf")
        if trainable:
            c.require(any(bool(p.grad.abs().sum() > 0) for _, p in trainable), "every parameter's gradient is zero")
        else:
            c.require(inputs.grad is not None and bool(inputs.grad.abs().sum() > 0),
                      "a net without parameters must pass gradients to its input")
        net.zero_grad(set_to_none=True)
        net.eval()


def _check_permutation(c: Checker, net: nn.Module, x: Tensor, axis: int, out: Tensor, generator) -> None:
    with c.check("permutation invariance", "pool the set elements symmetrically (mean, sum, max) or do not declare "
                 "set_axis"), torch.no_grad():
        c.require(0 <= axis < x.ndim - 1, f"set_axis {axis} is not an axis of x_shape {list(x.shape[1:])}")
        size = x.shape[axis + 1]
        order = torch.randperm(size, generator=generator)
        if size > 1 and bool((order == torch.arange(size)).all()):
            order = order.roll(1)
        permuted = net(x.index_select(axis + 1, order))
        # pooling N float32 terms in another order moves the pooled value by < N u of the pooled magnitudes
        # (Higham 2002, "Accuracy and Stability of Numerical Algorithms", eq. 4.4); the layers after it amplify
        # that by their gain, of order one per layer at initialization: 100 N u of the output's scale covers it,
        # while an order-dependent net changes its output by about its own spread
        tolerance = 100 * size * _U32 * (1 + float(out.abs().max()))
        difference = float((permuted - out).abs().max())
        c.require(difference <= tolerance, f"permuting x along set_axis {axis} changed the summary by "
                  f"{difference:.3g} (allowed {tolerance:.3g} for rounding)")
