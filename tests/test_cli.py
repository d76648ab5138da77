"""The `sbi-gen` command, end to end on small settings."""

import json

import numpy as np
import pytest

import sbi_gen
from sbi_gen.cli import COMMANDS, main

FAST = ["--max-epochs", "3", "--no-progress"]


def test_plugins_json_lists_builtins(capsys):
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["toy_gaussian"]["distribution"] == "sbi-gen"
    assert by_name["toy_gaussian"]["registered"]["simulators"] == ["toy_gaussian"]
    assert by_name["flow"]["registered"]["estimators"] == ["flow"]
    assert listing["error"] is None


def test_plugins_table(capsys):
    assert main(["plugins"]) == 0
    assert "simulator  toy_gaussian" in capsys.readouterr().out


def test_simulate_train_sample(tmp_path, capsys):
    sims = tmp_path / "sims.npz"
    assert main(["simulate", "toy_gaussian", "-n", "500", "-o", str(sims), "--option", "dim=2"]) == 0
    assert main(["train", "toy_gaussian", "--option", "dim=2", "--data", str(sims), "-o", str(tmp_path / "m"),
                 "--estimator-option", "num_transforms=1", *FAST]) == 0
    np.save(tmp_path / "obs.npy", np.zeros((3, 2), dtype=np.float32))
    assert main(["sample", str(tmp_path / "m"), "--observation", str(tmp_path / "obs.npy"), "--samples", "20",
                 "-o", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as archive:
        assert archive["samples"].shape == (20, 3, 2)
    assert "wrote samples [20, 3, 2]" in capsys.readouterr().out
    code = main(["refine", str(tmp_path / "m"), "--observation", str(tmp_path / "obs.npy"), "--samples", "500",
                 "-o", str(tmp_path / "r.npz")])
    assert code in (0, 3)  # 3: a briefly trained proposal may be flagged untrustworthy
    with np.load(tmp_path / "r.npz") as archive:
        assert archive["resampled"].shape == (500, 3, 2)
        assert archive["log_weights"].shape == (500, 3)
        summary = json.loads(str(archive["summary"]))
    assert len(summary) == 3 and all(s["num_proposals"] == 500 for s in summary)
    printed = capsys.readouterr().out
    assert printed.count("sample efficiency") == 3
    assert (code == 3) == ("NOT trustworthy" in printed)


def test_train_on_own_data_with_a_prior_spec(tmp_path, capsys):
    rng = np.random.default_rng(0)
    theta = rng.uniform([0, 10], [1, 20], size=(400, 2))
    x = np.c_[theta[:, 0] * 2, theta[:, 1] / 10] + rng.normal(0, 0.1, (400, 2))
    x[5, 0] = np.nan
    np.savez(tmp_path / "mine.npz", theta=theta, x=x)
    prior = '{"type": "uniform", "low": [0, 10], "high": [1, 20], "parameters": ["a", "b"]}'
    out = tmp_path / "m"
    code = main(["train", "--data", str(tmp_path / "mine.npz"), "--prior", prior, "-o", str(out), *FAST])
    assert code == 2
    assert "1 row(s) hold NaN" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    out2 = tmp_path / "m2"
    assert main(["train", "--data", str(tmp_path / "mine.npz"), "--prior", prior, "-o", str(out2), "--drop-invalid",
                 *FAST]) == 0
    assert "dropped: 1 non-finite, 0 outside the prior" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["simulate", "toy_gausian", "-n", "5", "-o", str(tmp_path / "a.npz")]) == 2
    assert "Did you mean 'toy_gaussian'" in capsys.readouterr().err
    (tmp_path / "exists.npz").write_bytes(b"keep me")
    assert main(["simulate", "toy_gaussian", "-n", "5", "-o", str(tmp_path / "exists.npz")]) == 2
    assert (tmp_path / "exists.npz").read_bytes() == b"keep me"
    assert main(["train", "--data", str(tmp_path / "a.npz"), "-o", str(tmp_path / "m")]) == 2
    assert "--data needs the prior" in capsys.readouterr().err


def test_run_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "toy_gaussian", "--option", "dim=2", "-n", "1000", "--observations", "2", "--samples", "500",
                 "--sbc", "50", "-o", str(out), *FAST])
    assert code == 0
    for name in ["run.json", "simulations.npz", "model/config.json", "model/weights.safetensors",
                 "observations.npz", "samples.npz", "metrics.json"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["c2st"]["per_observation"]) == 2
    assert 0.0 <= metrics["sbc"]["pvalue"] <= 1.0
    printed = capsys.readouterr().out
    assert "C2ST against the reference posterior" in printed and "SBC over 50 simulations" in printed
    assert main(["run", "toy_gaussian", "-o", str(out), *FAST]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sbi-gen" in capsys.readouterr().out


def test_estimator_training_defaults_apply_unless_overridden():
    from sbi_gen.cli import build_parser
    from sbi_gen.cli.common import training_options as _training_options

    estimator = sbi_gen.get_estimator("diffusion")
    args = build_parser().parse_args(["train", "toy_gaussian", "-o", "m", "--patience", "7"])
    config = estimator.training_config(**_training_options(args))
    assert config.patience == 7
    assert config.max_epochs == estimator.training_defaults["max_epochs"] != 300
    flow_config = sbi_gen.get_estimator("flow").training_config(**_training_options(args))
    assert flow_config.max_epochs == 300 and flow_config.patience == 7
