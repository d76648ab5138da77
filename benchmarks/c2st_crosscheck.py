"""C2ST cross-check: our torch classifier against scikit-learn's, on identical samples.

Before any table compares sbi-gen with the ``sbi`` package, the classifier two-
sample test must be shown to measure what sbibm's does. For sample pairs with
a known Bayes-optimal accuracy (two Gaussians a shift ``delta`` apart along one
axis: ``Phi(delta / 2)``) and for a curved, non-Gaussian pair (a banana against
its Gaussian approximation), this prints the accuracy of

- ``sbi_gen.calibration.c2st`` (torch MLP, 2 x 10 d ReLU, 5-fold CV),
- scikit-learn's ``MLPClassifier`` with sbibm's settings (2 x 10 d ReLU, adam,
  5-fold stratified CV; through ``sbi.utils.metrics.c2st(classifier="mlp")``
  when ``sbi`` is installed, else configured here),
- ``sbi.utils.metrics.c2st`` with its default random forest (what sbi reports),

and the wall time of each, all in one run on the same samples.

Usage: python benchmarks/c2st_crosscheck.py [--n 10000] [--dim 5]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from sbi_gen.calibration import c2st


def sklearn_mlp_c2st(p: np.ndarray, q: np.ndarray, seed: int) -> float:
    """sbibm's classifier in scikit-learn: MLP 2 x 10 d ReLU, adam, 5-fold stratified CV, z-scored on ``p``."""
    try:
        from sbi.utils.metrics import c2st as sbi_c2st

        return float(sbi_c2st(torch.as_tensor(p), torch.as_tensor(q), seed=seed, classifier="mlp"))
    except ImportError:
        pass
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    mean, std = p.mean(0), p.std(0)
    inputs = (np.concatenate([p, q]) - mean) / std
    labels = np.concatenate([np.zeros(len(p)), np.ones(len(q))])
    width = 10 * p.shape[1]
    classifier = MLPClassifier(hidden_layer_sizes=(width, width), activation="relu", solver="adam",
                               max_iter=10_000, random_state=seed)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, inputs, labels, cv=folds, scoring="accuracy").mean())


def random_forest_c2st(p: np.ndarray, q: np.ndarray, seed: int) -> float | None:
    try:
        from sbi.utils.metrics import c2st as sbi_c2st
    except ImportError:
        return None
    return float(sbi_c2st(torch.as_tensor(p), torch.as_tensor(q), seed=seed, classifier="rf"))


def cases(n: int, dim: int, generator: torch.Generator) -> list[tuple[str, torch.Tensor, torch.Tensor, float | None]]:
    """``(label, p [n, dim], q [n, dim], Bayes accuracy or None)``."""
    result = []
    for delta in (0.0, 0.2, 0.5, 1.0):
        p = torch.randn(n, dim, generator=generator)
        q = torch.randn(n, dim, generator=generator)
        q[:, 0] += delta
        bayes = 0.5 * (1 + math.erf(delta / 2 / math.sqrt(2)))
        result.append((f"Gaussian shift {delta:.1f}", p, q, bayes))
    # banana: theta_2 bent by 0.5 theta_1^2, against the Gaussian with the same mean and covariance
    banana = torch.randn(n, dim, generator=generator)
    banana[:, 1] += 0.5 * banana[:, 0] ** 2
    mean, covariance = banana.mean(0), torch.cov(banana.T)
    gaussian = torch.distributions.MultivariateNormal(mean, covariance).sample((n,))
    result.append(("banana vs its Gaussian fit", banana, gaussian, None))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples per set")
    parser.add_argument("--dim", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    print(f"{args.n} samples per set, dimension {args.dim}; accuracy (seconds)")
    header = f"{'case':28s} {'Bayes':>6s} {'sbi-gen torch MLP':>18s} {'sklearn MLP':>16s} {'sbi random forest':>18s}"
    print(header)
    for label, p, q, bayes in cases(args.n, args.dim, generator):
        start = time.perf_counter()
        ours = c2st(p, q, seed=0).accuracy
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        mlp = sklearn_mlp_c2st(p.numpy(), q.numpy(), seed=0)
        mlp_s = time.perf_counter() - start
        start = time.perf_counter()
        forest = random_forest_c2st(p.numpy(), q.numpy(), seed=0)
        forest_s = time.perf_counter() - start
        bayes_text = f"{bayes:.3f}" if bayes is not None else "-"
        forest_text = f"{forest:.3f} ({forest_s:5.1f})" if forest is not None else "(sbi not installed)"
        print(f"{label:28s} {bayes_text:>6s} {ours:>10.3f} ({ours_s:5.1f}) {mlp:>8.3f} ({mlp_s:5.1f}) "
              f"{forest_text:>18s}", flush=True)


if __name__ == "__main__":
    main()
