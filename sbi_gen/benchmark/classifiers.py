"""The C2ST classifiers a benchmark cell scores with: sbibm's, sbi's and ours.

- ``sbibm-mlp``: ``sbibm.metrics.c2st``, the classifier of sbibm's published tables
  (scikit-learn ``MLPClassifier``, 2 hidden layers of 10 d ReLU units, adam, trained
  until its training loss stalls, up to 10,000 epochs; inputs z-scored on the
  reference; 5-fold cross-validation; seed 1). Needs the ``sbibm`` package.
- ``sbi-rf``: ``sbi.utils.metrics.c2st`` with its default random forest, what sbi
  reports (sbi 0.27: 100 trees; z-scored; 5 folds; seed 1). Needs ``sbi``.
- ``torch-mlp``: :func:`sbi_gen.calibration.c2st_per_observation`, our torch MLP
  with sbibm's architecture and early stopping on a validation split (all
  observations in one batched network; far faster, not identical to sbibm's).

Every method of a benchmark run, ours and sbi's, is scored by the same classifiers
on the same reference samples. The first one named is the run's *primary*
classifier (its C2ST is ``c2st_mean``, used by the ratio table and the plot).
The default is ``torch-mlp`` alone, so that a default ``sbi-gen benchmark`` stays
within about 15 minutes: scikit-learn's MLP takes 60-70 CPU s per observation on
two moons (10,000 + 10,000 samples) and about 340 on a 10-D task, the random
forest 15-35 s. The published sbibm tables name ``sbibm-mlp,sbi-rf``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from torch import Tensor

__all__ = ["CLASSIFIERS", "default_classifiers", "check_classifiers", "score", "importable"]

CLASSIFIERS = {
    "sbibm-mlp": "sbibm's MLP (scikit-learn, 2 x 10 d ReLU, 5-fold CV; as in sbibm's published tables)",
    "sbi-rf": "sbi's default random forest (scikit-learn, 100 trees, 5-fold CV)",
    "torch-mlp": "sbi-gen's torch MLP (sbibm architecture, early stopping on a validation split, 5-fold CV)",
}
_NEEDS = {"sbibm-mlp": "sbibm", "sbi-rf": "sbi"}


def importable(module: str) -> bool:
    """Whether ``module`` (an optional package such as ``sbi`` or ``sbibm``) can be imported."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def default_classifiers() -> list[str]:
    """``["torch-mlp"]``: the fast one (module docstring); name the others to use them."""
    return ["torch-mlp"]


def check_classifiers(names: list[str]) -> None:
    """A ``ValueError`` naming an unknown classifier or the package a chosen one lacks."""
    if not names:
        raise ValueError(f"no C2ST classifier given; choose from {', '.join(CLASSIFIERS)}")
    for name in names:
        if name not in CLASSIFIERS:
            raise ValueError(f"unknown C2ST classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
        module = _NEEDS.get(name)
        if module and not importable(module):
            raise ValueError(f"C2ST classifier {name!r} needs the {module} package (see the bench extra in README)")


def _sklearn_scorer(name: str) -> Callable[[Tensor, Tensor], float]:
    if name == "sbibm-mlp":
        from sbibm.metrics.c2st import c2st

        return lambda p, q: float(c2st(p, q, seed=1))
    from sbi.utils.metrics import c2st

    return lambda p, q: float(c2st(p, q, seed=1, classifier="rf"))


def score(name: str, reference: Tensor, samples: Tensor, seed: int, threads: int = 1) -> tuple[list[float], float]:
    """C2ST accuracy per observation of ``samples [m, B, d]`` against ``reference [n, B, d]``, and the seconds taken.

    ``threads`` caps the BLAS / OpenMP threads of the scikit-learn classifiers (one per cell, as training).
    """
    start = time.perf_counter()
    if name == "torch-mlp":
        from sbi_gen.calibration import c2st_per_observation

        accuracies = [r.accuracy for r in c2st_per_observation(reference, samples, seed=seed)]
    else:
        from threadpoolctl import threadpool_limits

        scorer = _sklearn_scorer(name)
        with threadpool_limits(limits=threads):
            accuracies = [scorer(reference[:, b].float(), samples[:, b].float()) for b in range(reference.shape[1])]
    return accuracies, time.perf_counter() - start
