"""Classifier two-sample test (C2ST): how well can a classifier tell two sample sets apart?

Accuracy 0.5 means indistinguishable, 1.0 means disjoint. We follow the
classifier of the sbibm benchmark (Lueckmann et al. 2021, "Benchmarking
Simulation-Based Inference", arXiv:2101.04653): an MLP with two hidden layers
of ``10 d`` ReLU units on inputs z-scored with the first set's statistics, and
k-fold cross-validated accuracy (``k = 5``). sbibm trains it with scikit-learn;
we train the same architecture in torch (Adam, batches of 128, early stopping
on a validation tenth of each training fold), which is an order of magnitude
faster on CPU (about 3 s for 2 x 10,000 samples in 5-D). On Gaussian test
cases it reaches the Bayes-optimal accuracy (see ``tests/test_calibration.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["C2STResult", "c2st"]


@dataclass
class C2STResult:
    """Mean cross-validated accuracy, per-fold accuracies and the samples used."""

    accuracy: float
    fold_accuracies: list[float]
    num_samples: tuple[int, int]
    classifier: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _classifier(dim: int) -> nn.Module:
    width = 10 * dim
    return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))


def _fit_and_score(
    inputs: Tensor,
    labels: Tensor,
    train_idx: Tensor,
    test_idx: Tensor,
    generator: torch.Generator,
    max_epochs: int,
    patience: int,
) -> float:
    """Train on ``train_idx`` (a tenth held out for early stopping); accuracy on ``test_idx``."""
    order = train_idx[torch.randperm(len(train_idx), generator=generator)]
    n_val = max(1, len(order) // 10)
    val, fit = order[:n_val], order[n_val:]
    model = _classifier(inputs.shape[1])
    # fused: one kernel for the six parameter tensors; the per-tensor loop torch uses on CPU made the
    # update a third of a step (C2ST on 2 x 10,000 samples in 5-D: 2.75 -> 1.94 s; same accuracy to 2e-4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state, since = float("inf"), None, 0
    for _ in range(max_epochs):
        model.train()
        permutation = fit[torch.randperm(len(fit), generator=generator)]
        for i in range(0, len(permutation), 128):
            batch = permutation[i : i + 128]
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]).squeeze(-1), labels[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(inputs[val]).squeeze(-1), labels[val]))
        if val_loss < best - 1e-4:
            best, since = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        predictions = (model(inputs[test_idx]).squeeze(-1) > 0).float()
    return float((predictions == labels[test_idx]).float().mean())


def c2st(
    samples_p: Tensor,
    samples_q: Tensor,
    folds: int = 5,
    seed: int = 0,
    max_epochs: int = 100,
    patience: int = 5,
) -> C2STResult:
    """Cross-validated accuracy of a classifier separating ``samples_p [n, d]`` from ``samples_q [m, d]``.

    Arguments:
        samples_p: e.g. reference posterior samples; also sets the z-scoring.
        samples_q: e.g. estimated posterior samples.
        folds: number of cross-validation folds.
        seed: seeds the folds, the classifier's initialization and its batches.
    """
    samples_p = torch.as_tensor(samples_p, dtype=torch.float32).reshape(len(samples_p), -1)
    samples_q = torch.as_tensor(samples_q, dtype=torch.float32).reshape(len(samples_q), -1)
    if samples_p.shape[1] != samples_q.shape[1]:
        raise ValueError(f"sample sets differ in dimension: {samples_p.shape[1]} vs {samples_q.shape[1]}")
    if not (torch.isfinite(samples_p).all() and torch.isfinite(samples_q).all()):
        raise ValueError("C2ST samples must be finite")
    mean, std = samples_p.mean(0), samples_p.std(0).clamp_min(1e-12)
    inputs = (torch.cat([samples_p, samples_q]) - mean) / std
    labels = torch.cat([torch.zeros(len(samples_p)), torch.ones(len(samples_q))])
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 10d-wide MLP runs fastest on one thread
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        # stratified folds: shuffle each class, deal its members round-robin to folds
        fold_of = torch.empty(len(inputs), dtype=torch.long)
        for cls in (0.0, 1.0):
            members = (labels == cls).nonzero().flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            fold_of[members] = torch.arange(len(members)) % folds
        accuracies = []
        for k in range(folds):
            train_idx, test_idx = (fold_of != k).nonzero().flatten(), (fold_of == k).nonzero().flatten()
            accuracies.append(_fit_and_score(inputs, labels, train_idx, test_idx, generator, max_epochs, patience))
    torch.set_num_threads(threads)
    return C2STResult(
        accuracy=sum(accuracies) / folds,
        fold_accuracies=accuracies,
        num_samples=(len(samples_p), len(samples_q)),
        classifier=f"MLP 2x{10 * samples_p.shape[1]} ReLU, Adam, {folds}-fold CV, early stopping",
    )
