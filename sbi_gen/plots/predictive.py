"""Posterior predictive checks: simulate from posterior draws and compare with the observation.

If the posterior is right, the observation looks like a typical draw of the
posterior predictive ``p(x' | x) = int p(x' | theta) q(theta | x) dtheta``.
:func:`posterior_predictive` builds that comparison for one observation:

- vector ``x`` (any ``x_shape``, flattened to ``F`` features): ``simulate`` at ``m``
  posterior draws (noise included); the plot shows the 50% and 90% predictive
  bands of each feature with the observed values on top
  (:attr:`PredictiveCheck.outside_fraction`: how many features fall outside the
  90% band; about 10% when all is well);
- whitened GW strain (a simulator with ``whitened_waveform(theta) -> complex
  [..., n_det, n_bins]``, ``frequencies`` and ``delta_f``, as the ``gw`` simulators
  have): the noise-free whitened waveforms of the draws against the whitened
  data, as amplitude per frequency bin and as a whitened time series around
  the merger (inverse FFT of the band, scaled so the noise has unit variance
  per sample), one row per detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

__all__ = ["PredictiveCheck", "is_whitened_strain", "plot_predictive", "posterior_predictive",
           "write_predictive_plots"]

#: credible levels of the predictive bands
LEVELS = (0.5, 0.9)
#: features whose predictive spreads differ by more than this factor are drawn standardized
_MAX_SPREAD_RATIO = 20.0


@dataclass
class PredictiveCheck:
    """The posterior predictive of one observation.

    Attributes:
        kind: ``"features"`` (vector ``x``) or ``"whitened_strain"`` (GW).
        observed: features ``[F]``, or the whitened data as a time series ``[n_det, T]`` (units of noise sigma).
        draws: ``[m, *observed.shape]``: simulated ``x`` (features) or noise-free whitened waveforms (strain).
        axis: ``[F]`` feature index or ``[T]`` time in s from the segment's reference time.
        window: ``(t0, t1)`` in s around the predicted merger (strain), ``None`` for features.
        frequencies: ``[n_bins]`` Hz (strain only).
        observed_amplitude: ``|d_w|`` ``[n_det, n_bins]`` (strain only).
        draws_amplitude: ``|h_w|`` ``[m, n_det, n_bins]`` (strain only).
        detectors: names of the ``n_det`` detectors (strain only).
    """

    kind: str
    observed: np.ndarray
    draws: np.ndarray
    axis: np.ndarray
    window: tuple[float, float] | None = None
    frequencies: np.ndarray | None = None
    observed_amplitude: np.ndarray | None = None
    draws_amplitude: np.ndarray | None = None
    detectors: tuple[str, ...] = ()

    def band(self, level: float = 0.9, amplitude: bool = False) -> np.ndarray:
        """``[2, *shape]``: the central ``level`` interval of the draws (of ``|h_w|`` if ``amplitude``)."""
        draws = self.draws_amplitude if amplitude else self.draws
        return np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)

    @property
    def median(self) -> np.ndarray:
        """``[*observed.shape]``: the draws' median."""
        return np.median(self.draws, axis=0)

    @property
    def outside_fraction(self) -> float | None:
        """Features: fraction of the observed values outside their 90% predictive band; strain: ``None``."""
        if self.kind != "features":
            return None
        low, high = self.band(0.9)
        return float(np.mean((self.observed < low) | (self.observed > high)))


def is_whitened_strain(simulator: Any) -> bool:
    """Whether ``simulator`` has noise-free whitened waveforms (``whitened_waveform``, ``frequencies``, ``delta_f``)."""
    return (callable(getattr(simulator, "whitened_waveform", None)) and hasattr(simulator, "frequencies")
            and hasattr(simulator, "delta_f") and len(simulator.x_shape) == 3 and simulator.x_shape[1] == 2)


def _to_time(series: np.ndarray, frequencies: np.ndarray, delta_f: float) -> tuple[np.ndarray, np.ndarray]:
    """Whitened frequency series ``[..., n_bins]`` -> times ``[T]`` (s, centred on 0) and series ``[..., T]``.

    Scaled so that white noise of unit variance per real and imaginary part has unit variance per sample.
    """
    index = np.rint(frequencies / delta_f).astype(int)
    half = int(index.max())
    size = 2 * half
    full = np.zeros((*series.shape[:-1], half + 1), dtype=np.complex128)
    full[..., index] = series
    values = np.fft.irfft(full, n=size, axis=-1) * size / (2 * math.sqrt(len(index)))
    duration = 1.0 / delta_f
    times = np.arange(size) * duration / size
    times = np.where(times >= duration / 2, times - duration, times)
    order = np.argsort(times)
    return times[order], values[..., order]


def _merger_window(times: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """``(t0, t1)``: from 5% of the waveforms' mean energy (at most 1 s before its peak) to 0.1 s after the peak."""
    energy = (draws**2).mean(0).sum(0)  # [T]
    total = energy.sum()
    if not total > 0:
        return float(times[0]), float(times[-1])
    cumulative = np.cumsum(energy) / total
    peak = float(times[np.argmax(energy)])
    start = max(float(times[np.searchsorted(cumulative, 0.05)]), peak - 1.0)
    return start - 0.02, peak + 0.1


def posterior_predictive(simulator: Any, theta: Any, x_obs: Any, generator: torch.Generator | None = None
                         ) -> PredictiveCheck:
    """The posterior predictive check of one observation.

    Arguments:
        simulator: the simulator the model was trained on.
        theta: posterior draws ``[m, d]`` for this observation.
        x_obs: the observation ``[*x_shape]``.
        generator: the simulation noise (features only; strain waveforms are noise-free).
    """
    theta = torch.as_tensor(np.asarray(theta.cpu() if hasattr(theta, "cpu") else theta), dtype=torch.float32)
    x_obs = np.asarray(x_obs.cpu() if hasattr(x_obs, "cpu") else x_obs, dtype=np.float64)
    if tuple(x_obs.shape) != tuple(simulator.x_shape):
        raise ValueError(f"the observation must have the simulator's shape {list(simulator.x_shape)}, "
                         f"got {list(x_obs.shape)}")
    if theta.ndim != 2 or theta.shape[1] != simulator.prior.dim:
        raise ValueError(f"theta must be [m, {simulator.prior.dim}], got {list(theta.shape)}")
    if not is_whitened_strain(simulator):
        with torch.no_grad():
            draws = simulator.simulate(theta, generator).double().numpy().reshape(len(theta), -1)
        observed = x_obs.reshape(-1)
        return PredictiveCheck("features", observed, draws, np.arange(observed.size))
    frequencies = np.asarray(simulator.frequencies, dtype=np.float64)
    with torch.no_grad():
        waveforms = simulator.whitened_waveform(theta.double()).numpy()  # [m, n_det, n_bins] complex
    data = x_obs[:, 0] + 1j * x_obs[:, 1]  # [n_det, n_bins]
    times, observed = _to_time(data, frequencies, simulator.delta_f)
    _, draws = _to_time(waveforms, frequencies, simulator.delta_f)
    names = tuple(getattr(d, "name", f"detector {i}") for i, d in enumerate(getattr(simulator, "detectors", ())))
    return PredictiveCheck(
        "whitened_strain", observed, draws, times, window=_merger_window(times, draws), frequencies=frequencies,
        observed_amplitude=np.abs(data), draws_amplitude=np.abs(waveforms),
        detectors=names if len(names) == len(data) else tuple(f"detector {i}" for i in range(len(data))),
    )


def _plot_features(check: PredictiveCheck, title: str) -> Figure:
    observed, draws, index = check.observed, check.draws, check.axis
    spread = draws.std(0)
    positive = spread[spread > 0]
    standardize = positive.size > 1 and positive.max() / positive.min() > _MAX_SPREAD_RATIO
    if standardize:  # features on very different scales: show each in units of its own predictive spread
        centre, scale = np.median(draws, 0), np.where(spread > 0, spread, 1.0)
        observed, draws = (observed - centre) / scale, (draws - centre) / scale
    fig = Figure(figsize=(min(3.0 + 0.35 * len(index), 14.0), 3.6))
    ax = fig.subplots()
    few = len(index) <= 60  # a box per feature; a continuous band for long vectors
    median = np.median(draws, 0)
    for level, alpha in zip(LEVELS[::-1], (0.25, 0.5)):
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        label = f"{level:.0%} posterior predictive"
        if few:
            ax.bar(index, high - low, bottom=low, width=0.6, color="C0", alpha=alpha, lw=0, label=label)
        else:
            ax.fill_between(index, low, high, color="C0", alpha=alpha, lw=0, label=label)
    if few:
        ax.hlines(median, index - 0.3, index + 0.3, color="C0", lw=1.2, label="predictive median")
    else:
        ax.plot(index, median, color="C0", lw=1, label="predictive median")
    ax.plot(index, observed, "o" if few else "-", color="k", ms=4, lw=0.8, label="observation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("feature index of x")
    ax.set_ylabel("(x - median) / std of the predictive" if standardize else "x")
    fraction = check.outside_fraction
    ax.set_title(f"{title}: {fraction:.0%} of the features outside the 90% band".lstrip(": "), fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _plot_strain(check: PredictiveCheck, title: str) -> Figure:
    n_det = check.observed.shape[0]
    fig = Figure(figsize=(11.0, 3.2 * n_det))
    axes = fig.subplots(n_det, 2, squeeze=False)
    f, t = check.frequencies, check.axis
    amplitude = check.band(0.9, amplitude=True)
    amplitude_median = np.median(check.draws_amplitude, 0)
    band, median = check.band(0.9), check.median
    inside = (t >= check.window[0]) & (t <= check.window[1])
    for k in range(n_det):
        left, right = axes[k]
        left.plot(f, check.observed_amplitude[k], color="0.6", lw=0.4, alpha=0.7, label="|whitened data|")
        left.axhline(math.sqrt(2), color="0.3", lw=0.8, ls="--", label="noise rms per bin")
        left.fill_between(f, amplitude[0, k], amplitude[1, k], color="C0", alpha=0.4, lw=0,
                          label="90% posterior waveforms")
        left.plot(f, amplitude_median[k], color="C0", lw=1, label="median waveform")
        left.set_xscale("log")
        left.set_xticks([t for t in (20, 30, 50, 100, 200, 500, 1000, 2000) if f[0] <= t <= f[-1]])
        left.xaxis.set_major_formatter(ScalarFormatter())
        left.xaxis.set_minor_formatter(NullFormatter())
        left.set_xlabel("frequency [Hz]")
        left.set_ylabel(f"{check.detectors[k]}: |whitened strain| [noise sigma]", fontsize=9)
        right.plot(t[inside], check.observed[k, inside], color="0.6", lw=0.7, label="whitened data")
        right.fill_between(t[inside], band[0, k, inside], band[1, k, inside], color="C0", alpha=0.4, lw=0,
                           label="90% posterior waveforms")
        right.plot(t[inside], median[k, inside], color="C0", lw=1, label="median waveform")
        right.set_xlim(*check.window)
        right.set_xlabel("time from the segment's reference time [s]")
        right.set_ylabel("whitened strain [noise sigma]", fontsize=9)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[0, 1].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(f"{title}: posterior predictive waveforms", fontsize=10)
    fig.tight_layout()
    return fig


def plot_predictive(check: PredictiveCheck, title: str = "") -> Figure:
    """The figure of a :class:`PredictiveCheck` (bands per feature, or GW strain and waveforms)."""
    return _plot_features(check, title) if check.kind == "features" else _plot_strain(check, title)


def write_predictive_plots(
    out: str | Path, simulator: Any, samples: Any, x: Any, generator: torch.Generator | None = None,
    num_draws: int = 200, dpi: int = 100,
) -> tuple[list[Path], list[PredictiveCheck]]:
    """Write ``out/observation_{b}.png`` for each observation; return the paths and the checks.

    Arguments:
        samples: posterior draws ``[n, B, d]``; the first ``num_draws`` of each observation are simulated.
        x: the observations ``[B, *x_shape]``.
    """
    samples = samples if isinstance(samples, torch.Tensor) else torch.as_tensor(np.asarray(samples))
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if samples.ndim != 3 or samples.shape[1] != len(x):
        raise ValueError(f"samples must be [n, B, d] for B = {len(x)} observations, got {list(samples.shape)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths, checks = [], []
    for b in range(len(x)):
        check = posterior_predictive(simulator, samples[:num_draws, b], x[b], generator)
        path = out / f"observation_{b}.png"
        plot_predictive(check, f"observation {b}").savefig(path, dpi=dpi)
        paths.append(path)
        checks.append(check)
    return paths, checks
