"""One dimension of a parameter vector: its name, astropy unit, plot label and, for an angle, its period."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u

__all__ = ["Parameter"]


@dataclass(frozen=True)
class Parameter:
    """One dimension of ``theta``.

    Arguments:
        name: identifier, e.g. ``"chirp_mass"``.
        unit: an astropy unit string, ``""`` for dimensionless (e.g. ``"solMass"``).
        label: plot label (matplotlib mathtext allowed); defaults to the name.
        period: for an angle, its period in ``unit`` (e.g. ``2 pi`` rad for a GW phase): plots draw it on one
            period; ``None`` (the default) for a parameter on the line.
    """

    name: str
    unit: str = ""
    label: str = ""
    period: float | None = None

    def __post_init__(self) -> None:
        try:
            u.Unit(self.unit)
        except ValueError as error:
            raise ValueError(f"parameter {self.name!r}: unknown unit {self.unit!r} ({error})") from None
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if self.period is not None:
            if isinstance(self.period, bool) or not (isinstance(self.period, (int, float)) and self.period > 0
                                                     and math.isfinite(self.period)):
                raise ValueError(f"parameter {self.name!r}: period must be a finite number > 0, got {self.period!r}")
            object.__setattr__(self, "period", float(self.period))

    @property
    def astropy_unit(self) -> u.UnitBase:
        """The unit as an :class:`astropy.units.Unit`."""
        return u.Unit(self.unit)

    @property
    def axis_label(self) -> str:
        """Label with the unit, for plot axes: ``"label [unit]"``."""
        return f"{self.label} [{self.unit}]" if self.unit else self.label


def _default_parameters(dim: int) -> tuple[Parameter, ...]:
    return tuple(Parameter(f"theta_{i}", "", rf"$\theta_{{{i}}}$") for i in range(dim))


def _as_parameters(parameters: Sequence[Parameter | str | dict] | None, dim: int) -> tuple[Parameter, ...]:
    if parameters is None:
        return _default_parameters(dim)
    result = tuple(
        p if isinstance(p, Parameter) else Parameter(**p) if isinstance(p, dict) else Parameter(str(p))
        for p in parameters
    )
    if len(result) != dim:
        raise ValueError(f"prior has {dim} dimensions but {len(result)} parameters were named")
    names = [p.name for p in result]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names must be unique, got {names}")
    return result
