"""PNG plots of a calibration report (matplotlib; no computation here).

- ``sbc_ranks.png``: rank histograms per parameter with the pointwise
  binomial band of a uniform histogram (Talts et al. 2018, arXiv:1804.06788).
- ``sbc_ecdf.png``: ECDF minus the uniform CDF per parameter with the
  simultaneous band (Säilynoja et al. 2022, arXiv:2103.10522).
- ``coverage.png``: expected HPD coverage vs nominal credibility with its band
  (Hermans et al. 2022, arXiv:2110.06581), when densities were available.
- ``tarp.png``: the TARP curve with bootstrap and simultaneous bands (Lemos
  et al. 2023, arXiv:2302.03026).

Subplots are titled with each parameter's ``axis_label`` (name and unit).
Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas, so plotting never touches pyplot's global backend or state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

__all__ = ["plot_coverage", "plot_sbc_ecdf", "plot_sbc_ranks", "plot_tarp", "save_plots"]

_BAND = {"color": "0.85", "lw": 0}


def _grid(d: int) -> tuple[Figure, np.ndarray]:
    cols = min(d, 3)
    rows = math.ceil(d / cols)
    fig = Figure(figsize=(3.6 * cols, 2.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[d:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_sbc_ranks(report: Any) -> Figure:
    """Rank histogram per parameter, with the ``level`` pointwise band of a uniform histogram."""
    sbc, params = report.sbc, report.parameters
    ranks = sbc.ranks
    n, d = ranks.shape
    num_values = sbc.uniformity.num_posterior_samples + 1
    bins = sbc.uniformity.num_bins
    edges = np.linspace(0, num_values, bins + 1)
    level = report.sbc.parameters[0].level if sbc.parameters else 0.99
    expected = n / bins
    low, high = stats.binom.ppf([(1 - level) / 2, (1 + level) / 2], n, 1 / bins)
    fig, axes = _grid(d)
    for k, ax in enumerate(axes[:d]):
        ax.axhspan(low, high, **_BAND, label=f"{level:.1%} band")
        ax.axhline(expected, color="0.5", lw=1)
        ax.hist(ranks[:, k], bins=edges, color="C0", alpha=0.8)
        ax.set_title(f"{params[k]['axis_label']}: {sbc.parameters[k].label}", fontsize=9)
        ax.set_xlabel(f"rank of true value among {num_values - 1} draws", fontsize=8)
    axes[0].set_ylabel("test pairs")
    fig.suptitle(f"SBC rank histograms ({n} test pairs)")
    fig.tight_layout()
    return fig


def plot_sbc_ecdf(report: Any) -> Figure:
    """ECDF difference per parameter with the simultaneous band."""
    band, params = report.sbc.band, report.parameters
    z = np.asarray([0.0, *band["points"], 1.0])
    lower = np.asarray([0.0, *band["lower"], 1.0]) - z
    upper = np.asarray([0.0, *band["upper"], 1.0]) - z
    fig, axes = _grid(len(params))
    for k, ax in enumerate(axes[: len(params)]):
        check = report.sbc.parameters[k]
        ax.fill_between(z, lower, upper, **_BAND, label=f"{band['level']:.1%} simultaneous band")
        ax.axhline(0, color="0.5", lw=1)
        ax.plot(z, np.asarray([0.0, *check.ecdf, 1.0]) - z, color="C0")
        ax.set_title(f"{params[k]['axis_label']}: {check.label}", fontsize=9)
        ax.set_xlabel("fractional rank", fontsize=8)
    axes[0].set_ylabel("ECDF - uniform CDF")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("SBC ECDF difference")
    fig.tight_layout()
    return fig


def _curve(ax: Axes, x: list[float], y: list[float], lower: list[float], upper: list[float], band: str) -> None:
    ax.fill_between([0, *x, 1], [0, *lower, 1], [0, *upper, 1], **_BAND, label=band)
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--")
    ax.plot([0, *x, 1], [0, *y, 1], color="C0", label="empirical")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def _joint_title(report: Any) -> str:
    return ", ".join(p["axis_label"] for p in report.parameters)


def plot_coverage(report: Any) -> Figure:
    """Expected HPD coverage vs nominal credibility with its simultaneous binomial band."""
    c = report.coverage
    fig = Figure(figsize=(4.6, 4.6))
    ax = fig.subplots()
    _curve(ax, c.nominal, c.empirical, c.band_lower, c.band_upper, f"{c.level:.1%} simultaneous band")
    ax.set_xlabel("nominal credibility")
    ax.set_ylabel("empirical coverage")
    ax.set_title(f"Expected coverage: {c.label} (area {c.area:+.3f})\n{_joint_title(report)}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_tarp(report: Any) -> Figure:
    """TARP curve with the bootstrap band and the simultaneous band of a calibrated curve."""
    t = report.tarp
    fig = Figure(figsize=(4.6, 4.6))
    ax = fig.subplots()
    _curve(ax, t.alpha, t.ecp, t.band_lower, t.band_upper, f"{t.level:.1%} simultaneous band")
    ax.fill_between(t.alpha, t.bootstrap_lower, t.bootstrap_upper, color="C0", alpha=0.25, lw=0,
                    label=f"bootstrap {t.level:.1%}")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage probability")
    ax.set_title(f"TARP: {t.label} (ATC {t.atc:+.3f})\n{_joint_title(report)}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def save_plots(report: Any, out: Path) -> list[Path]:
    """Write the plots of ``report`` into directory ``out``; return their paths."""
    figures = {"sbc_ranks.png": plot_sbc_ranks, "sbc_ecdf.png": plot_sbc_ecdf, "tarp.png": plot_tarp}
    if report.coverage is not None:
        figures["coverage.png"] = plot_coverage
    paths = []
    for name, plot in figures.items():
        fig = plot(report)
        fig.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths
