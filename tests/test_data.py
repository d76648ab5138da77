"""Bring-your-own simulations: checks, error messages and files."""

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen import DataError, ModelFileError, PriorSupportError, UniformPrior
from sbi_gen.pairs import check_observations, check_pairs


@pytest.fixture()
def box():
    return UniformPrior([0.0, 0.0], [1.0, 2.0], ["a", "b"])


def test_mismatched_lengths_are_named(box):
    with pytest.raises(DataError, match="theta has 3 rows but x has 4"):
        check_pairs(torch.rand(3, 2), torch.rand(4, 5), box)


def test_wrong_theta_width_names_the_prior_parameters(box):
    with pytest.raises(DataError, match=r"theta has 3 columns but the prior has 2 parameters \['a', 'b'\]"):
        check_pairs(torch.rand(3, 3), torch.rand(3, 5), box)


def test_nan_in_x_is_named_with_its_row(box):
    x = torch.rand(5, 4)
    x[3, 1] = float("nan")
    with pytest.raises(DataError, match=r"1 row\(s\) hold NaN or inf \(0 in theta.*first is row 3.*drop_invalid"):
        check_pairs(torch.rand(5, 2) * 0.5, x, box)


def test_theta_outside_prior_is_named(box):
    theta = torch.tensor([[0.5, 0.5], [0.5, 2.5]])
    with pytest.raises(PriorSupportError, match=r"1 row\(s\) lie outside the prior.*b=2\.5 not in \[0, 2\]"):
        check_pairs(theta, torch.rand(2, 3), box)


def test_drop_invalid_drops_and_counts(box):
    theta = torch.tensor([[0.5, 0.5], [0.5, 2.5], [0.2, 0.2], [0.1, 0.1]])
    x = torch.rand(4, 3)
    x[2, 0] = float("inf")
    kept_theta, kept_x, report = check_pairs(theta, x, box, drop_invalid=True)
    assert report == {"non_finite": 1, "outside_prior": 1}
    assert torch.equal(kept_theta, theta[[0, 3]])
    assert torch.equal(kept_x, x[[0, 3]])


def test_observation_shape_and_nan_errors():
    with pytest.raises(DataError, match=r"observations must have shape \[B, 5\] or \[5\], got \[2, 4\]"):
        check_observations(torch.zeros(2, 4), (5,))
    with pytest.raises(DataError, match="NaN or inf"):
        check_observations(torch.tensor([[0.0, float("nan")]]), (2,))
    assert check_observations(torch.zeros(5), (5,)).shape == (1, 5)


def test_npz_round_trip_keeps_metadata(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    data = sbi_gen.simulate(simulator, 50, seed=0)
    path = sbi_gen.save_simulations(tmp_path / "sims.npz", data)
    again = sbi_gen.load_simulations(path)
    assert torch.equal(again.theta, data.theta) and torch.equal(again.x, data.x)
    assert again.meta["simulator"]["name"] == "toy_gaussian"


def test_corrupt_and_incomplete_files_are_named(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="broken.npz is not a readable .npz"):
        sbi_gen.load_simulations(broken)
    partial = tmp_path / "partial.npz"
    np.savez(partial, theta=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"lacks the array\(s\) \['x'\]"):
        sbi_gen.load_simulations(partial)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, theta=np.array([object()], dtype=object), x=np.zeros(1))
    with pytest.raises(ModelFileError, match="without unpickling"):
        sbi_gen.load_simulations(pickled)


def test_hdf5_files_are_read(tmp_path):
    h5py = pytest.importorskip("h5py")
    theta, x = np.random.default_rng(0).normal(size=(20, 2)), np.random.default_rng(1).normal(size=(20, 3, 4))
    with h5py.File(tmp_path / "sims.h5", "w") as file:
        file["theta"], file["x"] = theta, x
    data = sbi_gen.load_simulations(tmp_path / "sims.h5")
    assert data.x.shape == (20, 3, 4) and data.x.dtype == torch.float32
    assert np.allclose(data.theta.numpy(), theta)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="bad.h5 is not a readable HDF5 file"):
        sbi_gen.load_simulations(tmp_path / "bad.h5")
