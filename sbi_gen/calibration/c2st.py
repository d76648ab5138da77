"""Classifier two-sample test (C2ST): how well can a classifier tell two sample sets apart?

Accuracy 0.5 means indistinguishable, 1.0 means disjoint. We follow the
classifier of the sbibm benchmark (Lueckmann et al. 2021, "Benchmarking
Simulation-Based Inference", arXiv:2101.04653): an MLP with two hidden layers
of ``10 d`` ReLU units on inputs z-scored with the first set's statistics, and
k-fold cross-validated accuracy (``k = 5``). sbibm trains it with scikit-learn;
we train the same architecture in torch (Adam, batches of 128, early stopping
on a validation tenth of each training fold). The ``k`` fold classifiers, and
with :func:`c2st_per_observation` those of every observation, are trained
side by side as one batched network, each on its own data and with its own
early stopping: on 2 CPU cores, five observations of 2 x 10,000 samples in
5-D take a few seconds (``benchmarks/c2st_crosscheck.py`` prints the times).
On Gaussian test cases it reaches the Bayes-optimal accuracy (see
``tests/test_calibration.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["C2STResult", "c2st", "c2st_per_observation"]


@dataclass
class C2STResult:
    """Mean cross-validated accuracy, per-fold accuracies and the samples used."""

    accuracy: float
    fold_accuracies: list[float]
    num_samples: tuple[int, int]
    classifier: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _classifiers(count: int, dim: int, generator: torch.Generator) -> _BatchedMLP:
    return _BatchedMLP(count, [dim, 10 * dim, 10 * dim, 1], generator)


class _BatchedMLP(nn.Module):
    """``count`` independent ReLU MLPs with the layer ``sizes``, evaluated together (one batched matmul per layer).

    Initialized like ``nn.Linear`` (weights and biases uniform in ``+-1/sqrt(fan_in)``).
    """

    def __init__(self, count: int, sizes: list[int], generator: torch.Generator) -> None:
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            weight = torch.empty(count, fan_in, fan_out).uniform_(-bound, bound, generator=generator)
            bias = torch.empty(count, 1, fan_out).uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))

    def forward(self, inputs: Tensor) -> Tensor:
        """``[count, b, d] -> [count, b]`` logits, network ``i`` on ``inputs[i]``."""
        hidden = inputs
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < len(self.weights) - 1:
                hidden = hidden.relu()
        return hidden.squeeze(-1)

    def single(self, index: int, inputs: Tensor) -> Tensor:
        """``[n, d] -> [n]`` logits of network ``index`` alone.

        Kept apart from :meth:`forward`: ``addmm`` on one network's weights is about 8% faster
        overall than ``forward`` on a one-network slice, and it runs for every network each epoch.
        """
        hidden = inputs
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.addmm(bias[index], hidden, weight[index])
            if layer < len(self.weights) - 1:
                hidden = hidden.relu()
        return hidden.squeeze(-1)

    def state_of(self, index: int) -> list[Tensor]:
        return [p[index].detach().clone() for p in self.parameters()]

    @torch.no_grad()
    def load_state_of(self, index: int, state: list[Tensor]) -> None:
        for parameter, kept in zip(self.parameters(), state):
            parameter[index] = kept


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
        seed: seeds the folds, the classifiers' initialization and their batches.
        max_epochs: upper bound on training epochs of each classifier.
        patience: epochs without validation improvement before a classifier stops.
    """
    samples_p = torch.as_tensor(samples_p, dtype=torch.float32)
    samples_q = torch.as_tensor(samples_q, dtype=torch.float32)
    return c2st_per_observation(samples_p.reshape(len(samples_p), 1, -1), samples_q.reshape(len(samples_q), 1, -1),
                                folds, seed, max_epochs, patience)[0]


def c2st_per_observation(
    samples_p: Tensor,
    samples_q: Tensor,
    folds: int = 5,
    seed: int = 0,
    max_epochs: int = 100,
    patience: int = 5,
) -> list[C2STResult]:
    """One C2ST per observation ``b``: ``samples_p[:, b]`` against ``samples_q[:, b]``.

    Arguments:
        samples_p: ``[n, B, d]``, e.g. reference posterior samples for ``B`` observations.
        samples_q: ``[m, B, d]``, e.g. estimated posterior samples for the same observations.
        folds, seed, max_epochs, patience: as in :func:`c2st`.

    Returns ``B`` results, each as :func:`c2st` would compute it (the same classifier,
    folds and early stopping), but all trained at once.
    """
    samples_p = torch.as_tensor(samples_p, dtype=torch.float32)
    samples_q = torch.as_tensor(samples_q, dtype=torch.float32)
    if samples_p.dim() != 3 or samples_q.dim() != 3:
        raise ValueError(f"expected samples [n, B, d], got shapes {list(samples_p.shape)} and {list(samples_q.shape)}")
    if samples_p.shape[1] != samples_q.shape[1]:
        raise ValueError(f"sample sets differ in observations: {samples_p.shape[1]} vs {samples_q.shape[1]}")
    if samples_p.shape[2] != samples_q.shape[2]:
        raise ValueError(f"sample sets differ in dimension: {samples_p.shape[2]} vs {samples_q.shape[2]}")
    if min(len(samples_p), len(samples_q)) < 2 * folds:
        raise ValueError(f"{folds}-fold C2ST needs at least {2 * folds} samples per set, "
                         f"got {len(samples_p)} and {len(samples_q)}")
    if not (torch.isfinite(samples_p).all() and torch.isfinite(samples_q).all()):
        raise ValueError("C2ST samples must be finite")
    mean, std = samples_p.mean(0), samples_p.std(0).clamp_min(1e-12)
    inputs = ((torch.cat([samples_p, samples_q]) - mean) / std).transpose(0, 1).contiguous()  # [B, n + m, d]
    labels = torch.cat([torch.zeros(len(samples_p)), torch.ones(len(samples_q))])
    generator = torch.Generator().manual_seed(seed)
    splits = []  # (fit, validation, test) rows of each classifier: observation-major, then fold
    for _ in range(inputs.shape[0]):
        fold_of = _stratified_folds(labels, folds, generator)
        splits += [_split(fold_of, k, generator) for k in range(folds)]
    owner = torch.arange(inputs.shape[0]).repeat_interleave(folds)  # observation of each classifier
    model = _classifiers(len(splits), inputs.shape[2], generator)
    _train(model, inputs, labels, owner, splits, generator, max_epochs, patience)
    results = []
    with torch.no_grad():
        for b in range(inputs.shape[0]):
            accuracies = []
            for j in range(b * folds, (b + 1) * folds):
                test = splits[j][2]
                predictions = (model.single(j, inputs[b, test]) > 0).float()
                accuracies.append(float((predictions == labels[test]).float().mean()))
            results.append(C2STResult(
                accuracy=sum(accuracies) / folds,
                fold_accuracies=accuracies,
                num_samples=(len(samples_p), len(samples_q)),
                classifier=f"MLP 2x{10 * inputs.shape[2]} ReLU, Adam, {folds}-fold CV, early stopping",
            ))
    return results


def _stratified_folds(labels: Tensor, folds: int, generator: torch.Generator) -> Tensor:
    """Fold of each row: each class shuffled, then dealt round-robin to the folds."""
    fold_of = torch.empty(len(labels), dtype=torch.long)
    for cls in (0.0, 1.0):
        members = (labels == cls).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = torch.arange(len(members)) % folds
    return fold_of


def _split(fold_of: Tensor, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``(fit, validation, test)`` rows for fold ``k``: test is the fold, validation a random tenth of the rest."""
    train = (fold_of != k).nonzero().flatten()
    train = train[torch.randperm(len(train), generator=generator)]
    n_val = max(1, len(train) // 10)
    return train[n_val:], train[:n_val], (fold_of == k).nonzero().flatten()


def _train(
    model: _BatchedMLP,
    inputs: Tensor,
    labels: Tensor,
    owner: Tensor,
    splits: list[tuple[Tensor, Tensor, Tensor]],
    generator: torch.Generator,
    max_epochs: int,
    patience: int,
) -> None:
    """Adam on every classifier at once; each keeps its best weights by its own validation loss.

    Classifier ``j`` sees rows of observation ``owner[j]``. Fit sets can differ in size by a few
    rows; each epoch every classifier takes the same number of rows from a fresh permutation of
    its own fit set (the shortest length), so over the epochs all rows are used. A classifier
    whose patience has run out keeps being stepped with the rest, but its best weights are frozen.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    count = len(splits)
    rows_per_epoch = min(len(fit) for fit, _, _ in splits)
    best, since, best_state = [math.inf] * count, [0] * count, [model.state_of(j) for j in range(count)]
    active = [True] * count
    observation = owner[:, None]
    for _ in range(max_epochs):
        order = torch.stack([fit[torch.randperm(len(fit), generator=generator)[:rows_per_epoch]]
                             for fit, _, _ in splits])
        for i in range(0, rows_per_epoch, 128):
            rows = order[:, i : i + 128]
            logits = model(inputs[observation, rows])
            losses = F.binary_cross_entropy_with_logits(logits, labels[rows], reduction="none")
            optimizer.zero_grad()
            losses.mean(1).sum().backward()  # each classifier's gradient is that of its own mean loss
            optimizer.step()
        with torch.no_grad():
            for j in (j for j in range(count) if active[j]):
                validation = splits[j][1]
                loss = float(F.binary_cross_entropy_with_logits(model.single(j, inputs[owner[j], validation]),
                                                                labels[validation]))
                if loss < best[j] - 1e-4:
                    best[j], since[j], best_state[j] = loss, 0, model.state_of(j)
                else:
                    since[j] += 1
                    active[j] = since[j] < patience
        if not any(active):
            break
    for j in range(count):
        model.load_state_of(j, best_state[j])
