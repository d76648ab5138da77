"""Training pairs re-drawn for every batch from stored signals: fresh noise and cheap parameters each time.

Most of a physics simulator's cost often sits in a deterministic part (a
noise-free waveform), while the noise and some parameters act on it cheaply
(a distance scales it, a phase rotates it, a time shift is a phase ramp). A
simulator that splits itself so (:class:`~sbi_gen.simulator.Simulator`'s
``simulate_signal`` and ``simulate_from_signal``, capability
``has_signal_split``) is simulated once into ``(theta, signal)`` pairs, and
:class:`RedrawnPairs` turns them into fresh ``(theta', x)`` training pairs for
every batch of every epoch: the parameters in ``simulator.redrawn_parameters``
are re-drawn from the prior, then ``x = simulate_from_signal(theta', signal)``
draws new noise. A set of ``N`` signals thus yields unlimited independent
pairs over the expensive part's ``N`` values, as DINGO trains on stored
waveforms with noise and extrinsic parameters drawn on the fly (Dax et al.
2021, PRL 127, 241103, arXiv:2106.12594).

Reproducibility: batch ``k`` of epoch ``e`` draws from the stream
``RandomStreams(seed).child("redraw").child(f"train/{e}").generator(str(k))``
(validation batches from ``child("validation")``, the same every epoch, so
validation losses compare across epochs), and the underlying batch order is
the signal source's own seeded order; a fit is therefore bit-for-bit the same
for a seed, and a resumed fit sees what an uninterrupted one would.

Exactness needs the prior to factor into the re-drawn parameters and the
rest (so re-drawing them alone is drawing from the prior); :class:`RedrawnPairs`
checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from sbi_gen.errors import DataError
from sbi_gen.pairs import SimulationSet, valid_rows
from sbi_gen.prior import GaussianPrior, IndependentPrior, Prior, UniformPrior
from sbi_gen.seeding import RandomStreams

__all__ = ["RedrawnPairs", "redrawn_columns", "require_signal_split", "uses_redraw"]

#: rows turned into pairs at a time when scanning for the standardization
_SCAN_ROWS = 4096


def require_signal_split(simulator) -> None:
    """Raise :class:`DataError` unless ``simulator`` has the signal split."""
    if not simulator.capabilities.has_signal_split:
        raise DataError(f"simulator {simulator.name or type(simulator).__name__!r} has no signal split "
                        "(simulate_signal and simulate_from_signal), so its pairs cannot be re-drawn on the fly")


def uses_redraw(simulator, requested: bool | None) -> bool:
    """Whether training on ``simulator`` re-draws its cheap part: ``requested``, or (``None``) whenever the
    simulator has the signal split. Asking for it from a simulator without the split is a :class:`DataError`."""
    if requested is None:
        return simulator.capabilities.has_signal_split
    if requested:
        require_signal_split(simulator)
    return bool(requested)


def redrawn_columns(simulator, prior: Prior) -> list[int]:
    """Column indices of ``simulator.redrawn_parameters`` in ``prior``, once the prior is checked to factor.

    Raises :class:`DataError` if a name is not a parameter of the prior or if
    the prior may couple the re-drawn parameters with the others.
    """
    require_signal_split(simulator)
    names = list(simulator.redrawn_parameters)
    unknown = [name for name in names if name not in prior.names]
    if unknown:
        raise DataError(f"redrawn_parameters {unknown} of simulator {simulator.name!r} are not parameters of the "
                        f"prior {prior.names}")
    columns = [prior.names.index(name) for name in names]
    if isinstance(prior, (UniformPrior, IndependentPrior)):
        return columns
    if isinstance(prior, GaussianPrior):
        kept = [i for i in range(prior.dim) if i not in columns]
        if not bool((prior.covariance[columns][:, kept] == 0).all()):
            raise DataError(f"the Gaussian prior correlates the re-drawn parameters {names} with the others; "
                            "re-drawing them alone would not sample the prior")
        return columns
    raise DataError(f"cannot tell whether a {type(prior).__name__} makes the re-drawn parameters {names} "
                    "independent of the others; re-drawing needs a prior that factors (UniformPrior, "
                    "IndependentPrior, or a GaussianPrior without those correlations)")


class RedrawnPairs:
    """A :class:`~sbi_gen.training.PairSource` of fresh ``(theta, x)`` pairs drawn from stored signals.

    Arguments:
        signals: the pairs ``(theta [n, d], signal [n, *signal_shape])``: a
            :class:`~sbi_gen.pairs.SimulationSet` (from ``simulate(..., signals=True)``) or any pair
            source of them (:class:`~sbi_gen.streaming.StorePairs` over a signal store).
        simulator: the simulator that made them (it applies the cheap part).
        prior: the prior the re-drawn parameters come from (default: the simulator's).

    Example:
        >>> from sbi_gen import get_simulator, simulate
        >>> sim = get_simulator("gw")
        >>> pairs = RedrawnPairs(simulate(sim, 8, seed=0, signals=True), sim)
        >>> theta, x = next(pairs.batches("train", 4, epoch=0, seed=0, validation_fraction=0.25))
        >>> tuple(theta.shape), tuple(x.shape)
        ((4, 5), (4, 1, 2, 1889))
    """

    def __init__(self, signals: Any, simulator, prior: Prior | None = None) -> None:
        self.simulator, self.prior = simulator, prior or simulator.prior
        self.columns = redrawn_columns(simulator, self.prior)
        if isinstance(signals, SimulationSet):
            _check_signal_set(signals, simulator, self.prior)
            signals = SimulationSet(signals.theta.cpu(), signals.x.cpu(), signals.meta)  # the cheap part runs here
        self.signals = signals

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one generated observation."""
        return tuple(self.simulator.x_shape)

    def draw(self, theta: Tensor, signal: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One fresh pair per row: re-drawn ``theta [b, d]`` and ``x [b, *x_shape]`` (float32, CPU)."""
        theta = theta.detach().to("cpu", torch.float32, copy=True)
        if self.columns:
            fresh = self.prior.sample(len(theta), generator).float()
            theta[:, self.columns] = fresh[:, self.columns]
        x = torch.as_tensor(self.simulator.simulate_from_signal(theta, signal.cpu(), generator)).float()
        if tuple(x.shape) != (len(theta), *self.x_shape):
            raise DataError(f"simulate_from_signal of {self.simulator.name!r} returned x of shape {tuple(x.shape)}, "
                            f"expected {(len(theta), *self.x_shape)}")
        return theta, x

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int,
                validation_fraction: float) -> Iterator[tuple[Tensor, Tensor]]:
        """The signal source's batches of ``split``, each turned into fresh pairs (module docstring)."""
        streams = RandomStreams(seed).child("redraw").child(f"train/{epoch}" if split == "train" else "validation")
        source = self.signals.batches(split, batch_size, epoch=epoch, seed=seed,
                                      validation_fraction=validation_fraction)
        for k, (theta, signal) in enumerate(source):
            yield self.draw(theta, signal, streams.generator(str(k)))

    def scan(self, visit: Callable[[Tensor, Tensor], None]) -> dict[str, int]:
        """One pass of generated pairs over every signal, ``visit(theta, x)`` per batch (for standardization).

        The pairs come from a fixed stream of their own. A signal source with a checking pass of its own (a
        store) is scanned through it, so its rows are read once and its report (rows dropped) is kept.
        """
        streams, batches = RandomStreams(0).child("redraw scan"), iter(range(1 << 62))

        def draw_and_visit(theta: Tensor, signal: Tensor) -> None:
            visit(*self.draw(theta, signal, streams.generator(str(next(batches)))))

        if hasattr(self.signals, "scan"):
            report = self.signals.scan(draw_and_visit, batch_rows=_SCAN_ROWS)
        else:
            theta, signal = self.signals.theta, self.signals.x
            for start in range(0, len(theta), _SCAN_ROWS):
                draw_and_visit(theta[start : start + _SCAN_ROWS], signal[start : start + _SCAN_ROWS])
            report = {"num_pairs": len(self.signals)}
        return {**report, "redrawn_parameters": list(self.simulator.redrawn_parameters)}

    def describe(self) -> dict[str, Any]:
        """JSON record of the source for a model's metadata."""
        inner = self.signals.describe() if hasattr(self.signals, "describe") else {"in_memory": True}
        return {"redrawn": list(self.simulator.redrawn_parameters), "signals": inner}


def _check_signal_set(signals: SimulationSet, simulator, prior: Prior) -> None:
    shape = tuple(signals.x.shape[1:])
    if tuple(simulator.signal_shape) != shape:
        raise DataError(f"the signals have shape {shape} but simulator {simulator.name!r} makes signals of shape "
                        f"{tuple(simulator.signal_shape)} (were they simulated with signals=True?)")
    if signals.theta.ndim != 2 or signals.theta.shape[1] != prior.dim:
        raise DataError(f"theta of the signals must be [n, {prior.dim}], got {list(signals.theta.shape)}")
    finite, inside = valid_rows(signals.theta, signals.x, prior)
    if not bool((finite & inside).all()):
        raise DataError(f"{int((~finite).sum())} signal row(s) hold NaN or inf and {int((~inside).sum())} have theta "
                        "outside the prior; drop them before training")
