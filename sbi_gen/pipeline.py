"""The main job: simulate, train, sample held-out observations, check calibration.

:func:`run` is what ``sbi-gen run SIMULATOR`` does. It writes a run directory::

    run.json           the settings of the run
    simulations.npz    the training pairs (signals.npz instead when the simulator's cheap part is re-drawn
                       for every batch: its signals, see sbi_gen.redraw)
    model/             the trained estimator (config.json + weights.safetensors)
    observations.npz   held-out theta_true [B, d] and x [B, *x_shape]
    samples.npz        posterior samples [n, B, d] for those observations
    refined.npz        where the simulator has an exact likelihood: importance-sampling refinement of each
                       held-out posterior: resampled [n, K, d] for the K observations whose refinement is
                       trustworthy (observation_index [K]), and for all B the proposals, log_weights and the
                       summary JSON; metrics.json says which are trustworthy
    metrics.json       C2ST against the reference posterior (if any), SBC, calibration verdict, plot files, timings
    calibration/       the calibration report on the SBC pairs and their samples
                       (calibration.json, calibration.md, PNG plots; see sbi_gen.calibration)
    corner/            observation_{b}.png: corner plot of each held-out posterior, truth marked,
                       reference posterior overlaid (if any); see sbi_gen.plots
    predictive/        observation_{b}.png: posterior predictive check of each held-out observation
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbi_gen.calibration import c2st, calibrate_estimator, sbc_test, write_report
from sbi_gen.data import save_simulations
from sbi_gen.device import resolve_device
from sbi_gen.errors import DataError
from sbi_gen.pairs import SimulationSet
from sbi_gen.plots import write_plots
from sbi_gen.redraw import uses_redraw
from sbi_gen.refine import importance_sample
from sbi_gen.registry import Registry, get_registry
from sbi_gen.seeding import RandomStreams
from sbi_gen.simulation import simulate, training_pairs

__all__ = ["RunConfig", "run", "check_run_dir", "prepare_run_dir"]


@dataclass
class RunConfig:
    """Settings of one end-to-end run (defaults finish in about two minutes on 2 CPU cores).

    Arguments:
        simulator, simulator_options: registered simulator and its keyword options.
        estimator, estimator_options: registered estimator and its keyword options.
        num_simulations: training pairs.
        num_observations: held-out observations to sample and compare with the reference.
        num_posterior_samples: posterior draws per held-out observation.
        num_sbc: simulations for the SBC check; ``sbc_samples`` draws for each.
        seed: the run's seed; every step draws from its own named stream of it
            (:class:`~sbi_gen.seeding.RandomStreams`: ``simulate``, ``train``, ``observations``,
            ``sbc``, ``sample``, ``sbc_sample``, ``c2st``, ``calibrate``, ``plots``), so changing one setting
            (say ``num_observations``) changes no other step's draws.
        device: where the network trains and samples (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``);
            checked before anything is simulated or written.
        training_options: :class:`TrainingConfig` fields to override; the rest
            are the estimator's own training defaults.
        calibration_report: write the calibration report (on the SBC pairs,
            reusing their samples) into ``calibration/``.
        plots: write the corner plots (``corner/``) and posterior predictive checks (``predictive/``)
            of the held-out observations.
        refine: refine each held-out posterior by importance sampling with the exact likelihood
            (:func:`~sbi_gen.refine.importance_sample`, ``refine_proposals`` proposals) and report the
            sample efficiency, the log evidence with its error and, with a reference, the refined C2ST;
            ``None`` (the default): whenever the simulator has a likelihood and the estimator densities.
        redraw: train on ``num_simulations`` stored signals with the cheap part (noise, the
            simulator's ``redrawn_parameters``) re-drawn for every batch (:mod:`sbi_gen.redraw`);
            ``None`` (the default): whenever the simulator has the signal split.
    """

    simulator: str = "toy_gaussian"
    simulator_options: dict[str, Any] = field(default_factory=dict)
    estimator: str = "flow"
    estimator_options: dict[str, Any] = field(default_factory=dict)
    num_simulations: int = 10_000
    num_observations: int = 5
    num_posterior_samples: int = 5_000
    num_sbc: int = 200
    sbc_samples: int = 1_000
    seed: int = 0
    device: str = "cpu"
    training_options: dict[str, Any] = field(default_factory=dict)
    calibration_report: bool = True
    plots: bool = True
    redraw: bool | None = None
    refine: bool | None = None
    refine_proposals: int = 10_000


def check_run_dir(path: str | Path) -> Path:
    """``path`` as a new run directory: refuse a file or a non-empty directory there (creates nothing)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists and is not empty; choose another --out, or remove it")
    return path


def prepare_run_dir(path: str | Path) -> Path:
    """Create ``path``; refuse a non-empty existing directory so no earlier result is overwritten."""
    path = check_run_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def run(config: RunConfig, out: str | Path, registry: Registry | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the main job into the new directory ``out``; return the metrics (also in ``metrics.json``)."""
    registry = registry or get_registry()
    device = str(resolve_device(config.device))  # a device that is not there fails before anything is written
    simulator = registry.simulator(config.simulator, **config.simulator_options)
    redraw = uses_redraw(simulator, config.redraw)
    estimator_options = registry.estimator_options_for(
        config.estimator, config.simulator, config.estimator_options, config.simulator_options
    )
    estimator = registry.estimator(config.estimator, device=device, **estimator_options)
    can_refine = simulator.capabilities.has_log_likelihood and estimator.capabilities.has_log_prob
    if config.refine and not can_refine:  # refused before anything is simulated or written
        raise DataError(f"refinement needs the simulator's exact likelihood and the estimator's densities; "
                        f"{simulator.name!r} / {estimator.name!r} lack one")
    streams = RandomStreams(config.seed)
    training = estimator.training_config(**{**config.training_options, "seed": streams.seed("train")})
    out = prepare_run_dir(out)  # only once every setting has been checked
    (out / "run.json").write_text(json.dumps(asdict(config), indent=2))
    timings: dict[str, float] = {}

    start = time.perf_counter()
    train_pairs, stored = training_pairs(simulator, config.num_simulations, streams.seed("simulate"), redraw)
    observations = simulate(simulator, config.num_observations, seed=streams.seed("observations"))
    sbc_set = simulate(simulator, config.num_sbc, seed=streams.seed("sbc"))
    timings["simulate_s"] = time.perf_counter() - start
    save_simulations(out / ("signals.npz" if redraw else "simulations.npz"), stored)
    what = (f"signals ({', '.join(simulator.redrawn_parameters)} and the noise re-drawn for every batch)"
            if redraw else "training pairs")
    _log(f"simulated {len(stored)} {what} from {simulator!r} in {timings['simulate_s']:.1f} s", quiet)

    start = time.perf_counter()
    history = estimator.fit(train_pairs, prior=simulator.prior, training=training)
    timings["train_s"] = time.perf_counter() - start
    estimator.metadata["simulator"] = simulator.describe()
    estimator.save(out / "model")
    _log(
        f"trained {config.estimator!r} for {len(history.train_loss)} epochs ({history.stopped_because}) in "
        f"{timings['train_s']:.1f} s; best validation loss {history.best_validation_loss:.3f}",
        quiet,
    )

    start = time.perf_counter()
    samples = estimator.posterior(observations.x).sample(config.num_posterior_samples, streams.generator("sample"))
    timings["sample_s"] = time.perf_counter() - start
    np.savez(out / "observations.npz", theta_true=observations.theta.numpy(), x=observations.x.numpy())
    np.savez(out / "samples.npz", samples=samples.numpy(), parameters=np.array(simulator.prior.names))

    metrics: dict[str, Any] = {
        "simulator": config.simulator,
        "estimator": config.estimator,
        "num_simulations": config.num_simulations,
        "redrawn_parameters": list(simulator.redrawn_parameters) if redraw else None,
        "device": device,
        "training": {"epochs": len(history.train_loss), "stopped_because": history.stopped_because,
                     "best_validation_loss": history.best_validation_loss},
    }
    metrics["c2st"], reference = _c2st_against_reference(simulator, observations, samples, streams.child("c2st"),
                                                         quiet)
    refined = None
    if can_refine if config.refine is None else config.refine:
        start = time.perf_counter()
        metrics["refinement"], refined = _refine(estimator, simulator, observations, reference, config,
                                                 streams.child("refine"), out, quiet)
        timings["refine_s"] = time.perf_counter() - start
    if config.plots:
        start = time.perf_counter()
        metrics["plots"] = write_plots(out, simulator.prior, samples, observations.x, observations.theta,
                                       simulator=simulator, reference=reference, refined=refined,
                                       generator=streams.generator("plots"), name=config.estimator)
        timings["plots_s"] = time.perf_counter() - start
        _log(f"corner plots and posterior predictive checks in {out / 'corner'}, {out / 'predictive'}", quiet)

    start = time.perf_counter()
    sbc_samples = estimator.posterior(sbc_set.x).sample(config.sbc_samples, streams.generator("sbc_sample"))
    sbc = sbc_test(sbc_samples, sbc_set.theta, seed=streams.seed("sbc_test"))
    timings["sbc_s"] = time.perf_counter() - start
    metrics["sbc"] = {
        "num_simulations": len(sbc_set),
        "num_posterior_samples": config.sbc_samples,
        "pvalue": sbc.pvalue,
        "chi2_pvalues": dict(zip(simulator.prior.names, sbc.chi2_pvalues)),
        "ks_pvalues": dict(zip(simulator.prior.names, sbc.ks_pvalues)),
        "uniform_at_1_percent": not sbc.rejects(0.01),
    }
    verdict = "ranks look uniform" if not sbc.rejects(0.01) else "ranks are NOT uniform: miscalibrated"
    _log(f"SBC over {len(sbc_set)} simulations: p = {sbc.pvalue:.3g} ({verdict} at the 1% level)", quiet)
    if config.calibration_report:
        start = time.perf_counter()
        report = calibrate_estimator(estimator, simulator, test_set=sbc_set, samples=sbc_samples,
                                     seed=streams.seed("calibrate"))
        write_report(report, out / "calibration")
        timings["calibration_s"] = time.perf_counter() - start
        metrics["calibration"] = {
            "verdict": report.verdict.overall,
            "per_parameter": report.verdict.per_parameter,
            "per_diagnostic": report.verdict.per_diagnostic,
            "report": "calibration/calibration.md",
        }
        _log(
            f"calibration report over {len(sbc_set)} simulations: {report.verdict.overall} "
            f"({', '.join(f'{k} {v}' for k, v in report.verdict.per_diagnostic.items())}); "
            f"see {out / 'calibration' / 'calibration.md'}",
            quiet,
        )
    metrics["timings"] = timings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _log(f"run directory: {out}", quiet)
    return metrics


def _refine(estimator, simulator, observations: SimulationSet, reference, config: RunConfig,
            streams: RandomStreams, out: Path, quiet: bool):
    """Importance-sample every held-out observation; write ``refined.npz``; return the record and the
    resampled draws ``[n, B, d]`` (``None`` unless every refinement is trustworthy, so no plot shows an
    untrustworthy one as a posterior)."""
    results = [
        importance_sample(estimator.posterior(observations.x[b : b + 1]), simulator, observations.x[b],
                          config.refine_proposals, num_resampled=config.num_posterior_samples,
                          generator=streams.generator(f"observation {b}"))
        for b in range(len(observations))
    ]
    trusted = [b for b, r in enumerate(results) if r.trustworthy]
    resampled = torch.stack([r.resampled for r in results], 1)
    # an untrustworthy refinement is withheld: only trusted observations' draws are written as posterior samples
    np.savez(out / "refined.npz", resampled=resampled[:, trusted].numpy(), observation_index=np.array(trusted, int),
             proposals=torch.stack([r.samples for r in results], 1).numpy(),
             log_weights=torch.stack([r.log_weights for r in results], 1).numpy(),
             summary=np.array(json.dumps([r.to_dict() for r in results])), parameters=np.array(simulator.prior.names))
    per_observation = [r.to_dict() for r in results]
    if reference is not None:
        seed = streams.seed("classifier")
        for record, r, b in zip(per_observation, results, range(len(results))):
            record["c2st"] = c2st(reference[:, b], r.resampled, seed=seed).accuracy
    for b, r in enumerate(results):
        _log(f"refinement of observation {b}: {r.diagnosis}"
             + (f" Refined C2ST {per_observation[b]['c2st']:.3f}." if reference is not None else ""), quiet)
    untrusted = [b for b, r in enumerate(results) if not r.trustworthy]
    if untrusted:
        _log(f"refinement NOT trustworthy for held-out observation(s) {untrusted}: their refined draws are withheld "
             "from refined.npz (the weighted proposals stay, for diagnosis); the raw posterior there is suspect too",
             quiet)
    record = {"num_proposals": config.refine_proposals, "untrustworthy_observations": untrusted,
              "efficiency": [r.efficiency for r in results], "per_observation": per_observation,
              "file": "refined.npz"}
    return record, (resampled if not untrusted else None)


def _c2st_against_reference(simulator, observations: SimulationSet, samples, streams: RandomStreams, quiet: bool):
    """The C2ST record and the reference samples ``[n, B, d]`` it used (``None, None`` without a reference)."""
    if not simulator.capabilities.has_reference_posterior:
        _log("C2ST skipped: the simulator has no reference posterior", quiet)
        return None, None
    reference = simulator.reference_posterior(observations.x).sample(samples.shape[0], streams.generator("reference"))
    seed = streams.seed("classifier")
    accuracies = [c2st(reference[:, b], samples[:, b], seed=seed).accuracy for b in range(samples.shape[1])]
    mean = sum(accuracies) / len(accuracies)
    _log(
        f"C2ST against the reference posterior over {len(accuracies)} observations: mean {mean:.3f} "
        f"(0.5 = indistinguishable); per observation {', '.join(f'{a:.3f}' for a in accuracies)}",
        quiet,
    )
    return {"mean": mean, "per_observation": accuracies, "num_samples": samples.shape[0]}, reference
