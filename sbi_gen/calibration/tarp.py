"""TARP: sample-only coverage with random reference points.

For each test pair, draw a reference point ``theta_r`` independent of
``theta*`` given ``x*``, and count the posterior draws closer to ``theta_r``
than ``theta*`` is (Euclidean distance after scaling each parameter by its
spread). That count ``r`` is uniform on ``{0..L}`` for the true posterior, and
its ECDF is the TARP expected-coverage curve ``ECP(a)`` (Lemos et al. 2023,
"Sampling-Based Accuracy Testing of Posterior Estimators for General
Inference", arXiv:2302.03026). It needs no density, so it covers every
estimator.

Score: the area to the curve over the upper half,
``ATC = int_{1/2}^1 (ECP(a) - a) da = 1/8 - mean((u - 1/2)_+)`` with
mid-ranks ``u = (r + 1/2) / (L + 1)``, in ``[-1/8, 1/8]`` and 0 when
calibrated. A too-narrow posterior pushes ``theta*`` outside the ball around
the reference as often as inside (U-shaped ``u``), so ``ATC < 0``:
overconfident; a too-wide one gives ``ATC > 0``: underconfident. A shifted
posterior also shows as ``ATC < 0`` or as a curve outside the band.

Bands: bootstrap over test pairs (pointwise percentiles of the curve, and the
interval of ATC), plus the simultaneous ECDF band of a calibrated curve
(:mod:`sbi_gen.calibration.bands`). At family level ``alpha`` the curve is
flagged when a z-test on ATC or the simultaneous ECDF test rejects at
``alpha / 2``. If the ATC test rejects, its sign names the direction; if only
the ECDF test does, the label is ``miscalibrated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbi_gen.calibration.bands import coverage_label, ecdf_at, simultaneous_ecdf_band

__all__ = ["TARPResult", "tarp", "tarp_ranks"]


@dataclass
class TARPResult:
    """TARP curve, its bootstrap and simultaneous bands, ATC and a label."""

    label: str
    alpha: list[float]
    ecp: list[float]
    bootstrap_lower: list[float]
    bootstrap_upper: list[float]
    band_lower: list[float]
    band_upper: list[float]
    atc: float
    atc_ci: tuple[float, float]
    atc_pvalue: float
    ecdf_pvalue: float
    pvalue: float
    level: float
    references: str
    num_bootstrap: int
    num_pairs: int
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _atc(u: np.ndarray) -> np.ndarray:
    """ATC of mid-ranks ``u [..., N]``."""
    return 0.125 - np.clip(u - 0.5, 0.0, None).mean(-1)


def tarp_ranks(posterior_samples: Tensor, theta_true: Tensor, references: Tensor, scale: Tensor) -> np.ndarray:
    """Draws closer to ``references [N, d]`` than ``theta_true [N, d]`` is, ``[N]``, for samples ``[L, N, d]``."""
    samples = torch.as_tensor(posterior_samples, dtype=torch.float64)
    theta = torch.as_tensor(theta_true, dtype=torch.float64)
    references = torch.as_tensor(references, dtype=torch.float64)
    if samples.ndim != 3 or samples.shape[1:] != theta.shape or references.shape != theta.shape:
        raise ValueError(
            f"samples [L, N, d], theta [N, d] and references [N, d] must agree; got {list(samples.shape)}, "
            f"{list(theta.shape)} and {list(references.shape)}"
        )
    scale = torch.as_tensor(scale, dtype=torch.float64)
    sample_distance = ((samples - references) / scale).square().sum(-1)
    true_distance = ((theta - references) / scale).square().sum(-1)
    return (sample_distance < true_distance).sum(0).numpy()


def tarp(
    posterior_samples: Tensor, theta_true: Tensor, references: Tensor | None = None, alpha: float = 0.01,
    num_bootstrap: int = 1000, seed: int = 0, box_from: Tensor | None = None,
) -> TARPResult:
    """TARP coverage of ``theta_true [N, d]`` among ``posterior_samples [L, N, d]``.

    Arguments:
        references: ``[N, d]`` reference points. Default: uniform in the box
            spanned by the 1% and 99% quantiles per dimension of ``box_from``
            (e.g. prior draws ``[M, d]``; default the posterior draws, which
            depend on the observations only). Such references lie mostly far
            from a posterior, where the sign of ATC is read most reliably.
        alpha: level of the check; bands are at ``1 - alpha``.
        num_bootstrap: resamples of the test pairs for the bootstrap bands.
        seed: seeds the references, the bootstrap and the simulated band.
    """
    samples = torch.as_tensor(posterior_samples, dtype=torch.float64)
    num_samples, n, d = samples.shape
    flat = samples.reshape(-1, d).numpy()
    scale = torch.as_tensor(flat.std(0)).clamp_min(1e-12)
    rng = np.random.default_rng(seed)
    kind = "given"
    if references is None:
        source = flat if box_from is None else torch.as_tensor(box_from, dtype=torch.float64).numpy()
        low, high = np.quantile(source, [0.01, 0.99], axis=0)
        references = torch.as_tensor(rng.uniform(low, high, size=(n, d)))
        kind = f"uniform in the 1%-99% box of the {'posterior' if box_from is None else 'given'} draws"
    ranks = tarp_ranks(samples, theta_true, references, scale)
    num_values = num_samples + 1
    band = simultaneous_ecdf_band(n, num_values, level=1 - alpha, seed=seed)
    u = (ranks + 0.5) / num_values
    atc = float(_atc(u))
    resampled = rng.integers(0, n, size=(num_bootstrap, n))
    boot_atc = _atc(u[resampled])
    boot_ecp = np.stack([ecdf_at(ranks[row], band) for row in resampled])
    tails = [alpha / 4, 1 - alpha / 4]
    null_sd = np.sqrt(1 / 24 - 1 / 64)  # sd of (u - 1/2)_+ for u ~ U(0, 1)
    atc_p, ecdf_p, pvalue, label = coverage_label(atc, null_sd, n, ranks, band, alpha)
    lower, upper = np.quantile(boot_ecp, [alpha / 2, 1 - alpha / 2], axis=0)
    atc_low, atc_high = np.quantile(boot_atc, tails)
    return TARPResult(
        label, band.points, ecdf_at(ranks, band).tolist(), lower.tolist(), upper.tolist(), band.lower, band.upper,
        atc, (float(atc_low), float(atc_high)), atc_p, ecdf_p, pvalue, 1 - alpha, kind, num_bootstrap, n,
        num_samples,
    )
