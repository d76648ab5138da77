"""A batched adaptive ODE solver: Dormand-Prince 5(4) with a step size of its own for every trajectory.

Simulators that integrate one ODE per parameter vector (an epidemic, a predator-prey
model) integrate all of a batch at once: ``n`` trajectories advance together in
numpy, but each keeps its own time and step size and accepts or rejects its own
steps on its own error estimate (``max_i |err_i| / (atol + rtol |y_i|) <= 1``), so a
stiff or fast trajectory does not set the steps of the others and a smooth one is
not diluted into a batch-wide error norm. Each trajectory stops exactly on the
requested output times. Coefficients: Dormand and Prince 1980, J. Comput. Appl.
Math. 6, 19 (the RK5(4)7M pair; Hairer, Norsett and Wanner, "Solving Ordinary
Differential Equations I", table II.5.2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["solve_batched"]

_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_B5 = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
_B4 = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])


def solve_batched(
    rhs: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y0: np.ndarray,
    times: np.ndarray,
    params: np.ndarray,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 100_000,
) -> np.ndarray:
    """Integrate ``dy/dt = rhs(y, params)`` (autonomous) for ``n`` trajectories; ``y`` at ``times``.

    Arguments:
        rhs: ``(y [m, k], params [m, p]) -> dy/dt [m, k]`` for any subset of ``m`` trajectories.
        y0: ``[n, k]`` initial states at ``times[0]``.
        times: ``[J]`` increasing output times (the first is the start).
        params: ``[n, p]`` per-trajectory parameters.
        rtol, atol: per-trajectory tolerances of the local error estimate.
        max_steps: attempted steps per trajectory before it is given up (its outputs are then NaN).

    Returns ``[n, k, J]``; a trajectory that turns non-finite or runs out of steps is NaN from then on.
    """
    y = np.array(y0, dtype=np.float64)
    n, k = y.shape
    times = np.asarray(times, dtype=np.float64)
    out = np.full((n, k, len(times)), np.nan)
    out[:, :, 0] = y
    t = np.full(n, times[0])
    h = np.full(n, min(1e-2, (times[-1] - times[0]) / 100))
    target = np.ones(n, dtype=np.int64)  # index of the next output time
    steps = np.zeros(n, dtype=np.int64)
    active = np.flatnonzero(target < len(times))
    while active.size:
        ya, pa = y[active], params[active]
        goal = times[target[active]]
        ha = np.minimum(h[active], goal - t[active])
        stages = []
        for row, c in zip(_A, _C):
            point = ya + ha[:, None] * sum(coef * stage for coef, stage in zip(row, stages)) if row else ya
            del c  # autonomous: the stage times are not needed
            stages.append(rhs(point, pa))
        y5 = ya + ha[:, None] * sum(b * s for b, s in zip(_B5, stages) if b)
        error = ha[:, None] * sum((b5 - b4) * s for b5, b4, s in zip(_B5, _B4, stages) if b5 != b4)
        scale = atol + rtol * np.maximum(np.abs(ya), np.abs(y5))
        ratio = np.max(np.abs(error) / scale, axis=1)
        finite = np.isfinite(ratio) & np.isfinite(y5).all(1)
        accept = finite & (ratio <= 1.0)
        done = active[accept]
        y[done], t[done] = y5[accept], t[done] + ha[accept]
        arrived = done[np.isclose(t[done], times[target[done]], rtol=0, atol=1e-9 * max(1.0, abs(times[-1])))]
        out[arrived, :, target[arrived]] = y[arrived]
        t[arrived] = times[target[arrived]]
        target[arrived] += 1
        factor = np.where(finite, np.clip(0.9 * np.maximum(ratio, 1e-10) ** -0.2, 0.2, 5.0), 0.2)
        h[active] = ha * factor
        steps[active] += 1
        # given up: a step size that underflows, or too many steps; the outputs not reached stay NaN
        failed = active[(h[active] < 1e-12 * max(1.0, abs(times[-1]))) | (steps[active] >= max_steps)]
        target[failed] = len(times)
        active = np.flatnonzero(target < len(times))
    return out
