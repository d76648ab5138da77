"""What every conformance check shares: the error it raises, the report it returns, the bookkeeping between.

A check runs plugin code inside :meth:`Checker.check`, a named step: an exception the plugin
raises there, or a failed :meth:`Checker.require`, becomes one :class:`ConformanceError` that
names the kind of plugin, the plugin, the step and what to fix. Steps that pass are listed in
the :class:`ConformanceReport`.

Statistical steps bound the chance that a *correct* plugin fails with Hoeffding's inequality
(Hoeffding 1963, "Probability inequalities for sums of bounded random variables", JASA 58, 13,
Theorem 2): for ``m`` independent values in ``[a, b]``, the mean falls more than ``t`` below its
expectation with probability at most ``exp(-2 m t^2 / (b - a)^2)``. :func:`hoeffding_margin`
inverts it at :data:`FALSE_ALARM` = 1e-9, so no seed a correct plugin could meet makes it fail
more often than once in 10^9 runs (and at the checks' fixed seeds the result is deterministic).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = ["FALSE_ALARM", "ConformanceError", "ConformanceReport", "Checker", "hoeffding_margin", "plugin_label",
           "default_registry"]

#: the largest chance a statistical check may fail for a correct plugin
FALSE_ALARM = 1e-9


class ConformanceError(AssertionError):
    """A plugin breaks the contract: ``kind``, ``plugin``, ``check`` (the step), ``problem`` and ``fix``.

    A subclass of :class:`AssertionError`, so pytest reports it as a failed assertion with its message.
    """

    def __init__(self, kind: str, plugin: str, check: str, problem: str, fix: str) -> None:
        self.kind, self.plugin, self.check, self.problem, self.fix = kind, plugin, check, problem, fix
        super().__init__(f"{kind} {plugin!r} fails the conformance check '{check}': {problem}. To fix: {fix}")

    def __reduce__(self):  # pickled (e.g. between processes) from its parts, not from the message alone
        return type(self), (self.kind, self.plugin, self.check, self.problem, self.fix)


@dataclass
class ConformanceReport:
    """What a check verified: the steps that passed, those skipped (with why) and how long it took."""

    kind: str
    plugin: str
    checks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"{self.kind} {self.plugin!r}: {len(self.checks)} checks passed in {self.seconds:.2f} s"]
        lines += [f"  ok    {name}" for name in self.checks]
        lines += [f"  skip  {name}: {why}" for name, why in self.skipped.items()]
        lines += [f"  note  {note}" for note in self.notes]
        return "\n".join(lines)


class Checker:
    """Runs the named steps of one check and collects its :class:`ConformanceReport`."""

    def __init__(self, kind: str, plugin: str) -> None:
        self.report = ConformanceReport(kind, plugin)
        self._started = time.perf_counter()
        self._step = "setup"
        self._fix = ""

    @contextmanager
    def check(self, name: str, fix: str) -> Iterator[None]:
        """Run step ``name``; an exception of the plugin's is reported as failing it, with ``fix``."""
        self._step, self._fix = name, fix
        try:
            yield
        except ConformanceError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the plugin raises is its failure of this step
            raise ConformanceError(self.report.kind, self.report.plugin, name,
                                   f"it raised {type(error).__name__}: {error}", fix) from error
        self.report.checks.append(name)

    def fail(self, problem: str, fix: str | None = None) -> NoReturn:
        """Fail the current step."""
        raise ConformanceError(self.report.kind, self.report.plugin, self._step, problem, fix or self._fix)

    def require(self, ok: bool, problem: str, fix: str | None = None) -> None:
        """Fail the current step with ``problem`` unless ``ok``."""
        if not ok:
            self.fail(problem, fix)

    def skip(self, name: str, why: str) -> None:
        self.report.skipped[name] = why

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def done(self) -> ConformanceReport:
        self.report.seconds = time.perf_counter() - self._started
        return self.report


def hoeffding_margin(count: int, width: float, two_sided: bool = False, events: int = 1) -> float:
    """The ``t`` with ``P(mean < E[mean] - t) <= FALSE_ALARM`` (also above, if ``two_sided``) for ``count``
    independent values in an interval of length ``width``, over a union of ``events`` such means."""
    tails = (2 if two_sided else 1) * events
    return width * math.sqrt(math.log(tails / FALSE_ALARM) / (2 * count))


def describe_shape(value: object) -> str:
    """``[2, 3]`` for a tensor, else its type (for messages)."""
    shape = getattr(value, "shape", None)
    return str(list(shape)) if shape is not None else f"a {type(value).__name__}"


def plugin_label(plugin: Any) -> str:
    """The name a message gives ``plugin``: a registered name as given, else its ``name``, else its class's name."""
    if isinstance(plugin, str):
        return plugin
    return str(getattr(plugin, "name", "") or getattr(plugin, "__name__", "") or type(plugin).__name__)


def default_registry(registry: Any = None) -> Any:
    """``registry``, or the process-wide :class:`~sbi_gen.Registry` when it is ``None``."""
    from sbi_gen.registry import get_registry

    return registry or get_registry()
