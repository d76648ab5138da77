"""``sbi-gen refine``: importance-sample a saved model's posterior with the simulator's exact likelihood."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from sbi_gen.cli.common import (
    add_device_argument,
    add_format_argument,
    add_seed_argument,
    check_device,
    load_observations,
    model_simulator,
    observations_for,
    output_file_and_format,
    positive_float,
    positive_int,
    write_new_netcdf,
    write_new_npz,
)
from sbi_gen.errors import DataError
from sbi_gen.seeding import RandomStreams

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    refine = commands.add_parser(
        "refine",
        help="importance-sample a saved model's posterior with the simulator's exact likelihood",
        description="Draw proposals from the model's posterior for each observation, weight them by "
        "likelihood x prior / proposal density, and report the log evidence with its standard error, the "
        "effective sample size, the sample efficiency and the Pareto k-hat of the weights. An ESS below "
        "--min-ess, an efficiency below --min-efficiency or a k-hat above min(1 - 1/log10 N, 0.7) flags the "
        "amortized posterior as untrustworthy for that observation (exit status 3; the file is still written, "
        "with the diagnostics). Needs a model with log_prob and a simulator with log_likelihood.",
    )
    refine.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    refine.add_argument("--observation", required=True, help="observations [B, *x_shape] or one: .npy, .npz or .json")
    refine.add_argument("--samples", type=positive_int, default=10_000,
                        help="proposals per observation (default: 10000)")
    refine.add_argument("--min-efficiency", type=positive_float, default=0.01,
                        help="trust threshold on ESS / N (default: 0.01)")
    refine.add_argument("--min-ess", type=positive_float, default=100.0,
                        help="trust threshold on the ESS itself (default: 100)")
    refine.add_argument("--simulator", help="registered simulator (default: the one recorded in the model)")
    refine.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    refine.add_argument("-o", "--out", required=True, help="output .npz: resampled [n, B, d] and log weights [n, B]")
    add_seed_argument(refine)
    add_format_argument(refine)
    add_device_argument(refine)


def command(args: argparse.Namespace) -> int:
    from sbi_gen.estimator import load_estimator
    from sbi_gen.refine import importance_sample

    out, fmt = output_file_and_format(args)
    if args.min_efficiency > 1:
        raise DataError(f"--min-efficiency is a fraction in (0, 1], got {args.min_efficiency}")
    device = check_device(args)
    observations = load_observations(args.observation)
    estimator = load_estimator(args.model, device=device)
    if not estimator.capabilities.has_log_prob:
        raise DataError(f"estimator {estimator.name!r} has no log_prob; importance sampling needs proposal densities")
    simulator = model_simulator(estimator, args.model, args.simulator, args.option)
    if not simulator.capabilities.has_log_likelihood:
        raise DataError(f"simulator {simulator.name!r} has no log_likelihood; refinement needs the exact likelihood")
    observations = observations_for(observations, estimator, args.observation)
    generator = RandomStreams(args.seed).generator("proposals")
    results = [
        importance_sample(estimator.posterior(x[None]), simulator, x, args.samples, generator=generator,
                          min_efficiency=args.min_efficiency, min_ess=args.min_ess)
        for x in observations
    ]
    for b, result in enumerate(results):
        print(f"observation {b}: {result.diagnosis}")
    if fmt == "bilby":
        _write_bilby(out, results, estimator)
    elif fmt == "netcdf":
        _write_netcdf(out, results, estimator, observations)
    else:
        write_new_npz(
            out,
            resampled=torch.stack([r.resampled for r in results], 1).numpy(),
            proposals=torch.stack([r.samples for r in results], 1).numpy(),
            log_weights=torch.stack([r.log_weights for r in results], 1).numpy(),
            summary=np.array(json.dumps([r.to_dict() for r in results])),
            parameters=np.array(estimator.prior.names),
        )
    print(f"wrote resampled posterior samples {[args.samples, len(results), estimator.prior.dim]} to {out}")
    untrusted = [b for b, r in enumerate(results) if not r.trustworthy]
    if untrusted:
        print(f"sbi-gen refine: NOT trustworthy for observation(s) {untrusted} (see above); exit status 3")
        return 3
    return 0


def _write_netcdf(out, results, estimator, observations) -> None:
    """Proposals with their importance log weights and the log evidence, as an ArviZ InferenceData.

    The ``posterior`` group holds the proposals (weight draw ``i`` by ``exp(log_weight[i])``); an
    untrustworthy refinement's evidence error is written as NaN, never as a number to quote.
    """
    from sbi_gen.export import to_inference_data

    tree = to_inference_data(
        torch.stack([r.samples for r in results], 1), estimator.prior.parameters, x_obs=observations,
        log_weights=torch.stack([r.log_weights for r in results], 1),
        log_evidence=[r.log_evidence for r in results],
        log_evidence_error=[r.log_evidence_se if r.trustworthy else math.nan for r in results],
        attrs={"sbi_gen_estimator": estimator.name, "draws": "importance-sampling proposals; see log_weight",
               "trustworthy": json.dumps([r.trustworthy for r in results])},
    )
    write_new_netcdf(out, tree)


def _write_bilby(out, results, estimator) -> None:
    """One bilby result per observation: the resampled (equal-weight) draws and the log evidence."""
    from sbi_gen.export import bilby_result, write_bilby_results

    write_bilby_results(out, [
        bilby_result(r.resampled, estimator.prior.parameters, label=f"observation_{b}",
                     log_evidence=r.log_evidence, log_evidence_error=r.log_evidence_se if r.trustworthy else math.nan,
                     meta={"sbi_gen_estimator": estimator.name, "sbi_gen_prior": estimator.prior.to_config(),
                           "importance_sampling": r.to_dict()})
        for b, r in enumerate(results)
    ])
