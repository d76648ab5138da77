"""Corner plots of posterior samples (the ``corner`` package, as bilby and DINGO use).

:func:`corner_plot` draws the 1-D and 2-D marginals of one observation's
posterior samples ``[n, d]``: histograms on the diagonal (titled with the
median and the 68% interval), 68% and 95% credible contours below it. Axis labels
are each parameter's plot label with its astropy unit
(:func:`axis_label`); the true parameters are marked when known; a reference
posterior and an importance-sampling-refined posterior are overlaid in their
own colours. A parameter with a ``period`` (e.g. the GW coalescence phase) is
wrapped onto, and drawn on, exactly one period.

The plotted ranges (:func:`plot_ranges`) cover every sample set shown and the
truth, clipped to the prior's support. Figures are plain
:class:`matplotlib.figure.Figure` objects (the Agg canvas; pyplot's global
state is never touched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import mathtext
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sbi_gen.prior import Parameter, Prior

__all__ = ["COLOURS", "LEVELS", "axis_label", "corner_plot", "plot_ranges", "unit_label", "write_corner_plots"]

#: colour of each sample set and of the truth marker
COLOURS = {"posterior": "C0", "reference": "C1", "refined": "C2", "truth": "k"}
#: probability mass inside the 2-D credible contours
LEVELS = (0.68, 0.95)
#: tail mass left out of each sample set's range on either side (the truth is always kept inside)
_TAIL = 0.001


def unit_label(unit: str) -> str:
    """The astropy unit ``unit`` as matplotlib mathtext (``"solMass"`` -> ``$\\mathrm{M_{\\odot}}$``), or as given."""
    import astropy.units as u

    if not unit:
        return ""
    try:
        text = u.Unit(unit).to_string("latex_inline")
        mathtext.MathTextParser("path").parse(text)  # astropy writes some units that mathtext cannot draw
    except (ValueError, TypeError):
        return unit
    return text


def axis_label(parameter: Parameter) -> str:
    """``"label [unit]"`` with the unit as mathtext; the label alone for a dimensionless parameter."""
    unit = unit_label(parameter.unit)
    return f"{parameter.label} [{unit}]" if unit else parameter.label


def _period_start(prior: Prior, j: int) -> float:
    low = float(prior.low[j])
    return low if math.isfinite(low) else 0.0


def _wrap(values: np.ndarray, prior: Prior) -> np.ndarray:
    """``values [..., d]`` with each periodic parameter mapped onto ``[start, start + period)``."""
    values = np.array(values, dtype=np.float64, copy=True)
    for j, parameter in enumerate(prior.parameters):
        if parameter.period is not None:
            start = _period_start(prior, j)
            values[..., j] = np.mod(values[..., j] - start, parameter.period) + start
    return values


def plot_ranges(prior: Prior, sample_sets: Sequence[np.ndarray], truth: np.ndarray | None = None
                ) -> list[tuple[float, float]]:
    """The ``(low, high)`` of each of the ``d`` axes, in the parameters' units.

    A periodic parameter gets exactly one period from its prior's lower bound. Any
    other gets the union of each set's central ``1 - 2 * 0.001`` range (sets ``[n, d]``)
    and the truth ``[d]``, widened by 8% on each side and clipped to the prior's
    support (never so far as to cut off the truth).
    """
    ranges = []
    for j, parameter in enumerate(prior.parameters):
        if parameter.period is not None:
            start = _period_start(prior, j)
            ranges.append((start, start + parameter.period))
            continue
        lows, highs = [], []
        for values in sample_sets:
            column = np.asarray(values, dtype=np.float64)[:, j]
            column = column[np.isfinite(column)]
            if column.size:
                low, high = np.quantile(column, [_TAIL, 1 - _TAIL])
                lows.append(low)
                highs.append(high)
        if truth is not None and math.isfinite(float(truth[j])):
            lows.append(float(truth[j]))
            highs.append(float(truth[j]))
        low, high = (min(lows), max(highs)) if lows else (-1.0, 1.0)
        pad = 0.08 * (high - low) if high > low else 0.1 * max(abs(low), 1.0)
        support_low, support_high = float(prior.low[j]), float(prior.high[j])
        keep_low = min(support_low, float(truth[j])) if truth is not None else support_low
        keep_high = max(support_high, float(truth[j])) if truth is not None else support_high
        ranges.append((max(low - pad, keep_low), min(high + pad, keep_high)))
    return ranges


def _title(label: str, values: np.ndarray) -> str:
    """``label = median`` with its 68% interval, to two significant digits of the interval."""
    low, median, high = np.quantile(values[np.isfinite(values)], [0.16, 0.5, 0.84])
    error = min(high - median, median - low)
    decimals = max(0, 1 - math.floor(math.log10(error))) if error > 0 else 3
    return f"{label} = ${median:.{decimals}f}^{{+{high - median:.{decimals}f}}}_{{-{median - low:.{decimals}f}}}$"


def _mark_truth(axes: np.ndarray, truth: np.ndarray) -> None:
    """Lines at the true values ``[d]`` on every panel, and a square where two meet."""
    style = {"color": COLOURS["truth"], "lw": 1.3}
    for i in range(len(truth)):
        axes[i, i].axvline(truth[i], **style)
        for k in range(i):
            axes[i, k].axvline(truth[k], **style)
            axes[i, k].axhline(truth[i], **style)
            axes[i, k].plot(truth[k], truth[i], "s", color=COLOURS["truth"])


def _hist_max(ax: Any) -> float:
    """The tallest 1-D histogram drawn on ``ax`` (every overlay resets corner's y limit to its own)."""
    heights = [patch.get_path().vertices[:, 1].max() for patch in ax.patches if len(patch.get_path().vertices)]
    return max(heights, default=1.0)


def corner_plot(
    samples: Any,
    prior: Prior,
    truth: Any = None,
    *,
    reference: Any = None,
    refined: Any = None,
    name: str = "posterior",
    title: str = "",
    bins: int = 30,
) -> Figure:
    """The corner plot of one observation's posterior.

    Arguments:
        samples: posterior draws ``[n, d]`` in the parameters' units.
        prior: gives the parameters (labels, units, periods) and the support.
        truth: the true parameters ``[d]``, marked in black when given.
        reference: draws ``[m, d]`` from the reference posterior, overlaid in orange.
        refined: draws ``[k, d]`` from the importance-sampling-refined posterior, overlaid in green.
        name: legend entry of ``samples`` (e.g. the estimator's name).
        title: the legend's title (e.g. which observation).
        bins: histogram bins per axis.

    The diagonal axes ``fig.axes[i * d + i]`` have ``get_xlim()`` equal to :func:`plot_ranges`.
    """
    import corner

    d = prior.dim
    sets = {"posterior": samples, "reference": reference, "refined": refined}
    sets = {key: _wrap(_as_rows(value, d, key), prior) for key, value in sets.items() if value is not None}
    truth_row = None if truth is None else _wrap(_as_rows(truth, d, "truth").reshape(-1), prior)
    ranges = plot_ranges(prior, list(sets.values()), truth_row)
    size = max(2.0 * d, 3.5)
    legend_width = 2.6 if d <= 2 else 0.0  # no empty upper triangle to hold the legend: a margin on the right
    fig = Figure(figsize=(size + legend_width, size))
    fig.subplots(d, d, squeeze=False)
    legend = {"posterior": name, "reference": "reference posterior", "refined": "IS-refined posterior"}
    for key, values in sets.items():
        corner.corner(
            values, bins=bins, range=ranges, fig=fig, color=COLOURS[key], smooth=1.0, levels=LEVELS,
            labels=[axis_label(p) for p in prior.parameters], label_kwargs={"fontsize": 10},
            max_n_ticks=4, plot_datapoints=False, plot_density=False, fill_contours=False, no_fill_contours=True,
            hist_kwargs={"density": True, "linewidth": 1.3}, contour_kwargs={"linewidths": 1.1},
        )
    axes = np.array(fig.axes).reshape(d, d)
    if legend_width:  # corner placed the panels for a square figure of width `size`
        shrink = size / (size + legend_width)
        fig.subplots_adjust(left=fig.subplotpars.left * shrink, right=fig.subplotpars.right * shrink)
    if truth_row is not None:  # drawn here, not by corner, whose truth lines fail for a single parameter
        _mark_truth(axes, truth_row)
    for i in range(d):
        axes[i, i].set_title(_title(prior.parameters[i].label, sets["posterior"][:, i]), fontsize=9)
        axes[i, i].set_ylim(0, 1.1 * _hist_max(axes[i, i]))
        axes[i, i].set_xlim(*ranges[i])
        for k in range(i):
            axes[i, k].set_xlim(*ranges[k])
            axes[i, k].set_ylim(*ranges[i])
    handles = [Line2D([], [], color=COLOURS[key], label=legend[key]) for key in sets]
    if truth_row is not None:
        handles.append(Line2D([], [], color=COLOURS["truth"], marker="s", label="true parameters"))
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.96, 0.97), fontsize=9, frameon=False,
               title=title or None, title_fontsize=10, alignment="left")
    return fig


def _as_rows(values: Any, d: int, what: str) -> np.ndarray:
    """``values`` as float64 ``[n, d]`` (a ``[d]`` vector becomes one row); a wrong width names ``what``."""
    array = np.asarray(values.cpu() if hasattr(values, "cpu") else values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != d:
        raise ValueError(f"{what} must be [n, {d}] (one column per parameter), got shape {list(array.shape)}")
    return array


def write_corner_plots(
    out: str | Path,
    samples: Any,
    prior: Prior,
    theta_true: Any = None,
    *,
    reference: Any = None,
    refined: Any = None,
    name: str = "posterior",
    dpi: int = 100,
) -> list[Path]:
    """Write ``out/observation_{b}.png`` for each of the ``B`` observations; return the paths.

    Arguments:
        samples: posterior draws ``[n, B, d]``.
        theta_true: true parameters ``[B, d]``, if known.
        reference, refined: draws ``[m, B, d]`` to overlay (see :func:`corner_plot`).
    """
    samples = np.asarray(samples.cpu() if hasattr(samples, "cpu") else samples, dtype=np.float64)
    if samples.ndim != 3 or samples.shape[2] != prior.dim:
        raise ValueError(f"samples must be [n, B, {prior.dim}], got shape {list(samples.shape)}")
    batch = samples.shape[1]
    extra = {"theta_true": theta_true, "reference": reference, "refined": refined}
    for key, value in extra.items():
        if value is not None:
            shape = list(np.shape(value))
            if shape[-2:] != [batch, prior.dim]:
                raise ValueError(f"{key} must be [..., {batch}, {prior.dim}] for {batch} observation(s), got {shape}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for b in range(batch):
        fig = corner_plot(
            samples[:, b], prior, None if theta_true is None else np.asarray(theta_true)[b],
            reference=None if reference is None else reference[:, b],
            refined=None if refined is None else refined[:, b],
            name=name, title=f"observation {b}",
        )
        path = out / f"observation_{b}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
