"""The benchmark suite: the --quick smoke run end to end, resume, failures recorded, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbi_gen.benchmark import SuiteConfig, run_suite
from sbi_gen.benchmark.suite import expand_methods, sbi_available
from sbi_gen.benchmark.tables import ratio_rows
from sbi_gen.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    code = main(["benchmark", "--quick", "--out", str(out)])
    return code, out


def test_quick_mode_runs_every_cell(quick_run):
    code, out = quick_run
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    cells = results["cells"]
    expected_methods = {"flow", "diffusion", "flow_matching"} | ({"sbi:NPE-maf"} if sbi_available() else set())
    assert {(c["task"], c["method"]) for c in cells} == {
        (t, m) for t in ("toy_gaussian", "two_moons") for m in expected_methods
    }
    for cell in cells:
        assert cell["error"] is None
        assert cell["budget"] == 1000 and cell["num_samples"] == 1000 and len(cell["c2st"]) == 2
        assert 0.4 <= cell["c2st_mean"] <= 1.0
        assert cell["train_seconds"] > 0 and cell["sample_seconds"] > 0
        assert cell["peak_rss_mb"] >= cell["rss_before_training_mb"] > 50  # a real process with torch loaded
        assert cell["jobs"] == 2 and cell["threads"] >= 1  # --quick keeps the default: two cells at a time
        assert cell["c2st_seconds"] > 0
        assert cell["cell_seconds"] > cell["train_seconds"] + cell["sample_seconds"] + cell["c2st_seconds"]
    # even a 15-epoch model on 1,000 simulations beats a prior-wide guess on the Gaussian task
    ours = [c for c in cells if c["task"] == "toy_gaussian" and not c["method"].startswith("sbi:")]
    assert min(c["c2st_mean"] for c in ours) < 0.9, [c["c2st_mean"] for c in ours]


def test_quick_mode_writes_reference_table_and_plot(quick_run):
    _, out = quick_run
    with np.load(out / "references" / "two_moons.npz") as reference:
        assert reference["samples"].shape == (1000, 2, 2) and reference["x"].shape == (2, 2)
        assert np.isfinite(reference["samples"]).all()
    table = (out / "results.md").read_text()
    assert "torch-mlp: sbi-gen's torch MLP" in table and "| two_moons | flow |" in table
    assert (out / "c2st_vs_budget.png").stat().st_size > 10_000
    if sbi_available():
        assert "| toy_gaussian | 1,000 | flow | sbi:NPE-maf |" in table


def test_resume_keeps_finished_cells_and_refuses_to_overwrite(quick_run):
    _, out = quick_run
    before = json.loads((out / "results.json").read_text())["cells"]
    assert main(["benchmark", "--quick", "--out", str(out)]) == 2  # results.json exists: not overwritten
    assert main(["benchmark", "--quick", "--out", str(out), "--resume"]) == 0  # nothing left to run
    after = json.loads((out / "results.json").read_text())["cells"]
    assert after == before


def test_a_failing_cell_is_recorded_and_the_rest_still_run(tmp_path):
    config = SuiteConfig(
        tasks=["two_moons"], methods=["flow"], budgets=[200, 300], num_observations=1, num_samples=200,
        estimator_options={"two_moons": {"flow": {"no_such_option": 1}}}, isolate=False, threads=1,
        training_options={"max_epochs": 2}, classifiers=["torch-mlp"],
    )
    results = run_suite(config, tmp_path / "bench", log=lambda message: None)
    assert len(results) == 2 and all("no_such_option" in (r["error"] or "") for r in results)
    assert "Failed cells" in (tmp_path / "bench" / "results.md").read_text()


def test_resume_can_add_methods_and_keeps_earlier_cells_and_references(tmp_path):
    common = dict(budgets=[300], num_observations=1, num_samples=200, isolate=False, threads=1,
                  training_options={"max_epochs": 2}, classifiers=["torch-mlp"])
    out = tmp_path / "bench"
    first = run_suite(SuiteConfig(tasks=["toy_gaussian"], methods=["flow"], **common), out, log=lambda m: None)
    lines = []
    grown = SuiteConfig(tasks=["toy_gaussian", "two_moons"], methods=["flow", "flow_matching"], **common)
    results = run_suite(grown, out, resume=True, log=lines.append)
    assert results[0] == first[0]  # the finished cell is kept, not rerun
    assert {(r["task"], r["method"]) for r in results} == {
        (t, m) for t in ("toy_gaussian", "two_moons") for m in ("flow", "flow_matching")}
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == ["[2/4", "[3/4", "[4/4"]
    stored = json.loads((out / "results.json").read_text())
    assert set(stored["references"]) == {"toy_gaussian", "two_moons"} and stored["references"]["toy_gaussian"]["reused"]


def test_ratio_rows_divide_ours_by_the_matching_sbi_method():
    cell = {"task": "t", "budget": 10, "c2st": [0.6], "error": None}
    results = [
        {**cell, "method": "flow", "c2st_mean": 0.6, "train_seconds": 10.0, "sample_seconds": 1.0},
        {**cell, "method": "sbi:NPE-maf", "c2st_mean": 0.75, "train_seconds": 40.0, "sample_seconds": 4.0},
    ]
    (row,) = ratio_rows(results, {"flow": ["sbi:NPE-maf", "sbi:NPE-nsf"]})
    assert row["c2st_ratio"] == pytest.approx(0.8) and row["train_time_ratio"] == pytest.approx(0.25)


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown sbi method"):
        expand_methods(["flow"], "on", ["sbi:NLE"])
    with pytest.raises(ValueError, match="budgets"):
        SuiteConfig(tasks=["two_moons"], budgets=[1])
    with pytest.raises(ValueError, match="in their own processes"):
        SuiteConfig(tasks=["two_moons"], jobs=2, isolate=False)
    with pytest.raises(ValueError, match="jobs and threads"):
        SuiteConfig(tasks=["two_moons"], jobs=0)
    assert main(["benchmark", "--tasks", "no_such_task", "--out", str(tmp_path / "b"), "--sbi", "off"]) == 2
    assert "no_such_task" in capsys.readouterr().err
    misplaced = '{"toy_gaussian": {"dim": 10}}'  # the simulator option given without "simulator_options"
    assert main(["benchmark", "--task-options", misplaced, "--out", str(tmp_path / "c"), "--sbi", "off"]) == 2
    assert "unknown key(s) ['dim']" in capsys.readouterr().err and not (tmp_path / "c").exists()
