"""Simulated pairs ``(theta, x)`` in memory, and the checks every pair source goes through.

:class:`SimulationSet` is what simulation returns and training consumes;
:func:`check_pairs` and :func:`check_observations` turn user arrays into
float32 tensors or a :class:`~sbi_gen.errors.DataError` that names the
problem; :func:`valid_rows` is the one definition of a usable pair (finite,
inside the prior), shared by in-memory and streamed data. This module sits
at the bottom of the data layer: it imports no other data module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.prior import Prior
from sbi_gen.seeding import RandomStreams

__all__ = ["SimulationSet", "as_float_tensor", "check_pairs", "check_observations", "valid_rows"]


@dataclass
class SimulationSet:
    """Pairs ``theta [n, d]`` and ``x [n, *x_shape]`` (float32) with JSON metadata; a training pair source."""

    theta: Tensor
    x: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.theta.shape[0]

    def batches(
        self, split: str, batch_size: int, *, epoch: int, seed: int, validation_fraction: float
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The :class:`~sbi_gen.training.PairSource` protocol: an in-memory set is a pair source like a store.

        ``split="validation"`` yields a fixed share ``validation_fraction`` of
        the pairs (at least one), chosen by ``seed``; ``"train"`` yields the
        rest in a new order each ``epoch``. Both orders come from named streams
        of ``seed`` (:class:`~sbi_gen.seeding.RandomStreams`) and depend on
        nothing else, so a fit resumed at epoch ``e`` sees the batches an
        uninterrupted fit would. Batches live where ``theta`` and ``x`` live.
        """
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        streams = RandomStreams(seed)
        num_validation = max(1, round(validation_fraction * len(self)))
        if len(self) - num_validation < 1:
            raise ValueError(f"{len(self)} pairs are too few to hold out a validation set")
        order = torch.randperm(len(self), generator=streams.generator("validation split"))
        if split == "validation":
            rows = order[:num_validation]
        else:
            rows = order[num_validation:]
            rows = rows[torch.randperm(len(rows), generator=streams.child("epochs").generator(str(epoch)))]
        rows = rows.to(self.theta.device)
        for i in range(0, len(rows), batch_size):
            batch = rows[i : i + batch_size]
            yield self.theta[batch], self.x[batch]


def as_float_tensor(array: Any, what: str) -> Tensor:
    """``array`` as float32; complex, object, string or ragged data is a :class:`DataError` (never truncated)."""
    if isinstance(array, Tensor):
        if array.is_complex():
            raise DataError(f"{what} is complex; sbi-gen works with real arrays: split it into real and imaginary "
                            "parts (e.g. torch.view_as_real)")
        return array.float()
    try:
        values = np.asarray(array)
    except (TypeError, ValueError) as error:
        raise DataError(f"{what} is not a numeric array: {error}") from None
    if values.dtype.kind == "c":
        raise DataError(f"{what} is complex; sbi-gen works with real arrays: split it into real and imaginary "
                        "parts (e.g. np.stack([a.real, a.imag], -1))")
    if values.dtype.kind not in "biuf":
        raise DataError(f"{what} holds {values.dtype} values, not numbers")
    return torch.as_tensor(values, dtype=torch.float32)


def valid_rows(theta: Tensor, x: Tensor, prior: Prior | None = None) -> tuple[Tensor, Tensor]:
    """Which pairs are usable: ``(finite [n], inside [n])`` for ``theta [n, d]`` and ``x [n, *x_shape]``.

    ``finite``: every value of the row's ``theta`` and ``x`` is finite.
    ``inside``: ``theta`` lies in the prior's support; a non-finite row counts
    as inside (it is reported once, as non-finite), and every row is inside
    when no prior is given. A row is kept for training when both hold.
    """
    finite = torch.isfinite(theta).all(1) & torch.isfinite(x.reshape(len(x), -1)).all(1)
    inside = prior.contains(theta) | ~finite if prior is not None else torch.ones_like(finite)
    return finite, inside


def check_pairs(
    theta: Any,
    x: Any,
    prior: Prior | None = None,
    x_shape: tuple[int, ...] | None = None,
    drop_invalid: bool = False,
) -> tuple[Tensor, Tensor, dict[str, int]]:
    """Validate training pairs; return float32 tensors and a report of dropped rows.

    Arguments:
        theta: ``[n, d]`` parameters.
        x: ``[n, *x_shape]`` observations.
        prior: if given, ``theta`` must have ``prior.dim`` columns and lie in its support.
        x_shape: if given, the expected shape of one observation.
        drop_invalid: drop rows with non-finite values or ``theta`` outside the
            prior instead of raising; the report counts them.

    Returns:
        ``(theta, x, report)`` with ``report = {"non_finite": k, "outside_prior": m}``.
    """
    theta, x = as_float_tensor(theta, "theta"), as_float_tensor(x, "x")
    if theta.ndim == 1:
        theta = theta[:, None]
    if theta.ndim != 2:
        raise DataError(f"theta must have shape [n, d], got {tuple(theta.shape)}")
    if x.ndim == 1:
        x = x[:, None]
    if theta.shape[0] != x.shape[0]:
        raise DataError(f"theta has {theta.shape[0]} rows but x has {x.shape[0]}: pairs must match one to one")
    if theta.shape[0] == 0:
        raise DataError("no simulations given (theta and x are empty)")
    if prior is not None and theta.shape[1] != prior.dim:
        raise DataError(f"theta has {theta.shape[1]} columns but the prior has {prior.dim} parameters {prior.names}")
    if x_shape is not None and tuple(x.shape[1:]) != tuple(x_shape):
        raise DataError(f"each x must have shape {tuple(x_shape)}, got {tuple(x.shape[1:])}")
    finite, inside = valid_rows(theta, x, prior)
    report = {"non_finite": int((~finite).sum()), "outside_prior": int((~inside).sum())}
    if drop_invalid:
        keep = finite & inside
        if not bool(keep.any()):
            raise DataError(f"every row is invalid ({report}); nothing left to train on")
        return theta[keep], x[keep], report
    if report["non_finite"]:
        bad_theta = int((~torch.isfinite(theta).all(1)).sum())
        raise DataError(
            f"{report['non_finite']} row(s) hold NaN or inf ({bad_theta} in theta, the rest in x); first is row "
            f"{int((~finite).nonzero()[0])}. Fix the simulator, or pass drop_invalid=True (--drop-invalid) to drop them"
        )
    if prior is not None:
        prior.check_contains(theta, "theta")
    return theta, x, report


def check_observations(x_obs: Any, x_shape: tuple[int, ...], described: dict[str, Any] | None = None) -> Tensor:
    """Return observations as ``[B, *x_shape]`` float32; a single ``x_shape`` array becomes ``B = 1``.

    ``described``: the simulator description a model records (``Simulator.describe()``); a wrong
    shape is then explained by the axes it names (``x_axes``) and the options it was trained with.
    """
    x = as_float_tensor(x_obs, "x_obs")
    if tuple(x.shape) == tuple(x_shape):
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != tuple(x_shape):
        raise DataError(
            f"observations must have shape [B, {', '.join(map(str, x_shape))}] or "
            f"[{', '.join(map(str, x_shape))}], got {list(x.shape)}{_shape_hint(tuple(x.shape), x_shape, described)}"
        )
    if not bool(torch.isfinite(x).all()):
        rows = (~torch.isfinite(x.reshape(len(x), -1)).all(1)).nonzero().flatten().tolist()
        raise DataError(f"observations hold NaN or inf (rows {rows[:10]}); the posterior is undefined there")
    return x


def _shape_hint(shape: tuple[int, ...], x_shape: tuple[int, ...], described: dict[str, Any] | None) -> str:
    """``": 945 frequency bins where the model has 1889; ..."`` from the axes and options of a description."""
    if not described:
        return ""
    hint = ""
    axes = described.get("x_axes") or []
    if len(axes) == len(x_shape) and len(shape) in (len(x_shape), len(x_shape) + 1):
        got = shape[-len(x_shape):]
        hint = "; ".join(f"{g} {name}(s) where the model has {e}" for name, g, e in zip(axes, got, x_shape) if g != e)
    options = {k: v for k, v in described.get("options", {}).items()
               if isinstance(v, (str, int, float)) or (isinstance(v, list) and all(isinstance(i, str) for i in v))}
    trained = f"the model was trained on simulator {described.get('name')!r}" + (
        f" with {', '.join(f'{k}={v}' for k, v in options.items())}" if options else "")
    return f": {hint + '; ' if hint else ''}{trained}, and data of another shape needs a model trained for it"
