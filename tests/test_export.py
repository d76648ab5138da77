"""Posterior draws as an ArviZ InferenceData (netCDF): what ArviZ reads back is what we sampled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.cli import main

arviz_base = pytest.importorskip("arviz_base", reason="the export extra is not installed")
xarray = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    estimator = sbi_gen.get_estimator("flow", num_transforms=1, hidden_features=8)
    estimator.fit(sbi_gen.simulate(simulator, 400, seed=0), prior=simulator.prior, max_epochs=2, progress=False)
    estimator.metadata["simulator"] = simulator.describe()
    estimator.save(folder / "model")
    np.save(folder / "obs.npy", sbi_gen.simulate(simulator, 3, seed=1).x.numpy())
    return folder


def test_sample_as_netcdf_holds_the_npz_draws_with_units_and_observations(model, capsys):
    argv = ["sample", str(model / "model"), "--observation", str(model / "obs.npy"), "--samples", "300", "--seed", "4"]
    assert main([*argv, "-o", str(model / "s.npz")]) == 0
    assert main([*argv, "-o", str(model / "s.nc")]) == 0
    ours = np.load(model / "s.npz")["samples"]
    tree = xarray.open_datatree(model / "s.nc", engine="h5netcdf")
    names = list(np.load(model / "s.npz")["parameters"])
    pooled = arviz_base.extract(tree, group="posterior")  # ArviZ's own reader pools chains and draws
    assert dict(pooled.sizes) == {"observation": 3, "sample": 300}
    assert dict(tree["posterior"].sizes) == {"chain": 1, "draw": 300, "observation": 3}
    for i, name in enumerate(names):
        # float32 draws are stored exactly as float64, so both means sum the same 300 numbers in float64:
        # they differ by at most summation-order rounding, 300 * 2^-52 * max|draw|
        draws = ours[:, :, i].astype(np.float64)
        for means in (tree["posterior"][name].mean(("chain", "draw")).values, pooled[name].mean("sample").values):
            np.testing.assert_allclose(means, draws.mean(0), rtol=0, atol=300 * 2.0**-52 * np.abs(draws).max())
        assert "unit" in tree["posterior"][name].attrs
    np.testing.assert_array_equal(tree["observed_data"]["x"].values, np.load(model / "obs.npy"))


def test_refine_as_netcdf_carries_the_weights_and_the_evidence(model, capsys):
    code = main(["refine", str(model / "model"), "--observation", str(model / "obs.npy"), "--samples", "400",
                 "-o", str(model / "r.nc")])
    assert code in (0, 3)  # 3: a refinement the diagnostics do not trust is still written, with its diagnosis
    tree = xarray.open_datatree(model / "r.nc", engine="h5netcdf")
    assert dict(tree["sample_stats"].sizes) == {"chain": 1, "draw": 400, "observation": 3}
    log_z = tree["evidence"]["log_evidence"].values
    assert log_z.shape == (3,) and np.isfinite(log_z).all()
    errors = tree["evidence"]["log_evidence_error"].values
    trusted = json.loads(tree.attrs["trustworthy"])
    assert all(math.isnan(e) != t for e, t in zip(errors, trusted))  # an untrusted error is never a number


def test_format_and_suffix_must_agree(model, capsys):
    argv = ["sample", str(model / "model"), "--observation", str(model / "obs.npy"), "--format", "netcdf"]
    assert main([*argv, "-o", str(model / "wrong.npz")]) == 2
    assert "must be a .nc file" in capsys.readouterr().err
    assert not (model / "wrong.npz").exists()


def test_the_inference_data_is_built_from_samples_and_parameters():
    from sbi_gen.export import to_inference_data

    prior = sbi_gen.get_simulator("toy_gaussian", dim=2).prior
    samples = torch.randn(50, 4, 2)
    tree = to_inference_data(samples, prior.parameters, theta_true=torch.zeros(4, 2))
    assert tree["posterior"][prior.names[1]].shape == (1, 50, 4)
    assert np.array_equal(tree["true_parameters"][prior.names[0]].values, np.zeros(4))
    with pytest.raises(sbi_gen.DataError, match=r"\[n, B, 2\]"):
        to_inference_data(samples[..., :1], prior.parameters)


def test_bilby_result_files_read_back_with_bilby(model, capsys):
    bilby = pytest.importorskip("bilby")
    argv = ["sample", str(model / "model"), "--observation", str(model / "obs.npy"), "--samples", "300", "--seed", "4"]
    assert main([*argv, "--format", "bilby", "-o", str(model / "bilby")]) == 0
    assert main([*argv, "-o", str(model / "for_bilby.npz")]) == 0
    ours = np.load(model / "for_bilby.npz")["samples"]
    names = sbi_gen.load_estimator(model / "model").prior.names
    for b in range(3):
        result = bilby.core.result.read_in_result(str(model / "bilby" / f"observation_{b}_result.json"))
        assert list(result.posterior.columns) == names and len(result.posterior) == 300
        # the same seed gives the same draws; float32 values are written to JSON and read back exactly
        np.testing.assert_array_equal(result.posterior[names].to_numpy(), ours[:, b].astype(np.float64))
    code = main(["refine", str(model / "model"), "--observation", str(model / "obs.npy"), "--samples", "400",
                 "--format", "bilby", "-o", str(model / "bilby_refined")])
    assert code in (0, 3)
    refined = bilby.core.result.read_in_result(str(model / "bilby_refined" / "observation_0_result.json"))
    assert math.isfinite(refined.log_evidence) and "importance_sampling" in refined.meta_data
    assert main([*argv, "--format", "bilby", "-o", str(model / "bilby")]) == 2  # never into a non-empty folder
