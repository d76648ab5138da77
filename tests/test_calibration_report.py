"""The calibration suite on the toy Gaussian's exact posterior and deliberately wrong copies of it."""

import json

import matplotlib.image
import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.calibration import (
    REPORT_SCHEMA,
    calibrate,
    calibrate_estimator,
    validate,
    write_report,
)
from sbi_gen.calibration.bands import ecdf_at, ecdf_pvalue, simultaneous_ecdf_band
from sbi_gen.calibration.plots import plot_sbc_ranks
from sbi_gen.calibration.report import PosteriorDraws, calibrate_samples
from sbi_gen.calibration.schema import SchemaError
from sbi_gen.calibration.verdict import combine_labels
from sbi_gen.cli import main


@pytest.fixture(scope="module")
def simulator():
    return sbi_gen.get_simulator("toy_gaussian", dim=3)


def wrong(simulator, case):
    """Posterior factory: the exact posterior, or one shrunk, inflated or shifted by one posterior sd."""
    sd = simulator.posterior_covariance.diagonal().sqrt()
    options = {"exact": {}, "shrunk": {"covariance_factor": 0.25}, "inflated": {"covariance_factor": 4.0},
               "shifted": {"mean_shift": sd}}[case]
    return lambda x: simulator.reference_posterior(x).scaled(**options)


@pytest.fixture(scope="module")
def exact_report(simulator):
    return calibrate(wrong(simulator, "exact"), simulator, 300, 300, seed=0, c2st_observations=2)


def test_exact_posterior_is_calibrated_by_every_diagnostic(exact_report):
    verdict = exact_report.verdict
    assert set(verdict.per_diagnostic) == {"sbc", "coverage", "tarp", "reference_c2st", "data_averaged_posterior"}
    assert set(verdict.per_diagnostic.values()) == {"calibrated"}
    assert set(verdict.per_parameter.values()) == {"calibrated"}
    assert verdict.overall == "calibrated"


@pytest.mark.parametrize("case, expected", [("shrunk", "overconfident"), ("inflated", "underconfident"),
                                            ("shifted", "biased")])
def test_miscalibration_is_named(simulator, case, expected):
    report = calibrate(wrong(simulator, case), simulator, 300, 300, seed=0, c2st_observations=1)
    verdict = report.verdict
    assert verdict.overall == expected
    assert verdict.per_diagnostic["sbc"] == expected
    assert set(verdict.per_parameter.values()) == {expected}
    for diagnostic in ("coverage", "tarp"):
        assert verdict.per_diagnostic[diagnostic] != "calibrated", diagnostic
        if case != "shifted":  # HPD regions and TARP see a shift as lost coverage, not as a direction
            assert verdict.per_diagnostic[diagnostic] == expected, diagnostic
    # the statistics behind the labels point the right way
    if case == "shrunk":
        assert report.coverage.area < 0 and report.tarp.atc < 0
    if case == "inflated":
        assert report.coverage.area > 0 and report.tarp.atc > 0
    if case == "shifted":  # posterior above the truth: low ranks
        assert all(c.rank_mean_ci[1] < 0.5 for c in report.sbc.parameters)


def test_false_alarm_rate_of_the_overall_verdict(simulator):
    calibrated = sum(
        calibrate(wrong(simulator, "exact"), simulator, 150, 150, seed=seed, c2st_observations=1).verdict.overall
        == "calibrated"
        for seed in range(20)
    )
    assert calibrated >= 18


def test_report_files_schema_and_plots(exact_report, tmp_path):
    written = write_report(exact_report, tmp_path / "report")
    names = {path.name for path in written}
    assert {"calibration.json", "calibration.md", "calibration.schema.json", "sbc_ranks.png", "sbc_ecdf.png",
            "coverage.png", "tarp.png"} <= names
    data = json.loads((tmp_path / "report" / "calibration.json").read_text())
    schema = json.loads((tmp_path / "report" / "calibration.schema.json").read_text())
    validate(data, schema)
    try:
        import jsonschema
    except ImportError:
        pass
    else:
        jsonschema.validate(data, schema)
    broken = {**data, "verdict": {**data["verdict"], "overall": "fine"}}
    with pytest.raises(SchemaError, match="overall"):
        validate(broken, REPORT_SCHEMA)
    for path in written:
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, path.name
    markdown = (tmp_path / "report" / "calibration.md").read_text()
    assert "**Overall: calibrated**" in markdown and "![tarp.png](tarp.png)" in markdown
    assert r"$\theta_{0}$" in markdown


class SamplesOnly:
    """A posterior without densities, like a sample-only estimator."""

    def __init__(self, posterior):
        self.posterior = posterior

    def sample(self, n, generator=None):
        return self.posterior.sample(n, generator)

    def log_prob(self, theta):
        raise NotImplementedError("this estimator has no log_prob")


def test_posterior_without_log_prob_still_gets_sbc_tarp_and_c2st(simulator):
    report = calibrate(lambda x: SamplesOnly(simulator.reference_posterior(x)), simulator, 200, 200,
                       c2st_observations=1)
    assert report.coverage is None
    assert "no log_prob" in report.verdict.skipped["coverage"]
    assert any("coverage skipped" in note for note in report.notes)
    assert {"sbc", "tarp", "reference_c2st", "data_averaged_posterior"} == set(report.verdict.per_diagnostic)
    assert report.verdict.overall == "calibrated"


def test_skipped_reference_c2st_says_why(simulator):
    report = calibrate(simulator.reference_posterior, simulator, 100, 100, c2st_observations=0)
    assert report.verdict.skipped["reference_c2st"] == (
        "C2ST skipped: c2st_observations = 0 (the simulator has a reference posterior)")


def test_plots_carry_parameter_names_and_units():
    torch.manual_seed(0)
    theta = torch.randn(200, 2)
    samples = theta + torch.randn(300, 200, 2)  # a wide but valid-shaped posterior; only the plot matters here
    params = [sbi_gen.Parameter("mass", "kg", "m"), sbi_gen.Parameter("speed", "m / s", "v")]
    report = calibrate_samples(PosteriorDraws(samples), theta, params)
    titles = [ax.get_title() for ax in plot_sbc_ranks(report).axes if ax.get_visible()]
    assert titles[0].startswith("m [kg]") and titles[1].startswith("v [m / s]")


def test_simultaneous_band_holds_its_level_and_detects_skew():
    band = simultaneous_ecdf_band(200, 101, level=0.95)
    rng = np.random.default_rng(0)
    inside = [
        bool(((e >= band.lower) & (e <= band.upper)).all())
        for e in (ecdf_at(rng.integers(0, 101, 200), band) for _ in range(400))
    ]
    assert 0.92 <= np.mean(inside) <= 0.98
    skewed = np.minimum(rng.integers(0, 101, 200), rng.integers(0, 101, 200))
    assert ecdf_pvalue(skewed, band) < 1e-3


def test_combine_labels():
    assert combine_labels(["calibrated", "calibrated"]) == "calibrated"
    assert combine_labels(["overconfident", "biased"]) == "biased"
    assert combine_labels(["overconfident", "overconfident", "underconfident"]) == "overconfident"
    assert combine_labels(["overconfident", "underconfident"]) == "miscalibrated"
    with pytest.raises(ValueError):
        combine_labels(["great"])


def test_cli_calibrate(small_flow, tmp_path, capsys):
    small_flow.save(tmp_path / "model")
    assert main(["calibrate", str(tmp_path / "model"), "-n", "60", "--samples", "60"]) == 2
    assert "--simulator" in capsys.readouterr().err
    out = tmp_path / "report"
    assert main(["calibrate", str(tmp_path / "model"), "-n", "60", "--samples", "60", "--simulator", "toy_gaussian",
                 "--option", "dim=3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "calibration over 60 test pairs x 60 samples:" in printed and "theta_0" in printed
    validate(json.loads((out / "calibration.json").read_text()), REPORT_SCHEMA)
    assert (out / "coverage.png").is_file()
    swept = tmp_path / "swept"
    assert main(["calibrate", str(tmp_path / "model"), "-n", "40", "--samples", "40", "--simulator", "toy_gaussian",
                 "--option", "dim=3", "-o", str(swept), "--budgets", "100,200"]) == 0
    assert "budget 200:" in capsys.readouterr().out
    assert [p["budget"] for p in json.loads((swept / "budgets.json").read_text())["points"]] == [100, 200]


def test_cli_calibrate_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", "--help"])
    assert exit_info.value.code == 0
    assert "--simulations" in capsys.readouterr().out


@pytest.mark.slow
def test_trained_flow_on_the_toy_gaussian_is_calibrated(trained_toy_flow):
    simulator, estimator = trained_toy_flow  # the default flow, 10,000 simulations (tests/conftest.py)
    report = calibrate_estimator(estimator, simulator, num_simulations=300, num_samples=300, seed=0)
    assert report.verdict.overall == "calibrated", report.verdict.per_diagnostic


def test_budget_sweep_shows_accuracy_improving_with_budget(tmp_path):
    from sbi_gen.calibration.budgets import budget_sweep, parse_budgets, write_budget_sweep

    assert parse_budgets("5e1,2e3") == [50, 2000]
    with pytest.raises(ValueError, match="--budgets"):
        parse_budgets("many")
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    sweep = budget_sweep(
        lambda: sbi_gen.get_estimator("flow", num_transforms=2, hidden_features=32), simulator, [50, 2000],
        num_simulations=100, num_samples=200, training_options={"max_epochs": 30, "progress": False},
    )
    small, large = sweep.points
    assert (small.budget, large.budget) == (50, 2000)
    assert large.reference_c2st < small.reference_c2st
    assert abs(large.coverage_area) < abs(small.coverage_area) + 0.05
    paths = write_budget_sweep(sweep, tmp_path)
    assert json.loads(paths[0].read_text())["points"][1]["budget"] == 2000
    assert matplotlib.image.imread(paths[1]).shape[0] > 0
