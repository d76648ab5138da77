"""Pictures of a posterior: corner plots and posterior predictive checks.

- :mod:`sbi_gen.plots.corners`: 1-D and 2-D marginals of the samples of each
  observation (the ``corner`` package), with the truth, the reference
  posterior and the IS-refined posterior overlaid where known;
- :mod:`sbi_gen.plots.predictive`: data simulated from posterior draws against
  the observation.

:func:`write_plots` writes both for a batch of observations; ``sbi-gen run``
and ``sbi-gen plot`` call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sbi_gen.plots.corners import axis_label, corner_plot, plot_ranges, unit_label, write_corner_plots
from sbi_gen.plots.predictive import (
    PredictiveCheck,
    is_whitened_strain,
    plot_predictive,
    posterior_predictive,
    write_predictive_plots,
)
from sbi_gen.prior import Prior

__all__ = [
    "PredictiveCheck", "axis_label", "corner_plot", "is_whitened_strain", "plot_predictive", "plot_ranges",
    "posterior_predictive", "unit_label", "write_corner_plots", "write_plots", "write_predictive_plots",
]


def write_plots(
    out: str | Path,
    prior: Prior,
    samples: Any,
    x: Any,
    theta_true: Any = None,
    *,
    simulator: Any = None,
    reference: Any = None,
    refined: Any = None,
    generator: torch.Generator | None = None,
    name: str = "posterior",
    num_draws: int = 200,
) -> dict[str, Any]:
    """Write ``out/corner/observation_{b}.png`` and, given a ``simulator``, ``out/predictive/observation_{b}.png``.

    Arguments:
        prior: the model's prior (parameters, units, periods, support).
        samples: posterior draws ``[n, B, d]`` for the observations ``x [B, *x_shape]``.
        theta_true: the true parameters ``[B, d]``, if known.
        simulator: simulates the predictive check (skipped when ``None``).
        reference, refined: draws ``[m, B, d]`` overlaid on the corner plots.
        generator: the predictive simulations' noise.
        num_draws: posterior draws simulated per observation for the predictive check.

    Returns what goes into ``metrics.json``: the files (relative to ``out``) and, for vector ``x``, the
    fraction of each observation's features outside their 90% predictive band.
    """
    out = Path(out)
    corner_paths = write_corner_plots(out / "corner", samples, prior, theta_true, reference=reference,
                                      refined=refined, name=name)
    record: dict[str, Any] = {"corner": [str(p.relative_to(out)) for p in corner_paths]}
    if simulator is not None:
        paths, checks = write_predictive_plots(out / "predictive", simulator, samples, x, generator, num_draws)
        record["predictive"] = [str(p.relative_to(out)) for p in paths]
        if checks and checks[0].kind == "features":
            record["predictive_outside_90_percent"] = [c.outside_fraction for c in checks]
    return record
