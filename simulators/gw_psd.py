"""Detector noise for the ``gw`` simulators: PSD tables, the frequency grid, whitening.

Noise is stationary and Gaussian with a one-sided power spectral density
``S_n(f)``: in a segment of duration ``T = 1 / df`` the Fourier coefficients of
the noise have independent real and imaginary parts ``N(0, S_n / (4 df))``. The
whitened strain ``d_w = d sqrt(4 df / S_n)`` then has i.i.d. ``N(0, 1)`` noise in
each real and imaginary part, and the noise-weighted inner product
``(a | b) = 4 df Re sum a conj(b) / S_n`` is ``Re sum a_w conj(b_w)``.

PSD tables shipped in ``sbi_gen_simulators/data`` (each file's header holds its
provenance); values between rows are interpolated linearly in ``log f - log S``:

- ``"aligo_zdhp"`` (default): Advanced LIGO design, zero-detuned high power
  (LIGO-T0900288-v3) as modelled by LALSimulation's
  ``XLALSimNoisePSDaLIGOZeroDetHighPower`` (quantum plus thermal noise),
  tabulated at 400 log-spaced points from 9 Hz to 4096 Hz
  (:func:`write_lal_psd_table` regenerates it). This is the curve PyCBC calls
  ``aLIGOZeroDetHighPower``.
- ``"aligo_zdhp_t0900288"``: the published GWINC table of the same
  configuration (LIGO-T0900288-v3, ``ZERO_DET_high_P.txt``, ASD squared),
  9 Hz to 2.1 kHz, the curve bilby ships as ``aLIGO_ZERO_DET_high_P_psd.txt``.
  It differs from the model above by up to ~17 % between 20 and 256 Hz.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import numpy as np
import torch
from torch import Tensor

__all__ = ["PSD_TABLES", "frequency_grid", "load_psd_table", "psd_on_grid", "whitening_factor", "write_lal_psd_table"]

#: PSD name -> file in ``sbi_gen_simulators/data``
PSD_TABLES = {
    "aligo_zdhp": "aligo_zero_det_high_power_psd.txt",
    "aligo_zdhp_t0900288": "aligo_zero_det_high_p_t0900288v3.txt",
}


def frequency_grid(f_min: float, f_max: float, duration: float) -> Tensor:
    """Frequencies ``k df`` (float64, Hz) with ``df = 1 / duration`` and ``f_min <= k df <= f_max``.

    Example:
        >>> frequency_grid(20.0, 256.0, 8.0).shape
        torch.Size([1889])
    """
    if duration <= 0 or f_min <= 0 or f_max <= f_min:
        raise ValueError(f"need duration > 0 and 0 < f_min < f_max, got {duration=}, {f_min=}, {f_max=}")
    df = 1.0 / duration
    first, last = math.ceil(f_min / df - 1e-9), math.floor(f_max / df + 1e-9)
    return torch.arange(first, last + 1, dtype=torch.float64) * df


@cache
def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in PSD_TABLES:
        raise ValueError(f"unknown PSD {name!r}; available: {sorted(PSD_TABLES)}")
    text = resources.files("sbi_gen_simulators").joinpath("data", PSD_TABLES[name]).read_text()
    table = np.loadtxt(text.splitlines(), dtype=np.float64)
    return table[:, 0], table[:, 1]


def load_psd_table(name: str = "aligo_zdhp") -> tuple[np.ndarray, np.ndarray]:
    """The shipped table ``(frequencies [Hz], one-sided PSD [1/Hz])`` (copies)."""
    f, psd = _load(name)
    return f.copy(), psd.copy()


def psd_on_grid(frequencies: Tensor, name: str = "aligo_zdhp") -> Tensor:
    """One-sided PSD ``[n_f]`` (float64, 1/Hz) at ``frequencies`` by log-log interpolation of a table."""
    f_table, psd_table = _load(name)
    f = torch.as_tensor(frequencies, dtype=torch.float64).numpy()
    if f.min() < f_table[0] or f.max() > f_table[-1]:
        raise ValueError(
            f"PSD {name!r} is tabulated on [{f_table[0]:g}, {f_table[-1]:g}] Hz; "
            f"requested [{f.min():g}, {f.max():g}] Hz"
        )
    return torch.from_numpy(np.exp(np.interp(np.log(f), np.log(f_table), np.log(psd_table))))


def whitening_factor(psd: Tensor, delta_f: float) -> Tensor:
    """``sqrt(4 df / S_n)``: multiplies strain so that its noise is N(0, 1) per real and imaginary part."""
    return torch.sqrt(4.0 * delta_f / torch.as_tensor(psd, dtype=torch.float64))


def write_lal_psd_table(path: str, rows: int = 400, f_low: float = 9.0, f_high: float = 4096.0) -> None:
    """Regenerate the ``"aligo_zdhp"`` table from LALSimulation (needs ``lalsuite``)."""
    from importlib.metadata import version

    import lalsimulation

    f = np.geomspace(f_low, f_high, rows)
    psd = np.array([lalsimulation.SimNoisePSDaLIGOZeroDetHighPower(float(x)) for x in f])
    header = (
        "Advanced LIGO design noise, zero-detuned high-power configuration: one-sided PSD.\n"
        "Source: LIGO-T0900288-v3 (Advanced LIGO anticipated sensitivity curves, the\n"
        '"ZERO_DET_high_P" configuration), as modelled by LALSimulation\'s\n'
        "XLALSimNoisePSDaLIGOZeroDetHighPower (quantum + thermal noise; valid above ~9 Hz),\n"
        f"tabulated from lalsuite {version('lalsuite')} (lalsimulation {lalsimulation.__version__}) at {rows} "
        f"log-spaced\nfrequencies from {f_low:g} Hz to {f_high:g} Hz by "
        "sbi_gen_simulators.gw_psd.write_lal_psd_table.\n"
        "This is a noise model evaluated on a table, not the published GWINC table\n"
        "(see aligo_zero_det_high_p_t0900288v3.txt, which it differs from by up to ~17%\n"
        "between 20 and 256 Hz). Interpolate linearly in log f - log S.\n"
        "columns: frequency [Hz]  PSD [1/Hz]"
    )
    np.savetxt(path, np.column_stack([f, psd]), fmt="%.10e", header=header)
