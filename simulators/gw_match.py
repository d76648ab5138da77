"""Noise-weighted match of two frequency-domain waveforms, maximized over time and phase.

For waveforms ``h1``, ``h2`` on the grid ``f_j = (k0 + j) df`` and a one-sided PSD
``S_n``::

    z(t) = sum_j conj(h1_j) h2_j / S_j exp(2 pi i f_j t)
    match = max_t |z(t)| / sqrt(<h1, h1> <h2, h2>),     <a, b> = sum_j a_j conj(b_j) / S_j

(the factor ``4 df`` of the inner product cancels).

``z`` is computed on a time grid by a zero-padded inverse FFT (step
``1 / (N df)``), and the peak is refined below the grid step by a bounded
scalar maximization of ``|z(t)|`` evaluated by direct summation. With the
convention ``h(f) = int h(t) exp(-2 pi i f t) dt``, the maximizer ``t`` and
``phase = arg z(t)`` say that ``h2 ~ h1 exp(i phase) exp(-2 pi i f t)``: ``h2`` is
``h1`` delayed by ``t`` and rotated by ``phase``. Shifts are recovered modulo
the segment, ``|t| < 1 / (2 df)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["MatchResult", "match"]


@dataclass(frozen=True)
class MatchResult:
    """``match`` in [0, 1]; ``time_shift`` (s) and ``phase`` (rad) with ``h2 ~ h1 e^(i phase) e^(-2 pi i f t)``."""

    match: float
    time_shift: float
    phase: float


def match(
    h1: np.ndarray,
    h2: np.ndarray,
    frequencies: np.ndarray,
    psd: np.ndarray | None = None,
    upsample: int = 4,
) -> MatchResult:
    """Match of ``h1`` and ``h2`` (complex ``[n_f]``) maximized over time shift and phase.

    Arguments:
        h1, h2: frequency-domain waveforms on ``frequencies``.
        frequencies: a uniform grid ``(k0 + j) df``, ``k0 >= 0`` an integer (Hz).
        psd: one-sided PSD on the grid (``None``: white noise).
        upsample: the inverse FFT has ``upsample`` times more points than the
            smallest power of two covering ``0 .. f_max`` (finer coarse search).

    Example:
        >>> f = np.arange(160, 2049) / 8.0
        >>> h = f ** (-7 / 6) * np.exp(-1j * 2000 * f ** (-5 / 3))
        >>> result = match(h, h * np.exp(-2j * np.pi * f * 0.0123), f)
        >>> round(result.match, 9), round(result.time_shift, 9)
        (1.0, 0.0123)
    """
    h1, h2 = np.asarray(h1, dtype=np.complex128), np.asarray(h2, dtype=np.complex128)
    f = np.asarray(frequencies, dtype=np.float64)
    if h1.shape != f.shape or h2.shape != f.shape:
        raise ValueError(f"h1 {h1.shape}, h2 {h2.shape} and frequencies {f.shape} must have one shape [n_f]")
    df = f[1] - f[0]
    k0 = int(round(f[0] / df))
    if not np.allclose(f, (k0 + np.arange(f.size)) * df, rtol=0, atol=1e-9 * df):
        raise ValueError("frequencies must be a uniform grid (k0 + j) df")
    weight = np.ones_like(f) if psd is None else 1.0 / np.asarray(psd, dtype=np.float64)
    norm = math.sqrt(np.sum(np.abs(h1) ** 2 * weight) * np.sum(np.abs(h2) ** 2 * weight))
    if norm == 0:
        raise ValueError("a waveform has zero norm")
    integrand = np.conj(h1) * h2 * weight

    size = upsample * (1 << int(math.ceil(math.log2(k0 + f.size))))
    full = np.zeros(size, dtype=np.complex128)
    full[k0 : k0 + f.size] = integrand
    series = np.fft.ifft(full) * size  # z(t_n), t_n = n / (size df)
    n = int(np.argmax(np.abs(series)))
    step = 1.0 / (size * df)
    t_grid = (n if n < size // 2 else n - size) * step

    def z(t: float) -> complex:
        return complex(np.sum(integrand * np.exp(2j * np.pi * f * t)))

    refined = minimize_scalar(
        lambda t: -abs(z(t)), bounds=(t_grid - step, t_grid + step), method="bounded",
        options={"xatol": 1e-14 * max(1.0, 1.0 / df)},
    )
    t_best = float(refined.x) if -refined.fun > abs(series[n]) else t_grid
    peak = z(t_best)
    return MatchResult(abs(peak) / norm, t_best, float(np.angle(peak)))
