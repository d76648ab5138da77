"""`sbi-gen run` closes with importance-sampling refinement where the simulator has an exact likelihood."""

from __future__ import annotations

import json

import numpy as np

from sbi_gen.cli import main

ARGS = ["toy_gaussian", "--option", "dim=2", "-n", "2000", "--observations", "2", "--samples", "1000", "--sbc", "30",
        "--no-calibration", "--no-progress"]


def test_run_reports_the_raw_and_the_refined_posterior(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *ARGS, "-o", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    refinement = metrics["refinement"]
    assert refinement["untrustworthy_observations"] == [] and refinement["num_proposals"] == 10_000
    for record in refinement["per_observation"]:
        assert record["trustworthy"] and record["efficiency"] > 0.1  # a trained flow on a 2-D Gaussian
        assert np.isfinite(record["log_evidence"]) and 0 < record["log_evidence_se"] < 0.1
        assert 0.4 < record["c2st"] < 0.6  # exact samples (from weights) against the exact posterior
    refined = np.load(out / "refined.npz")
    assert refined["resampled"].shape == (1000, 2, 2) and refined["log_weights"].shape == (10_000, 2)
    assert refined["observation_index"].tolist() == [0, 1]
    printed = capsys.readouterr().out
    assert "refinement of observation 0" in printed and "Refined C2ST" in printed


def test_an_untrustworthy_refinement_is_reported_and_its_draws_withheld(tmp_path, capsys):
    out = tmp_path / "run"
    # 50 proposals can never reach the minimum ESS of 100: untrustworthy whatever the model
    assert main(["run", *ARGS, "--max-epochs", "1", "--refine-proposals", "50", "-o", str(out)]) == 0
    assert "refinement NOT trustworthy for held-out observation(s) [0, 1]" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["refinement"]["untrustworthy_observations"] == [0, 1]
    refined = np.load(out / "refined.npz")
    assert refined["resampled"].shape == (1000, 0, 2) and refined["observation_index"].tolist() == []
    assert refined["log_weights"].shape == (50, 2) and "sbc" in metrics  # diagnostics kept; the run went on


def test_no_refine_skips_it(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *ARGS, "--max-epochs", "1", "--no-refine", "-o", str(out)]) == 0
    assert "refinement" not in json.loads((out / "metrics.json").read_text())
    assert not (out / "refined.npz").exists()
