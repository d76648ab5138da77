"""An observation the model was not trained for is refused with a message that says what differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.cli import main
from sbi_gen.errors import DataError
from sbi_gen.pairs import check_observations


def _observation(name: str, **options) -> torch.Tensor:
    simulator = sbi_gen.get_simulator(name, **options)
    return simulator.simulate(simulator.prior.sample(1, torch.Generator().manual_seed(0)), torch.Generator())


def test_another_frequency_grid_or_detector_count_is_named():
    trained = sbi_gen.get_simulator("gw").describe()
    shape = tuple(trained["x_shape"])
    with pytest.raises(DataError, match=r"945 frequency bin\(s\) where the model has 1889.*'gw' with .*duration=8.0"):
        check_observations(_observation("gw", duration=4.0), shape, trained)
    with pytest.raises(DataError, match=r"2 detector\(s\) where the model has 1"):
        check_observations(_observation("gw_network"), shape, trained)
    with pytest.raises(DataError, match=r"got \[1, 1, 2, 945\]$"):  # without a description: the shapes alone
        check_observations(_observation("gw", duration=4.0), shape)


def test_sample_refuses_an_observation_of_another_grid(tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "gw", "-n", "200", "--max-epochs", "1", "--no-progress", "-o", str(model)]) == 0
    np.save(tmp_path / "short.npy", _observation("gw", f_max=128.0).numpy())
    assert main(["sample", str(model), "--observation", str(tmp_path / "short.npy"),
                 "-o", str(tmp_path / "s.npz")]) == 2
    error = capsys.readouterr().err
    assert "short.npy" in error and "865 frequency bin(s) where the model has 1889" in error and "f_max=256.0" in error
    assert not (tmp_path / "s.npz").exists()
