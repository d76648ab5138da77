"""``sbi-gen sample``: posterior samples for observations from a saved model."""

from __future__ import annotations

import argparse

import numpy as np

from sbi_gen.cli.common import (
    add_device_argument,
    add_format_argument,
    add_seed_argument,
    check_device,
    load_observations,
    observations_for,
    output_file_and_format,
    positive_int,
    write_new_netcdf,
    write_new_npz,
)
from sbi_gen.seeding import RandomStreams

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    sample = commands.add_parser(
        "sample", help="draw posterior samples for observations from a saved model",
        description="Draw posterior samples for each observation. Samples that are NaN or inf (a broken model) "
        "are never written: the command exits with status 3 instead.",
    )
    sample.add_argument("model", help="model directory written by `sbi-gen train` or `sbi-gen run`")
    sample.add_argument(
        "--observation", required=True,
        help="observations [B, *x_shape] or one [*x_shape]: .npy, .npz (array 'x') or .json",
    )
    sample.add_argument("--samples", type=positive_int, default=10_000,
                        help="posterior samples per observation (default: 10000)")
    sample.add_argument("-o", "--out", required=True, help="output .npz (new) with samples [n, B, d]")
    add_seed_argument(sample)
    add_format_argument(sample)
    add_device_argument(sample)


def command(args: argparse.Namespace) -> int:
    from sbi_gen.estimator import load_estimator

    out, fmt = output_file_and_format(args)
    device = check_device(args)
    observations = load_observations(args.observation)
    estimator = load_estimator(args.model, device=device)
    x = observations_for(observations, estimator, args.observation)
    samples = estimator.sample(x, args.samples, RandomStreams(args.seed).generator("sample"))
    if fmt == "bilby":
        from sbi_gen.export import bilby_result, write_bilby_results

        meta = {"sbi_gen_estimator": estimator.name, "sbi_gen_prior": estimator.prior.to_config()}
        write_bilby_results(out, [bilby_result(samples[:, b].cpu(), estimator.prior.parameters,
                                               label=f"observation_{b}", meta=meta) for b in range(len(x))])
    elif fmt == "netcdf":
        from sbi_gen.export import to_inference_data

        write_new_netcdf(out, to_inference_data(samples.cpu(), estimator.prior.parameters, x_obs=x,
                                                attrs={"sbi_gen_estimator": estimator.name}))
    else:
        write_new_npz(out, samples=samples.cpu().numpy(), parameters=np.array(estimator.prior.names))
    print(f"wrote samples {list(samples.shape)} [n, B, d] for parameters {estimator.prior.names} to {out}")
    return 0
