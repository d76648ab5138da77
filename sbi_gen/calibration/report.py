"""The calibration report: every diagnostic on one shared set of posterior draws.

:func:`calibrate` simulates ``N`` test pairs ``(theta*, x*)``, draws ``L``
posterior samples for all ``x*`` in one batched call (and their densities,
when the posterior has ``log_prob``), and runs on those same draws: SBC
(:mod:`~sbi_gen.calibration.sbc`), expected coverage
(:mod:`~sbi_gen.calibration.coverage`), TARP (:mod:`~sbi_gen.calibration.tarp`),
C2ST against the reference posterior and the data-averaged-posterior check
(:mod:`~sbi_gen.calibration.c2st_checks`). The verdict follows the rules of
:mod:`~sbi_gen.calibration.verdict`. :func:`write_report` writes
``calibration.json`` (schema: :mod:`~sbi_gen.calibration.schema`),
``calibration.md`` and PNG plots.

A posterior here is ``estimator.posterior(x)`` of a fitted estimator (a
:class:`~sbi_gen.posterior.Posterior`, whose ``has_log_prob`` says whether
densities exist), or any object with ``sample(n, generator) -> [n, B, d]`` and,
optionally, ``log_prob(theta [..., B, d]) -> [..., B]`` (a reference posterior
such as :class:`~sbi_gen.reference.GaussianPosterior`), taken in through
:func:`~sbi_gen.posterior.as_posterior`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbi_gen.calibration.c2st_checks import (
    C2STCheck,
    data_averaged_posterior_check,
    reference_c2st_check,
)
from sbi_gen.calibration.coverage import CoverageResult, expected_coverage
from sbi_gen.calibration.sbc import SBCCheck, sbc_check
from sbi_gen.calibration.tarp import TARPResult, tarp
from sbi_gen.calibration.verdict import Finding, Verdict
from sbi_gen.posterior import Posterior, as_posterior
from sbi_gen.prior import Parameter

__all__ = ["CalibrationReport", "PosteriorDraws", "calibrate", "calibrate_estimator", "calibrate_samples",
           "draw_posterior", "write_report"]

FORMAT_NAME = "sbi-gen-calibration"
FORMAT_VERSION = 1
MIN_PAIRS, MIN_SAMPLES = 100, 100


@dataclass
class PosteriorDraws:
    """``samples [L, N, d]``; densities ``log_prob_samples [L, N]`` and ``log_prob_true [N]`` when available."""

    samples: Tensor
    log_prob_samples: Tensor | None = None
    log_prob_true: Tensor | None = None
    note: str | None = None


def draw_posterior(
    posterior: Posterior | Any, theta_true: Tensor, num_samples: int, generator: torch.Generator | None = None,
    max_batch: int = 100_000, samples: Tensor | None = None,
) -> PosteriorDraws:
    """Draw ``[L, N, d]`` once for all ``N`` observations, with densities if ``posterior.has_log_prob``.

    Densities are computed in chunks of at most ``max_batch`` points. A
    posterior without ``log_prob`` (or whose ``log_prob`` raises ``NotImplementedError``)
    gets a note instead. ``samples [L, N, d]`` already drawn are reused.
    """
    posterior = as_posterior(posterior)
    if samples is None:
        samples = posterior.sample(num_samples, generator)
    samples = torch.as_tensor(samples).detach().cpu()
    num_samples = samples.shape[0]
    if not posterior.has_log_prob:
        return PosteriorDraws(samples, note="the posterior has no log_prob")
    log_prob = posterior.log_prob
    try:
        log_prob_true = torch.as_tensor(log_prob(torch.as_tensor(theta_true).unsqueeze(0)))[0].cpu()
    except NotImplementedError as error:
        return PosteriorDraws(samples, note=f"no log_prob ({error})")
    chunk = max(1, max_batch // samples.shape[1])
    log_prob_samples = torch.cat([torch.as_tensor(log_prob(samples[i : i + chunk])).cpu()
                                  for i in range(0, num_samples, chunk)])
    return PosteriorDraws(samples, log_prob_samples, log_prob_true)


@dataclass
class CalibrationReport:
    """Everything :func:`write_report` writes; ``to_dict()`` is ``calibration.json``."""

    verdict: Verdict
    parameters: list[dict[str, str]]
    settings: dict[str, Any]
    sbc: SBCCheck
    tarp: TARPResult
    coverage: CoverageResult | None = None
    reference_c2st: C2STCheck | None = None
    data_averaged_posterior: C2STCheck | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists) and tagged with the format name and version."""
        data = json.loads(json.dumps(asdict(self)))
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **data}


def _parameters(parameters: Sequence[Parameter | str] | None, d: int) -> list[Parameter]:
    if parameters is None:
        return [Parameter(f"theta_{k}", "", rf"$\theta_{{{k}}}$") for k in range(d)]
    result = [p if isinstance(p, Parameter) else Parameter(str(p)) for p in parameters]
    if len(result) != d:
        raise ValueError(f"{len(result)} parameters named for {d}-dimensional samples")
    return result


def _sbc_findings(sbc: SBCCheck) -> list[Finding]:
    findings = []
    for c in sbc.parameters:
        bias = "biased" if c.bias_pvalue < 1 - c.level else "calibrated"
        spread = "calibrated"
        if c.dispersion_pvalue < 1 - c.level:
            spread = "overconfident" if c.central_coverage < c.central_nominal else "underconfident"
        shape = "miscalibrated" if c.shape_pvalue < 1 - c.level else "calibrated"
        findings += [
            Finding(c.name, "sbc", bias, "SBC mean normalized rank", c.rank_mean, c.rank_mean_ci, 0.5,
                    "z-test of the rank mean", c.bias_pvalue, c.level),
            Finding(c.name, "sbc", spread, "SBC central 50% interval coverage", c.central_coverage,
                    c.central_coverage_ci, c.central_nominal, "exact binomial test", c.dispersion_pvalue, c.level),
            Finding(c.name, "sbc", shape, "SBC rank uniformity p-value", c.shape_pvalue, (0.0, 1.0), 1.0,
                    "chi-square, KS and simultaneous ECDF tests (Bonferroni)", c.shape_pvalue, c.level),
        ]
    return findings


def calibrate_samples(
    draws: PosteriorDraws, theta_true: Tensor, parameters: Sequence[Parameter | str] | None = None, *,
    reference_samples: Tensor | None = None, prior_samples: Tensor | None = None,
    reference_skip_reason: str = "no reference posterior",
    tarp_box: Tensor | None = None, alpha: float = 0.01, c2st_margin: float = 0.1, seed: int = 0,
) -> CalibrationReport:
    """Run every diagnostic on shared ``draws`` of the posteriors of ``N`` test pairs ``theta_true [N, d]``.

    Arguments:
        parameters: :class:`~sbi_gen.prior.Parameter` s (names, units, labels) or names.
        reference_samples: ``[M, B, d]`` reference-posterior draws for the first
            ``B`` test observations: C2ST against the reference.
        prior_samples: ``[M, d]`` prior draws: the data-averaged-posterior check.
        tarp_box: ``[M, d]`` draws (e.g. from the prior) whose 1%-99% box TARP
            draws its reference points from; default the posterior draws.
        alpha: family-wise level of the verdict, split over the diagnostics.
        c2st_margin: reference C2ST accuracy tolerated above 0.5.
        seed: seeds every randomized step.
        reference_skip_reason: why ``reference_samples`` is missing, for the report.
    """
    samples, theta_true = draws.samples, torch.as_tensor(theta_true)
    num_samples, n, d = samples.shape
    params = _parameters(parameters, d)
    names = [p.name for p in params]
    skipped, notes = {}, []
    if draws.log_prob_true is None:
        skipped["coverage"] = f"expected coverage skipped: {draws.note or 'no log_prob'}"
    if reference_samples is None:
        skipped["reference_c2st"] = f"C2ST skipped: {reference_skip_reason}"
    if prior_samples is None:
        skipped["data_averaged_posterior"] = "data-averaged-posterior check skipped: no prior samples"
    if n < MIN_PAIRS or num_samples < MIN_SAMPLES:
        notes.append(f"few draws (N = {n} test pairs, L = {num_samples} samples; at least {MIN_PAIRS} of each "
                     "are advised): the tests have little power")
    alpha_each = alpha / (5 - len(skipped))
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        timings[f"{name}_s"] = time.perf_counter() - start
        return result

    sbc = timed("sbc", lambda: sbc_check(samples, theta_true, names, alpha_each, seed))
    findings = _sbc_findings(sbc)
    tarp_result = timed("tarp", lambda: tarp(samples, theta_true, alpha=alpha_each, seed=seed,
                                                      box_from=tarp_box))
    findings.append(Finding("all", "tarp", tarp_result.label, "TARP area to curve (ATC)", tarp_result.atc,
                            tarp_result.atc_ci, 0.0, "z-test of ATC and simultaneous ECDF test",
                            tarp_result.pvalue, tarp_result.level))
    coverage = None
    if "coverage" not in skipped:
        coverage = timed("coverage", lambda: expected_coverage(draws.log_prob_samples, draws.log_prob_true,
                                                               alpha_each, seed))
        findings.append(Finding("all", "coverage", coverage.label, "expected coverage signed area", coverage.area,
                                coverage.area_ci, 0.0, "z-test of the area and simultaneous ECDF test",
                                coverage.pvalue, coverage.level))
    checks: dict[str, C2STCheck | None] = {"reference_c2st": None, "data_averaged_posterior": None}
    if reference_samples is not None:
        b = reference_samples.shape[1]
        checks["reference_c2st"] = timed("reference_c2st", lambda: reference_c2st_check(
            reference_samples, samples[:, :b], alpha_each, c2st_margin, seed))
    if prior_samples is not None:
        checks["data_averaged_posterior"] = timed("data_averaged_posterior", lambda: data_averaged_posterior_check(
            samples[0], prior_samples, alpha_each, seed))
    for name, check in checks.items():
        if check is not None:
            findings.append(Finding("all", name, check.label, "C2ST accuracy", check.accuracy, check.accuracy_ci,
                                    check.threshold, check.test, check.pvalue, check.level))
    verdict = Verdict.from_findings(findings, names, skipped, alpha)
    return CalibrationReport(
        verdict, [{**asdict(p), "axis_label": p.axis_label} for p in params],
        {"num_pairs": n, "num_samples": num_samples, "alpha": alpha, "alpha_per_diagnostic": alpha_each,
         "seed": seed, "c2st_margin": c2st_margin,
         "c2st_observations": 0 if reference_samples is None else int(reference_samples.shape[1])},
        sbc, tarp_result, coverage, checks["reference_c2st"], checks["data_averaged_posterior"],
        notes + list(skipped.values()), timings,
    )


def calibrate(
    posterior_fn: Callable[[Tensor], Any], simulator: Any, num_simulations: int = 1000, num_samples: int = 1000, *,
    seed: int = 0, alpha: float = 0.01, c2st_observations: int = 5, c2st_margin: float = 0.1, test_set: Any = None,
    samples: Tensor | None = None,
) -> CalibrationReport:
    """Calibration report of ``posterior_fn(x [N, *x_shape])`` on ``N`` fresh pairs from ``simulator``.

    Arguments:
        posterior_fn: maps test observations to one posterior object for all of them.
        simulator: gives the test pairs, the prior (parameters, prior draws, TARP
            references) and, if it has one, the reference posterior.
        num_simulations, num_samples: ``N`` test pairs and ``L`` draws for each.
        c2st_observations: test observations compared with the reference posterior.
        seed: seeds everything, each step from its own stream of
            :class:`~sbi_gen.seeding.RandomStreams` (``test_pairs``, ``sample``,
            ``reference``, ``prior``, ``diagnostics``); the test pairs are
            independent of training pairs simulated from another stream of the same seed.
        test_set: a :class:`~sbi_gen.data.SimulationSet` to use instead of simulating.
        samples: ``[L, N, d]`` draws already made for ``test_set.x``, reused.
    """
    from sbi_gen.seeding import RandomStreams
    from sbi_gen.simulation import simulate

    start = time.perf_counter()
    streams = RandomStreams(seed)
    test = test_set if test_set is not None else simulate(simulator, num_simulations, seed=streams.seed("test_pairs"))
    draws = draw_posterior(posterior_fn(test.x), test.theta, num_samples, streams.generator("sample"), samples=samples)
    num_samples = draws.samples.shape[0]
    sample_s = time.perf_counter() - start
    reference, skip_reason = None, "no reference posterior"
    if simulator.capabilities.has_reference_posterior:
        if c2st_observations > 0:
            x_ref = test.x[: min(c2st_observations, len(test))]
            reference = simulator.reference_posterior(x_ref).sample(num_samples, streams.generator("reference"))
        else:
            skip_reason = "c2st_observations = 0 (the simulator has a reference posterior)"
    prior_draws = simulator.prior.sample(len(test), streams.generator("prior"))
    report = calibrate_samples(
        draws, test.theta, simulator.prior.parameters, reference_samples=reference,
        reference_skip_reason=skip_reason, prior_samples=prior_draws, tarp_box=prior_draws, alpha=alpha,
        c2st_margin=c2st_margin, seed=streams.seed("diagnostics"),
    )
    report.timings = {"simulate_and_sample_s": sample_s, **report.timings}
    return report


def calibrate_estimator(estimator: Any, simulator: Any, **options: Any) -> CalibrationReport:
    """:func:`calibrate` for a fitted :class:`~sbi_gen.estimator.PosteriorEstimator`."""
    return calibrate(estimator.posterior, simulator, **options)


def write_report(report: CalibrationReport, out: str | Path, plots: bool = True) -> list[Path]:
    """Write ``calibration.json``, ``calibration.schema.json``, PNG plots and ``calibration.md`` into ``out``."""
    from sbi_gen.calibration.markdown import render_markdown
    from sbi_gen.calibration.plots import save_plots
    from sbi_gen.calibration.schema import REPORT_SCHEMA, validate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    validate(data, REPORT_SCHEMA)
    start = time.perf_counter()
    images = save_plots(report, out) if plots else []
    data["timings"]["plots_s"] = time.perf_counter() - start
    written = [out / "calibration.json", out / "calibration.schema.json", out / "calibration.md"]
    written[0].write_text(json.dumps(data, indent=2))
    written[1].write_text(json.dumps(REPORT_SCHEMA, indent=2))
    written[2].write_text(render_markdown(data, [image.name for image in images]))
    return written + images
