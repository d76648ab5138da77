"""Corner plots and posterior predictive checks: in every run, and from ``sbi-gen plot``.

Ranges, labels and overlays are read back from the matplotlib figures the plotting functions return, not from
the PNG files. Models are tiny (one transform, 8 hidden features, 1-2 epochs): these tests check plumbing and
the pictures' contents, not accuracy.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

import sbi_gen
from sbi_gen.cli import main
from sbi_gen.pipeline import RunConfig, run
from sbi_gen.plots import axis_label, corner_plot, plot_predictive, plot_ranges, posterior_predictive, unit_label
from sbi_gen.plots import corners as corners_module
from sbi_gen.plots.corners import COLOURS
from sbi_gen.prior import Parameter, UniformPrior

UNIT_PRIOR = UniformPrior([10.0, 500.0], [25.0, 2500.0], [Parameter("chirp_mass", "solMass", r"$\mathcal{M}_c$"),
                                                          Parameter("distance", "Mpc", "$d_L$")])


def _diagonal(fig, d: int):
    axes = np.array(fig.axes).reshape(d, d)
    return [axes[i, i] for i in range(d)], axes


def _edge_colours(ax) -> set[tuple]:
    return {tuple(np.round(patch.get_edgecolor(), 3)) for patch in ax.patches}


def _colour(name: str) -> tuple:
    return tuple(np.round(to_rgba(COLOURS[name]), 3))


@pytest.fixture(scope="module")
def toy2():
    return sbi_gen.get_simulator("toy_gaussian", dim=2)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory, toy2):
    """A tiny flow trained for 2 epochs on 300 toy pairs, saved with its simulator; and one saved without."""
    root = tmp_path_factory.mktemp("plot_models")
    data = sbi_gen.simulate(toy2, 300, seed=0)
    estimator = sbi_gen.get_estimator("flow", num_transforms=1, hidden_features=8)
    estimator.fit(data, prior=toy2.prior, max_epochs=2, progress=False)
    estimator.save(root / "anonymous")  # no simulator recorded
    estimator.metadata["simulator"] = toy2.describe()
    estimator.save(root / "model")
    observed = sbi_gen.simulate(toy2, 2, seed=5)
    np.savez(root / "observations.npz", x=observed.x.numpy(), theta_true=observed.theta.numpy())
    np.save(root / "wrong_shape.npy", np.zeros((2, 3), dtype=np.float32))
    return root


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A tiny ``run`` of the toy Gaussian (d = 2), recording every corner figure it draws."""
    out = tmp_path_factory.mktemp("plot_run") / "run"
    drawn = []
    original = corners_module.corner_plot

    def recording(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn.append((args, kwargs, fig))
        return fig

    corners_module.corner_plot = recording
    try:
        metrics = run(RunConfig(simulator_options={"dim": 2}, num_simulations=300, num_observations=2,
                                num_posterior_samples=500, num_sbc=20, sbc_samples=50, calibration_report=False,
                                estimator_options={"num_transforms": 1, "hidden_features": 8},
                                training_options={"max_epochs": 1, "progress": False}), out, quiet=True)
    finally:
        corners_module.corner_plot = original
    return out, metrics, drawn


def test_a_run_writes_a_corner_plot_and_a_predictive_check_per_observation(toy_run):
    out, metrics, drawn = toy_run
    for kind in ("corner", "predictive"):
        files = [f"{kind}/observation_{b}.png" for b in range(2)]
        assert metrics["plots"][kind] == files
        assert all((out / f).stat().st_size > 10_000 for f in files)
    assert json.loads((out / "metrics.json").read_text())["plots"] == metrics["plots"]
    assert len(metrics["plots"]["predictive_outside_90_percent"]) == 2
    assert "plots_s" in metrics["timings"]
    theta_true = np.load(out / "observations.npz")["theta_true"]
    assert len(drawn) == 2
    for b, (_, kwargs, fig) in enumerate(drawn):
        diagonal, _ = _diagonal(fig, 2)
        for j, ax in enumerate(diagonal):  # the plotted ranges contain the truth
            low, high = ax.get_xlim()
            assert low < theta_true[b, j] < high
        # toy_gaussian has an analytic posterior: it is overlaid in its own colour
        assert kwargs["reference"] is not None and _colour("reference") in _edge_colours(diagonal[0])


def test_corner_plot_marks_the_truth_labels_units_and_overlays_the_reference_and_refined():
    rng = np.random.default_rng(0)
    samples = np.column_stack([rng.normal(15, 0.5, 4000), rng.normal(1000, 50, 4000)])
    reference = samples + rng.normal(0, 0.1, samples.shape)
    refined = samples[:1000]
    truth = np.array([21.0, 1500.0])  # far in the tails: the ranges must still contain it
    fig = corner_plot(samples, UNIT_PRIOR, truth, reference=reference, refined=refined, name="flow", title="obs 0")
    diagonal, axes = _diagonal(fig, 2)
    for j, ax in enumerate(diagonal):
        low, high = ax.get_xlim()
        assert low < truth[j] < high
        assert UNIT_PRIOR.low[j] <= low and high <= UNIT_PRIOR.high[j]  # clipped to the support
    assert axes[1, 0].get_ylim()[0] < truth[1] < axes[1, 0].get_ylim()[1]
    assert axes[1, 0].get_xlabel() == r"$\mathcal{M}_c$ [$\mathrm{M_{\odot}}$]"
    assert axes[1, 1].get_xlabel() == r"$d_L$ [$\mathrm{Mpc}$]" == axes[1, 0].get_ylabel()
    assert _edge_colours(diagonal[0]) == {_colour("posterior"), _colour("reference"), _colour("refined")}
    truth_lines = [line for line in diagonal[0].lines if np.allclose(line.get_xdata(), truth[0])]
    assert truth_lines and to_rgba(truth_lines[0].get_color()) == to_rgba(COLOURS["truth"])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["flow", "reference posterior", "IS-refined posterior", "true parameters"]
    assert fig.legends[0].get_title().get_text() == "obs 0"
    assert diagonal[0].get_title() == r"$\mathcal{M}_c$ = $14.98^{+0.51}_{-0.49}$"  # median, 68% interval


def test_a_periodic_parameter_is_drawn_on_its_period():
    gw = sbi_gen.get_simulator("gw")
    phase = gw.prior.names.index("coalescence_phase")
    assert gw.prior.parameters[phase].period == pytest.approx(2 * math.pi)
    samples = gw.prior.sample(2000, torch.Generator().manual_seed(0)).numpy()
    samples[:, phase] = np.random.default_rng(1).normal(0.0, 0.3, 2000)  # straddles 0 = 2 pi: wrapped
    fig = corner_plot(samples, gw.prior, samples[0])
    diagonal, axes = _diagonal(fig, gw.prior.dim)
    assert diagonal[phase].get_xlim() == pytest.approx((0.0, 2 * math.pi))
    assert axes[phase, 0].get_ylim() == pytest.approx((0.0, 2 * math.pi))
    assert axes[-1, phase].get_xlabel() == r"$\phi_c$ [$\mathrm{rad}$]"
    # a parameter on the line is not wrapped; the period survives a prior's JSON round trip
    assert plot_ranges(gw.prior, [samples])[0][1] <= 25.0
    again = sbi_gen.prior_from_config(json.loads(json.dumps(gw.prior.to_config())))
    assert again.parameters[phase].period == pytest.approx(2 * math.pi) and again.parameters[0].period is None
    assert "period" not in UNIT_PRIOR.to_config()["parameters"][0]
    with pytest.raises(ValueError, match="period must be a finite number > 0"):
        Parameter("phase", "rad", period=-1.0)


def test_axis_labels_carry_astropy_units_and_one_parameter_is_drawn_too():
    assert axis_label(Parameter("q")) == "q"
    assert axis_label(Parameter("k", "kJ / mol", "$k$")) == r"$k$ [$\mathrm{kJ\,mol^{-1}}$]"
    assert unit_label("") == ""
    prior = UniformPrior([0.0], [1.0], [Parameter("v", "m / s", "$v$")])
    fig = corner_plot(np.linspace(0.2, 0.4, 300)[:, None], prior, [0.9], reference=np.full((10, 1), 0.3))
    assert len(fig.axes) == 1 and fig.axes[0].get_xlim()[0] < 0.9 < fig.axes[0].get_xlim()[1] <= 1.0
    assert fig.axes[0].get_xlabel() == r"$v$ [$\mathrm{m\,s^{-1}}$]"


def test_the_predictive_band_of_vector_data_has_one_interval_per_feature(toy2):
    theta = toy2.prior.sample(1, torch.Generator().manual_seed(0))
    x = toy2.simulate(theta, torch.Generator().manual_seed(1))[0]
    draws = toy2.reference_posterior(x[None]).sample(300, torch.Generator().manual_seed(2))[:, 0]
    check = posterior_predictive(toy2, draws, x, torch.Generator().manual_seed(3))
    assert check.kind == "features" and check.draws.shape == (300, 2) and check.observed.shape == (2,)
    assert check.band(0.9).shape == (2, 2) and check.band(0.5).shape == (2, 2)
    assert np.all(check.band(0.9)[0] < check.band(0.5)[0]) and 0.0 <= check.outside_fraction <= 1.0
    fig = plot_predictive(check, "observation 0")
    assert len(fig.axes[0].patches) == 4  # a 50% and a 90% box per feature
    with pytest.raises(ValueError, match="shape"):
        posterior_predictive(toy2, draws, torch.zeros(3))


def test_the_gw_predictive_check_compares_whitened_data_with_posterior_waveforms():
    gw = sbi_gen.get_simulator("gw")
    theta = torch.tensor([[15.0, 0.8, 600.0, 1.0, 0.0]])
    x = gw.simulate(theta, torch.Generator().manual_seed(0))[0]
    draws = theta.repeat(20, 1) + torch.tensor([0.05, 0.0, 5.0, 0.0, 0.0]) * torch.randn(20, 5)
    check = posterior_predictive(gw, draws, x)
    assert check.kind == "whitened_strain" and check.detectors == ("detector 0",)
    assert check.observed.shape == (1, 4096) and check.draws.shape == (20, 1, 4096)
    assert check.band(0.9).shape == (2, 1, 4096) and check.draws_amplitude.shape == (20, 1, gw.num_bins)
    start, stop = check.window
    assert start < 0.0 < stop <= 0.2  # the merger, at t_c = 0 s, is in view
    residual = check.observed - posterior_predictive(gw, theta, x).draws[0]  # the noise, whitened
    assert residual.var() == pytest.approx(1.0, abs=0.1)
    fig = plot_predictive(check, "observation 0")
    assert fig.axes[1].get_xlim() == pytest.approx(check.window)


def test_plot_on_a_saved_model_writes_corner_and_predictive_plots(toy_model, tmp_path, capsys):
    out = tmp_path / "plots"
    argv = ["plot", str(toy_model / "model"), "--observation", str(toy_model / "observations.npz"), "--samples",
            "400", "--predictive", "--predictive-draws", "50", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "true parameters" in printed and "reference posterior" in printed
    assert sorted(p.name for p in (out / "corner").iterdir()) == ["observation_0.png", "observation_1.png"]
    assert sorted(p.name for p in (out / "predictive").iterdir()) == ["observation_0.png", "observation_1.png"]


def test_plot_on_a_run_directory_uses_its_observations_and_samples(toy_run, tmp_path, capsys):
    out_run, _, _ = toy_run
    resampled = np.load(out_run / "samples.npz")["samples"][:200]
    np.savez(tmp_path / "refined.npz", resampled=resampled)
    assert main(["plot", str(out_run), "--refined", str(tmp_path / "refined.npz"), "-o", str(tmp_path / "p")]) == 0
    assert "of 500 samples each" in capsys.readouterr().out  # the run's own samples
    assert len(list((tmp_path / "p" / "corner").iterdir())) == 2 and not (tmp_path / "p" / "predictive").exists()


def _fails_with(argv, capsys, *names) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, err


def test_bad_plot_arguments_are_named_and_nothing_is_written(toy_model, toy_run, tmp_path, capsys):
    model, obs, out = str(toy_model / "model"), str(toy_model / "observations.npz"), str(tmp_path / "p")
    _fails_with(["plot", model, "--observation", str(toy_model / "wrong_shape.npy"), "-o", out], capsys,
                "--observation", "wrong_shape.npy")
    _fails_with(["plot", str(toy_model / "anonymous"), "--observation", obs, "--predictive", "-o", out], capsys,
                "--predictive", "records no simulator")
    _fails_with(["plot", model, "-o", out], capsys, "--observation is needed")
    _fails_with(["plot", str(tmp_path), "--observation", obs, "-o", out], capsys, "MODEL_OR_RUN", str(tmp_path))
    np.save(tmp_path / "truth.npy", np.zeros((2, 3)))
    _fails_with(["plot", model, "--observation", obs, "--truth", str(tmp_path / "truth.npy"), "-o", out], capsys,
                "--truth", "truth.npy", "[2, 2]")
    np.savez(tmp_path / "refined.npz", resampled=np.zeros((10, 3, 2)))
    _fails_with(["plot", model, "--observation", obs, "--refined", str(tmp_path / "refined.npz"), "-o", out],
                capsys, "--refined", "refined.npz")
    _fails_with(["plot", model, "--observation", obs, "--simulator", "two_moons", "--option", "nope=1", "-o", out],
                capsys, "nope")
    _fails_with(["plot", model, "--observation", obs, "--simulator", "slcp", "-o", out], capsys,
                "--simulator slcp", "do not match the model's theta [2]")
    _fails_with(["plot", str(toy_run[0]), "-o", str(toy_run[0])], capsys, "not empty")
    assert not (tmp_path / "p").exists()
