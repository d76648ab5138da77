"""The shared training loop: early stopping, best weights, resumable checkpoints."""

import pytest
import torch
from torch import nn

from sbi_gen.pairs import SimulationSet
from sbi_gen.training import TrainingConfig, train


def regression_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 3, generator=generator)
    theta = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(512, 1, generator=generator)
    return SimulationSet(theta, x)


def make_model():
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def loss_for(model):
    return lambda theta, x: ((model(x) - theta) ** 2).sum(-1)


def test_training_reduces_loss_and_keeps_the_best_weights():
    pairs = regression_problem()
    model = make_model()
    config = TrainingConfig(max_epochs=60, batch_size=32, progress=False, learning_rate=1e-2)
    history = train(model, loss_for(model), pairs, config)
    assert history.validation_loss[history.best_epoch] == min(history.validation_loss)
    assert history.best_validation_loss < 0.05 < history.validation_loss[0]


def test_early_stopping_stops():
    pairs = regression_problem()
    model = make_model()
    config = TrainingConfig(max_epochs=1000, patience=3, progress=False, learning_rate=5e-2)
    history = train(model, loss_for(model), pairs, config)
    assert history.stopped_because == "early stopping"
    assert len(history.train_loss) == history.best_epoch + 4


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    pairs = regression_problem()
    full_model = make_model()
    full = train(full_model, loss_for(full_model), pairs,
                 TrainingConfig(max_epochs=8, patience=100, progress=False))
    model = make_model()
    train(model, loss_for(model), pairs,
          TrainingConfig(max_epochs=4, patience=100, progress=False, checkpoint_dir=str(tmp_path)))
    resumed_model = make_model()
    resumed = train(resumed_model, loss_for(resumed_model), pairs,
                    TrainingConfig(max_epochs=8, patience=100, progress=False, checkpoint_dir=str(tmp_path)))
    assert len(resumed.train_loss) == 8
    assert torch.allclose(torch.tensor(resumed.train_loss), torch.tensor(full.train_loss))
    assert torch.equal(resumed_model.weight, full_model.weight)


def test_weight_average_is_kept_and_resumes_from_its_checkpoint(tmp_path):
    pairs = regression_problem()
    raw_model, averaged_model = make_model(), make_model()
    raw = train(raw_model, loss_for(raw_model), pairs, TrainingConfig(max_epochs=6, patience=100, progress=False))
    config = {"max_epochs": 6, "patience": 100, "progress": False, "ema_decay": 0.9}
    averaged = train(averaged_model, loss_for(averaged_model), pairs, TrainingConfig(**config))
    assert torch.allclose(torch.tensor(averaged.train_loss), torch.tensor(raw.train_loss))  # same raw steps
    assert not torch.equal(averaged_model.weight, raw_model.weight)  # but the average is validated and kept
    model = make_model()
    train(model, loss_for(model), pairs, TrainingConfig(**{**config, "max_epochs": 3}, checkpoint_dir=str(tmp_path)))
    resumed_model = make_model()
    resumed = train(resumed_model, loss_for(resumed_model), pairs,
                    TrainingConfig(**config, checkpoint_dir=str(tmp_path)))
    assert torch.allclose(torch.tensor(resumed.validation_loss), torch.tensor(averaged.validation_loss))
    assert torch.equal(resumed_model.weight, averaged_model.weight)


def test_weight_average_decay_is_checked():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainingConfig(ema_decay=1.0)


def test_an_in_memory_set_is_a_pair_source_with_a_fixed_split_and_fresh_epochs():
    pairs = regression_problem()
    split = {"seed": 3, "validation_fraction": 0.25}
    validation = torch.cat([t for t, _ in pairs.batches("validation", 50, epoch=0, **split)])
    again = torch.cat([t for t, _ in pairs.batches("validation", 7, epoch=5, **split)])
    assert len(validation) == 128 and torch.equal(validation, again)  # fixed by the seed alone
    epoch0 = torch.cat([t for t, _ in pairs.batches("train", 64, epoch=0, **split)])
    epoch1 = torch.cat([t for t, _ in pairs.batches("train", 64, epoch=1, **split)])
    assert len(epoch0) == 384 and not torch.equal(epoch0, epoch1)  # a new order every epoch
    assert torch.equal(epoch0.sort(0).values, epoch1.sort(0).values)  # over the same training pairs
    every = torch.cat([validation, epoch0]).sort(0).values
    assert torch.equal(every, pairs.theta.sort(0).values)  # the split is a partition


def test_train_refuses_what_is_not_a_pair_source():
    model = make_model()
    with pytest.raises(TypeError, match="PairSource"):
        train(model, loss_for(model), torch.zeros(4, 1))
