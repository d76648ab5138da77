"""One training loop for every estimator.

The estimator supplies a module and a loss ``loss(theta_batch, x_batch) -> [batch]``
(a per-pair loss such as the negative log density); this loop does the rest:
a seeded validation split, AdamW, gradient clipping, optionally an
exponential moving average (EMA) of the weights, early stopping on the
validation loss with the best weights restored, a progress bar, and optional
checkpoints from which an interrupted fit resumes.

Pairs come from one kind of thing, a :class:`PairSource` that serves seeded
batches: a :class:`~sbi_gen.pairs.SimulationSet` in memory, or a
:class:`~sbi_gen.streaming.StorePairs` streaming a store larger than memory.
Batches are moved to the module's device as they arrive (a no-op for a set
already there), and their order depends only on the seed and the epoch, so a
checkpointed fit resumes exactly.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sbi_gen.errors import TrainingDivergedError

__all__ = ["TrainingConfig", "TrainingHistory", "PairSource", "train"]


@runtime_checkable
class PairSource(Protocol):
    """Training pairs served in batches, for data that does not fit in memory.

    ``batches("train", b, epoch=e, seed=s, validation_fraction=f)`` yields
    ``(theta [<=b, d], x [<=b, *x_shape])``, shuffled differently each epoch;
    ``"validation"`` yields the held-out pairs. The source fixes which pairs
    are held out from ``seed`` and ``validation_fraction``.
    """

    def batches(
        self, split: str, batch_size: int, *, epoch: int, seed: int, validation_fraction: float
    ) -> Iterator[tuple[Tensor, Tensor]]: ...


@dataclass
class TrainingConfig:
    """Settings of the shared training loop.

    Arguments:
        batch_size: pairs per gradient step.
        learning_rate: AdamW step size.
        weight_decay: AdamW weight decay.
        max_epochs: upper bound on passes over the training pairs.
        validation_fraction: share of pairs held out for early stopping.
        patience: epochs without validation improvement before stopping.
        lr_patience: epochs without improvement before the step size is halved
            (``None``: constant step size).
        min_learning_rate: the step size is never halved below this.
        clip_grad_norm: maximum gradient norm (``None``: no clipping).
        seed: seeds the split, the batch order and the weight initialization.
        progress: show a progress bar.
        checkpoint_dir: if set, save a checkpoint each epoch and resume from it.
        max_seconds: stop (keeping the best weights) after this much wall time.
        shuffle_buffer: when streaming pairs from a store, how many are pooled
            and shuffled at a time (``None``: 256 MB worth, at least one chunk).
        ema_decay: if set (e.g. 0.995), keep an exponential moving average of the
            parameters, ``avg <- decay * avg + (1 - decay) * w`` after every step;
            the averaged weights are the ones validated, kept as the best and
            returned (the optimizer keeps stepping the raw weights). ``None``: off.
    """

    batch_size: int = 128
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    max_epochs: int = 300
    validation_fraction: float = 0.1
    patience: int = 20
    lr_patience: int | None = 5
    min_learning_rate: float = 1e-5
    clip_grad_norm: float | None = 5.0
    seed: int = 0
    progress: bool = True
    checkpoint_dir: str | None = None
    max_seconds: float | None = None
    shuffle_buffer: int | None = None
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {self.ema_decay}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive")


@dataclass
class TrainingHistory:
    """Per-epoch mean losses and how training ended."""

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_because: str = ""
    seconds: float = 0.0

    @property
    def best_validation_loss(self) -> float:
        return self.validation_loss[self.best_epoch] if self.best_epoch >= 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _adamw(module: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW with one fused kernel over all parameters where torch has it (float tensors on CPU or CUDA).

    The default flow has ~100 small parameter tensors; with the multi-tensor ``foreach`` update
    (used before) AdamW took 2.8 ms of a 12 ms training step on two moons, fused 0.9 ms. The updates
    agree to rounding. Other devices (e.g. MPS) or non-float parameters fall back to ``foreach``.
    """
    parameters = list(module.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in parameters)
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay,
                             **({"fused": True} if fused else {"foreach": True}))


def _mean_batch_loss(module: nn.Module, loss_fn, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for theta, x in batches:
            total += float(loss_fn(theta, x).sum())
            count += len(theta)
    if count == 0:
        raise ValueError("the validation set is empty: use more pairs or a larger validation_fraction")
    return total / count


def _module_device(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _on_device(batches: Iterable[tuple[Tensor, Tensor]], device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    pin = device.type == "cuda"
    for theta, x in batches:
        if pin and theta.device.type == "cpu":  # a set already on the GPU is yielded as it is
            theta, x = theta.pin_memory(), x.pin_memory()
        yield theta.to(device, non_blocking=pin), x.to(device, non_blocking=pin)


class _WeightAverage:
    """Exponential moving average of a module's floating-point parameters (buffers are left alone)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = {name: p for name, p in module.named_parameters() if p.dtype.is_floating_point}
        self.average = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for name, p in self.params.items():
            self.average[name].lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the raw and the averaged weights in place (call twice to undo)."""
        for name, p in self.params.items():
            raw = p.detach().clone()
            p.copy_(self.average[name])
            self.average[name].copy_(raw)


def train(
    module: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    pairs: PairSource,
    config: TrainingConfig | None = None,
) -> TrainingHistory:
    """Fit ``module`` by minimizing the mean of ``loss_fn`` over the pairs.

    Arguments:
        module: holds every trainable parameter; left with the best weights.
        loss_fn: per-pair loss ``(theta [b, d], x [b, *x_shape]) -> [b]``.
        pairs: the training pairs, a :class:`PairSource` (module docstring), streamed batch by
            batch onto the module's device.
        config: loop settings.

    With ``config.ema_decay`` the module is validated, kept and returned with the
    averaged weights; between epochs it holds the raw weights being optimized.
    """
    config = config or TrainingConfig()
    start = time.perf_counter()
    if not isinstance(pairs, PairSource):
        raise TypeError(f"train needs a PairSource (e.g. a SimulationSet or a StorePairs), got {type(pairs).__name__}")
    train_batches, validation_loss = _source_batches(module, loss_fn, pairs, config)

    optimizer = _adamw(module, config)
    scheduler = None
    if config.lr_patience is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=config.lr_patience, min_lr=config.min_learning_rate
        )
    history = TrainingHistory()
    best_state = copy.deepcopy(module.state_dict())
    average = _WeightAverage(module, config.ema_decay) if config.ema_decay is not None else None
    checkpoint = Path(config.checkpoint_dir) / "checkpoint.pt" if config.checkpoint_dir else None
    first_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        first_epoch, best_state = _resume(checkpoint, module, optimizer, scheduler, history, average)

    bar = tqdm(range(first_epoch, config.max_epochs), disable=not config.progress, desc="training", unit="epoch")
    history.stopped_because = "max_epochs"
    for epoch in bar:
        module.train()
        total, count = 0.0, 0
        for theta_batch, x_batch in train_batches(epoch):
            loss = loss_fn(theta_batch, x_batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(module.parameters(), config.clip_grad_norm, foreach=True)
            optimizer.step()
            if average is not None:
                average.update()
            total += float(loss.detach()) * len(theta_batch)
            count += len(theta_batch)
        if count == 0:
            raise ValueError("the training set is empty: use more pairs or a smaller validation_fraction")
        history.train_loss.append(total / count)
        if average is not None:
            average.swap()  # validate (and keep) the averaged weights
        history.validation_loss.append(validation_loss())
        if _improves(history.validation_loss[-1], history):
            history.best_epoch = epoch
            best_state = copy.deepcopy(module.state_dict())
        if average is not None:
            average.swap()
        if scheduler is not None:
            scheduler.step(history.validation_loss[-1])
        bar.set_postfix(train=f"{history.train_loss[-1]:.3f}", val=f"{history.validation_loss[-1]:.3f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, epoch, module, optimizer, scheduler, history, best_state, average)
        if not math.isfinite(history.train_loss[-1]):
            history.stopped_because = "non-finite loss"
            break
        if epoch - history.best_epoch >= config.patience:
            history.stopped_because = "early stopping"
            break
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            history.stopped_because = "time limit"
            break
    bar.close()
    if history.best_epoch < 0:
        raise TrainingDivergedError(
            f"training diverged: no epoch reached a finite validation loss (losses {history.validation_loss[:3]} ...; "
            f"learning rate {config.learning_rate:g}); no model is kept. Lower the learning rate or check the data"
        )
    module.load_state_dict(best_state)
    module.eval()
    history.seconds = time.perf_counter() - start
    return history


def _improves(loss: float, history: TrainingHistory) -> bool:
    """Whether ``loss`` is finite and below the best so far (a NaN or inf epoch is never kept as the best)."""
    return math.isfinite(loss) and (history.best_epoch < 0 or loss < history.best_validation_loss)


def _source_batches(module, loss_fn, source: PairSource, config: TrainingConfig):
    """Streamed pairs: the source's split and per-epoch shuffle, moved to the module's device."""
    device = _module_device(module)
    split = {"seed": config.seed, "validation_fraction": config.validation_fraction}

    def train_batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        return _on_device(source.batches("train", config.batch_size, epoch=epoch, **split), device)

    def validation_loss() -> float:
        batches = source.batches("validation", 4 * config.batch_size, epoch=0, **split)
        return _mean_batch_loss(module, loss_fn, _on_device(batches, device))

    return train_batches, validation_loss


def _save_checkpoint(
    path: Path, epoch: int, module, optimizer, scheduler, history, best_state, average
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "best_state": best_state,
        "train_loss": torch.tensor(history.train_loss, dtype=torch.float64),
        "validation_loss": torch.tensor(history.validation_loss, dtype=torch.float64),
        "best_epoch": history.best_epoch,
        "ema": dict(average.average) if average is not None else {},
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _resume(path: Path, module, optimizer, scheduler, history, average) -> tuple[int, dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["module"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"]:
        scheduler.load_state_dict(state["scheduler"])
    history.train_loss = state["train_loss"].tolist()
    history.validation_loss = state["validation_loss"].tolist()
    history.best_epoch = int(state["best_epoch"])
    if average is not None:
        if not state.get("ema"):
            raise ValueError(f"{path} was written without ema_decay; resume with the same settings or start afresh")
        for name, tensor in state["ema"].items():
            average.average[name].copy_(tensor)
    return int(state["epoch"]) + 1, state["best_state"]
