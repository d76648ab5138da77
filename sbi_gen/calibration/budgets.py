"""Calibration as a function of the simulation budget: retrain, recalibrate, plot.

For each budget ``n`` the estimator (same plugin, same options) is trained
afresh on ``n`` simulations and the full calibration report is computed on
the same held-out test pairs, so the curves compare like with like: the
expected-coverage area (negative: overconfident, positive: underconfident,
0: calibrated; Hermans et al. 2022, arXiv:2110.06581), the TARP ATC and, where
the simulator has a reference posterior, the C2ST accuracy against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from sbi_gen.calibration.report import calibrate_estimator
from sbi_gen.seeding import RandomStreams
from sbi_gen.simulation import simulate

__all__ = ["BudgetPoint", "BudgetSweep", "budget_sweep", "parse_budgets", "write_budget_sweep"]


@dataclass
class BudgetPoint:
    """The calibration summary of one estimator trained on ``budget`` simulations."""

    budget: int
    verdict: str
    coverage_area: float | None
    coverage_area_ci: list[float] | None
    tarp_atc: float
    tarp_atc_ci: list[float]
    reference_c2st: float | None
    training_epochs: int


@dataclass
class BudgetSweep:
    """One :class:`BudgetPoint` per budget, with the settings they share."""

    estimator: str
    simulator: str
    settings: dict[str, Any]
    points: list[BudgetPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def parse_budgets(text: str) -> list[int]:
    """``"1e3,1e4,1e5"`` -> ``[1000, 10000, 100000]`` (positive, increasing order kept as given)."""
    try:
        budgets = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--budgets takes comma-separated numbers such as 1e3,1e4, got {text!r}") from None
    if not budgets or min(budgets) < 2:
        raise ValueError(f"every budget must be at least 2 simulations, got {text!r}")
    return budgets


def budget_sweep(
    make_estimator, simulator, budgets: list[int], *, num_simulations: int = 1000, num_samples: int = 1000,
    seed: int = 0, training_options: dict[str, Any] | None = None, alpha: float = 0.01,
) -> BudgetSweep:
    """Train ``make_estimator()`` on each budget and calibrate it on one shared test set.

    Arguments:
        make_estimator: returns a new, unfitted estimator (same plugin and options each time).
        simulator: the simulator that makes training and test pairs.
        budgets: numbers of training simulations.
        num_simulations, num_samples: test pairs and posterior draws per pair of each report.
        seed: seeds every step from its own stream of :class:`~sbi_gen.seeding.RandomStreams`:
            the test pairs (``test_pairs``, the same as :func:`calibrate`'s for this seed), each
            budget's training pairs (``simulate``), training (``train``) and report (``calibrate``).
        training_options: :class:`~sbi_gen.training.TrainingConfig` overrides.
    """
    streams = RandomStreams(seed)
    test_set = simulate(simulator, num_simulations, seed=streams.seed("test_pairs"))
    sweep = BudgetSweep(
        estimator=make_estimator().name, simulator=simulator.name,
        settings={"num_simulations": num_simulations, "num_samples": num_samples, "seed": seed, "alpha": alpha,
                  "training_options": dict(training_options or {})},
    )
    for budget in budgets:
        estimator = make_estimator()
        data = simulate(simulator, budget, seed=streams.seed("simulate"))
        training = estimator.training_config(**{"seed": streams.seed("train"), **(training_options or {})})
        history = estimator.fit(data, prior=simulator.prior, training=training)
        report = calibrate_estimator(estimator, simulator, num_simulations=num_simulations, num_samples=num_samples,
                                     seed=streams.seed("calibrate"), alpha=alpha, test_set=test_set)
        coverage = report.coverage
        sweep.points.append(BudgetPoint(
            budget=budget,
            verdict=report.verdict.overall,
            coverage_area=coverage.area if coverage else None,
            coverage_area_ci=list(coverage.area_ci) if coverage else None,
            tarp_atc=report.tarp.atc,
            tarp_atc_ci=list(report.tarp.atc_ci),
            reference_c2st=report.reference_c2st.accuracy if report.reference_c2st else None,
            training_epochs=len(history.train_loss),
        ))
    return sweep


def write_budget_sweep(sweep: BudgetSweep, out: str | Path) -> list[Path]:
    """Write ``budgets.json`` and ``budgets.png`` (coverage area, ATC and C2ST versus budget) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "budgets.json"
    json_path.write_text(json.dumps(sweep.to_dict(), indent=2))
    budgets = [p.budget for p in sweep.points]
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots(1, 3)
    series = [
        ("expected-coverage area", [p.coverage_area for p in sweep.points], [p.coverage_area_ci for p in sweep.points],
         0.0),
        ("TARP ATC", [p.tarp_atc for p in sweep.points], [p.tarp_atc_ci for p in sweep.points], 0.0),
        ("C2ST vs reference", [p.reference_c2st for p in sweep.points], None, 0.5),
    ]
    for ax, (title, values, intervals, ideal) in zip(axes, series):
        shown = [(b, v, i) for b, v, i in zip(budgets, values, intervals or [None] * len(values)) if v is not None]
        if shown:
            xs, ys = [s[0] for s in shown], [s[1] for s in shown]
            ax.plot(xs, ys, "o-")
            if intervals:
                ax.fill_between(xs, [s[2][0] for s in shown], [s[2][1] for s in shown], alpha=0.25)
        else:
            ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
        ax.axhline(ideal, color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("training simulations")
        ax.set_title(title)
    figure.suptitle(f"{sweep.estimator} on {sweep.simulator}: calibration versus simulation budget")
    figure.tight_layout()
    png_path = out / "budgets.png"
    figure.savefig(png_path, dpi=100)
    return [json_path, png_path]
