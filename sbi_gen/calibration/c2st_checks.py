"""Two checks built on the classifier two-sample test (:func:`~sbi_gen.calibration.c2st.c2st`).

- *Reference C2ST*: for a few test observations, the estimated posterior's
  draws against the simulator's reference posterior (Lueckmann et al. 2021,
  arXiv:2101.04653). Accuracy 0.5 means indistinguishable. A trained
  estimator is never exact, so the check flags accuracy *clearly above*
  ``0.5 + margin``: the lower end of the Clopper-Pearson interval of the
  pooled held-out accuracy exceeds it.
- *Data-averaged posterior*: one draw from ``q(theta | x_i)`` per test
  observation ``x_i ~ p(x)`` is a draw from the prior when ``q`` is
  calibrated (the data-averaged posterior equals the prior; Talts et al.
  2018, arXiv:1804.06788, eq. 1). A C2ST between those draws and fresh prior
  draws tests it: under the null every held-out prediction is right with
  probability 1/2, so a one-sided binomial test on the correct predictions
  is valid (conservative for stratified folds).

Neither check can tell the direction of a miscalibration: when flagged, the
label is ``miscalibrated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats
from torch import Tensor

from sbi_gen.calibration.bands import binomial_interval
from sbi_gen.calibration.c2st import c2st, c2st_per_observation

__all__ = ["C2STCheck", "data_averaged_posterior_check", "reference_c2st_check"]


@dataclass
class C2STCheck:
    """Held-out C2ST accuracy (pooled), its interval, the test and a label."""

    label: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    pvalue: float
    threshold: float
    per_observation: list[float]
    num_samples: list[int]
    level: float
    test: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pooled(accuracies: list[float], sizes: list[int]) -> tuple[int, int]:
    correct = sum(round(a * n) for a, n in zip(accuracies, sizes))
    return correct, sum(sizes)


def reference_c2st_check(
    reference_samples: Tensor, posterior_samples: Tensor, alpha: float = 0.01, margin: float = 0.1, seed: int = 0
) -> C2STCheck:
    """C2ST per observation between ``reference_samples [M, B, d]`` and ``posterior_samples [L, B, d]``.

    Flags when the pooled accuracy is significantly (one-sided, level
    ``alpha``) above ``0.5 + margin``.
    """
    accuracies = [r.accuracy for r in c2st_per_observation(reference_samples, posterior_samples, seed=seed)]
    sizes = [reference_samples.shape[0] + posterior_samples.shape[0]] * len(accuracies)
    correct, total = _pooled(accuracies, sizes)
    threshold = 0.5 + margin
    pvalue = float(stats.binom.sf(correct - 1, total, threshold))
    low, high = binomial_interval(correct, total, 1 - 2 * alpha)
    return C2STCheck(
        "miscalibrated" if pvalue < alpha else "calibrated", correct / total, (low, high), pvalue, threshold,
        accuracies, sizes, 1 - 2 * alpha,
        f"one-sided binomial test of pooled accuracy > {threshold:g} ({len(accuracies)} observations)",
    )


def data_averaged_posterior_check(
    one_draw_per_x: Tensor, prior_samples: Tensor, alpha: float = 0.01, seed: int = 0
) -> C2STCheck:
    """C2ST between one posterior draw per test observation ``[N, d]`` and prior draws ``[M, d]``."""
    accuracy = c2st(prior_samples, one_draw_per_x, seed=seed).accuracy
    sizes = [len(prior_samples) + len(one_draw_per_x)]
    correct, total = _pooled([accuracy], sizes)
    pvalue = float(stats.binom.sf(correct - 1, total, 0.5))
    low, high = binomial_interval(correct, total, 1 - 2 * alpha)
    return C2STCheck(
        "miscalibrated" if pvalue < alpha else "calibrated", correct / total, (low, high), pvalue, 0.5, [accuracy],
        sizes, 1 - 2 * alpha, "one-sided binomial test of C2ST accuracy > 0.5 (data-averaged posterior vs prior)",
    )
