"""Wrong results never pass silently: diverged training, broken or swapped weights, untrustworthy refinement,
absent devices, altered priors, two writers of one file (each of these returned exit code 0 before)."""

from __future__ import annotations

import argparse
import json
import math
import shutil

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.cli import main
from sbi_gen.errors import DataError, DeviceError, ModelFileError, TrainingDivergedError, UntrustworthyResultError
from sbi_gen.pairs import SimulationSet
from sbi_gen.prior import GaussianPrior, prior_from_config
from sbi_gen.psis import gpd_shape, pareto_k_hat
from sbi_gen.refine import importance_sample
from sbi_gen.training import TrainingConfig, train

UNIT_PRIOR = '{"type": "uniform", "low": [0, 0], "high": [1, 1]}'


@pytest.fixture(scope="module")
def unit_pairs(tmp_path_factory):
    """1,000 pairs with theta in the unit square, as a user's own .npz."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.npz"
    generator = np.random.default_rng(0)
    theta = generator.uniform(0.05, 0.95, size=(1000, 2)).astype(np.float32)
    np.savez(path, theta=theta, x=(theta + 0.1 * generator.normal(size=theta.shape)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, unit_pairs):
    """Two small models of the same architecture trained with different seeds, and an observation file."""
    root = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        assert main(["train", "--data", str(unit_pairs), "--prior", UNIT_PRIOR, "-o", str(root / f"m{seed}"),
                     "--max-epochs", "2", "--no-progress", "--seed", str(seed),
                     "--estimator-option", "num_transforms=1", "--estimator-option", "hidden_features=16"]) == 0
    np.save(root / "obs.npy", np.full((2, 2), 0.5, dtype=np.float32))
    return root


def test_diverged_training_saves_nothing_and_exits_3(tmp_path, unit_pairs, capsys):
    out = tmp_path / "diverged"
    code = main(["train", "--data", str(unit_pairs), "--prior", UNIT_PRIOR, "-o", str(out), "--max-epochs", "3",
                 "--learning-rate", "1e10", "--no-progress"])
    assert code == 3 and not out.exists()
    assert "training diverged" in capsys.readouterr().err


def test_a_non_finite_first_epoch_is_never_kept_as_the_best():
    """A NaN validation loss in epoch 0 used to win every later comparison (x < nan is False)."""
    torch.manual_seed(0)
    module = torch.nn.Linear(1, 1)
    calls = {"n": 0}

    def loss(theta_batch, x_batch):
        calls["n"] += 1
        value = ((module(x_batch) - theta_batch) ** 2).squeeze(-1)
        return value * math.nan if not module.training and calls["n"] <= 12 else value  # epoch 0's validation

    pairs = SimulationSet(torch.randn(64, 1), torch.randn(64, 1))
    history = train(module, loss, pairs, TrainingConfig(max_epochs=4, batch_size=16, progress=False))
    assert math.isnan(history.validation_loss[0]) and history.best_epoch > 0
    assert math.isfinite(history.best_validation_loss)
    with pytest.raises(TrainingDivergedError):
        train(module, lambda a, b: ((module(b) - a) ** 2).squeeze(-1) * math.nan, pairs,
              TrainingConfig(max_epochs=2, progress=False))


def test_non_finite_samples_are_never_returned_or_written(models, tmp_path, capsys):
    estimator = sbi_gen.load_estimator(models / "m0")
    with torch.no_grad():
        next(estimator.core.parameters()).fill_(math.nan)
    with pytest.raises(UntrustworthyResultError, match="NaN or inf"):
        estimator.sample(torch.zeros(2), 10)
    broken = tmp_path / "broken"
    estimator.save(broken)
    out = tmp_path / "samples.npz"
    argv = ["sample", str(broken), "--observation", str(models / "obs.npy"), "--samples", "10", "-o", str(out)]
    assert main(argv) == 3
    assert not out.exists() and "NaN or inf" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["flipped_bytes", "tail_overwritten", "weights_of_another_model", "prior_edited",
                                    "shape_edited"])
def test_damaged_or_swapped_model_files_are_refused(models, tmp_path, damage):
    model = tmp_path / "model"
    shutil.copytree(models / "m0", model)
    weights, config_file = model / "weights.safetensors", model / "config.json"
    if damage == "flipped_bytes":
        data = bytearray(weights.read_bytes())
        for i in range(200, len(data), max(1, len(data) // 1000)):
            data[i] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "tail_overwritten":
        data = bytearray(weights.read_bytes())
        data[-4000:] = b"\xff" * 4000
        weights.write_bytes(bytes(data))
    elif damage == "weights_of_another_model":
        shutil.copy(models / "m1" / "weights.safetensors", weights)
    else:
        config = json.loads(config_file.read_text())
        if damage == "prior_edited":
            config["prior"]["high"][0] = 2.0
        else:
            config["x_shape"] = [3]
        config_file.write_text(json.dumps(config))
    expected = {"prior_edited": "prior changed", "shape_edited": "x_shape changed"}.get(damage, "weights.safetensors")
    with pytest.raises(ModelFileError, match=expected):
        sbi_gen.load_estimator(model)
    sbi_gen.load_estimator(models / "m0")  # the intact model still loads


def test_gpd_fit_recovers_known_shapes():
    """Zhang-Stephens on 20,000 exact GPD draws: the MLE's sd is about (1 + k) / sqrt(n) <= 0.014, bound 4 sd."""
    generator = torch.Generator().manual_seed(0)
    for shape in (-0.3, 0.25, 0.5, 0.9):
        u = torch.rand(20_000, generator=generator, dtype=torch.float64)
        draws = 3.0 * ((1 - u) ** (-shape) - 1) / shape  # inverse CDF, scale 3
        assert gpd_shape(draws) == pytest.approx(shape, abs=0.06)


@pytest.fixture(scope="module")
def toy_posterior():
    simulator = sbi_gen.get_simulator("toy_gaussian")
    x = sbi_gen.simulate(simulator, 1, seed=21).x
    return simulator, x, simulator.reference_posterior(x)


def test_few_proposals_are_never_called_reliable(toy_posterior):
    """With N <= 100, ESS >= 1 made ESS / N >= 1% always; the ESS floor now decides."""
    simulator, x, posterior = toy_posterior
    result = importance_sample(posterior.scaled(covariance_factor=1.5), simulator, x, 50,
                               generator=torch.Generator().manual_seed(0))
    assert result.efficiency > 0.3 and not result.trustworthy
    assert "ESS" in result.failed_checks[0] and "no reliable error" in result.diagnosis


@pytest.mark.parametrize("seed", range(3))
def test_heavy_tailed_weights_fail_pareto_k(toy_posterior, seed):
    """A proposal with 0.15x the posterior's covariance gives weights with tail shape k = 1 - 0.15 = 0.85
    (w ~ exp(z^2 (1/f - 1) / 2) under z ~ N(0, f)); k-hat must exceed the 0.7 threshold whatever the ESS says."""
    simulator, x, posterior = toy_posterior
    result = importance_sample(posterior.scaled(covariance_factor=0.15), simulator, x, 4000, min_ess=1,
                               min_efficiency=1e-6, generator=torch.Generator().manual_seed(seed))
    assert result.pareto_k > 0.7 and not result.trustworthy
    assert any("Pareto k-hat" in check for check in result.failed_checks)


def test_exact_proposal_passes_pareto_k(toy_posterior):
    simulator, x, posterior = toy_posterior
    assert pareto_k_hat(torch.zeros(4000)) == -math.inf  # equal weights: no tail at all
    result = importance_sample(posterior, simulator, x, 4000, generator=torch.Generator().manual_seed(1))
    assert result.trustworthy and result.pareto_k < 0.5


def test_an_out_of_distribution_observation_is_not_called_reliable(tmp_path, capsys):
    """The issue's case: an observation multiplied by 100 was called reliable (log Z off by 10^4 nats)."""
    model = tmp_path / "toy"
    assert main(["train", "toy_gaussian", "--option", "dim=2", "-n", "2000", "--max-epochs", "5", "--no-progress",
                 "--estimator-option", "num_transforms=2", "-o", str(model)]) == 0
    x = sbi_gen.simulate(sbi_gen.get_simulator("toy_gaussian", dim=2), 1, seed=7).x.numpy()
    np.save(tmp_path / "far.npy", 100 * x)
    out = tmp_path / "refined.npz"
    code = main(["refine", str(model), "--observation", str(tmp_path / "far.npy"), "--samples", "1000", "-o", str(out)])
    assert code == 3 and out.exists()  # the weights and diagnostics are kept for inspection
    printed = capsys.readouterr().out
    assert "NOT trustworthy" in printed and "no reliable error" in printed


#: commands that do no tensor work: plugins lists, and simulators run on the CPU by contract (their docstrings)
NOT_COMPUTING = {"plugins", "simulate"}


def test_every_computing_command_has_the_device_flag():
    from sbi_gen.cli import COMMANDS, build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    with_device = {name for name, sub in subcommands.items() if "--device" in sub._option_string_actions}
    assert with_device == set(COMMANDS) - NOT_COMPUTING


@pytest.mark.parametrize("device", ["banana", "cuda:7", "meta"])
def test_absent_or_unknown_devices_are_refused_by_every_command(models, tmp_path, device, capsys):
    from sbi_gen.cli import COMMANDS

    model, obs = str(models / "m0"), str(models / "obs.npy")
    commands = {
        "run": ["run", "-n", "100", "-o", str(tmp_path / "run")],
        "train": ["train", "toy_gaussian", "-n", "100", "-o", str(tmp_path / "train")],
        "sample": ["sample", model, "--observation", obs, "-o", str(tmp_path / "s.npz")],
        "calibrate": ["calibrate", model, "-o", str(tmp_path / "cal")],
        "refine": ["refine", model, "--observation", obs, "-o", str(tmp_path / "r.npz")],
        "plot": ["plot", model, "--observation", obs, "-o", str(tmp_path / "plots")],
        "benchmark": ["benchmark", "--quick", "--sbi", "off", "-o", str(tmp_path / "bench")],
    }
    assert set(commands) == set(COMMANDS) - NOT_COMPUTING  # a new computing command must be added here
    if device != "banana" and torch.cuda.is_available():
        pytest.skip("a GPU is present: cuda devices may exist")
    for name, argv in commands.items():
        assert main([*argv, "--device", device]) == 2, name
        assert device in capsys.readouterr().err, name
    assert not any(tmp_path.iterdir())  # nothing was created


def test_run_trains_and_samples_on_the_device_it_records(tmp_path):
    from sbi_gen.pipeline import RunConfig, run

    metrics = run(RunConfig(num_simulations=300, num_observations=1, num_sbc=20, sbc_samples=50,
                            num_posterior_samples=50, device="cpu", calibration_report=False,
                            training_options={"max_epochs": 1, "progress": False}), tmp_path / "r", quiet=True)
    assert metrics["device"] == "cpu"
    with pytest.raises(DeviceError):
        run(RunConfig(device="cuda:7" if not torch.cuda.is_available() else "banana"), tmp_path / "r2", quiet=True)
    assert not (tmp_path / "r2").exists()


def test_gaussian_priors_refuse_asymmetric_or_infinite_covariances():
    with pytest.raises(ValueError, match=r"symmetric; entry \[0\]\[1\] = 0.9 but \[1\]\[0\] = -0.9"):
        GaussianPrior([0, 0], [[1, 0.9], [-0.9, 1]])
    with pytest.raises(ValueError, match="finite"):
        GaussianPrior([0, 0], [[math.inf, 0], [0, 1]])
    with pytest.raises(DataError, match="finite"):
        prior_from_config(json.loads('{"type": "gaussian", "mean": [0, 0], "covariance": [[1e400, 0], [0, 1]]}'))
    symmetric = GaussianPrior([0, 0], [[1, 0.9], [0.9, 1]])
    assert symmetric.to_config()["covariance"] == [[1, 0.9], [0.9, 1]]


def test_a_second_writer_of_the_same_output_is_refused(tmp_path, capsys):
    from sbi_gen.locking import exclusive_output

    for out in (tmp_path / "sims.h5", tmp_path / "sims.npz"):
        with exclusive_output(out):  # as if another sbi-gen simulate were writing it
            assert main(["simulate", "toy_gaussian", "-n", "100", "-o", str(out), "--no-progress"]
                        if out.suffix == ".h5" else ["simulate", "toy_gaussian", "-n", "100", "-o", str(out)]) == 2
            assert "being written by another process" in capsys.readouterr().err
        assert not out.exists()
        assert main(["simulate", "toy_gaussian", "-n", "100", "-o", str(out), "--seed", "3"]) == 0  # lock released
        before = out.read_bytes()
        assert main(["simulate", "toy_gaussian", "-n", "100", "-o", str(out)]) == 2  # exists: refused
        assert out.read_bytes() == before


def test_an_incomplete_store_exits_non_zero(tmp_path, monkeypatch, capsys):
    from sbi_gen import executors

    real = executors.InProcessExecutor.map_unordered

    def drop_last_chunk(self, task, indices):
        yield from real(self, task, list(indices)[:-1])

    monkeypatch.setattr(executors.InProcessExecutor, "map_unordered", drop_last_chunk)
    out = tmp_path / "sims.h5"
    assert main(["simulate", "toy_gaussian", "-n", "300", "--chunk-size", "100", "-o", str(out), "--no-progress"]) == 3
    assert "incomplete (2/3 chunks)" in capsys.readouterr().err and out.exists()


def test_sample_writes_exactly_the_path_given(models, tmp_path, capsys):
    existing = tmp_path / "results.npz"
    existing.write_bytes(b"earlier results")
    argv = ["sample", str(models / "m0"), "--observation", str(models / "obs.npy"), "--samples", "5", "-o"]
    assert main([*argv, str(tmp_path / "results")]) == 2
    assert main([*argv, str(existing)]) == 2
    assert existing.read_bytes() == b"earlier results"


def test_complex_arrays_are_refused_not_truncated():
    from sbi_gen.pairs import check_pairs

    with pytest.raises(DataError, match="complex"):
        check_pairs(np.ones((3, 1)), np.ones((3, 2)) * (1 + 1j))
    with pytest.raises(DataError, match="complex"):
        check_pairs(torch.ones(3, 1, dtype=torch.complex64), np.ones((3, 2)))


def test_plugin_environment_variables_say_what_they_do(monkeypatch):
    from sbi_gen.errors import PluginError
    from sbi_gen.registry import Registry

    monkeypatch.setenv("SBI_GEN_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "toy_gaussian" in Registry().names("simulator")
    monkeypatch.setenv("SBI_GEN_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert Registry().names("simulator") == []
    monkeypatch.setenv("SBI_GEN_DISABLE_PLUGIN_AUTOLOAD", "maybe")
    with pytest.raises(PluginError, match="not a yes/no value"):
        Registry()
    monkeypatch.delenv("SBI_GEN_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("SBI_GEN_DISABLE_PLUGINS", "toy_gausian")
    with pytest.warns(RuntimeWarning, match="toy_gausian, which match"):
        assert "toy_gaussian" in Registry().names("simulator")


def test_benchmark_resume_refuses_other_settings(tmp_path):
    from sbi_gen.benchmark import SuiteConfig, run_suite

    out = tmp_path / "bench"
    out.mkdir()
    recorded = SuiteConfig(tasks=["toy_gaussian"], methods=["flow"], budgets=[1000], seed=0, num_samples=1000)
    from dataclasses import asdict

    (out / "results.json").write_text(json.dumps({"config": asdict(recorded), "cells": [], "references": {}}))
    changed = SuiteConfig(tasks=["toy_gaussian"], methods=["flow"], budgets=[1000], seed=1, num_samples=1000)
    with pytest.raises(ValueError, match="seed: recorded 0, given 1"):
        run_suite(changed, out, resume=True, log=lambda message: None)
