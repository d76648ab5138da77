"""``sbi-gen sample``: posterior samples for observations from a saved model."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sbi_gen.cli.common import (
    add_device_argument,
    check_device,
    load_observations,
    new_output_file,
    observations_for,
    positive_int,
    write_new_npz,
)

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
    sample.add_argument("-n", "--num", type=positive_int, default=10_000,
                        help="samples per observation (default: 10000)")
    sample.add_argument("-o", "--out", required=True, help="output .npz (new) with samples [n, B, d]")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_device_argument(sample)


def command(args: argparse.Namespace) -> int:
    from sbi_gen.estimator import load_estimator

    out = new_output_file(args.out)
    device = check_device(args)
    observations = load_observations(args.observation)
    estimator = load_estimator(args.model, device=device)
    x = observations_for(observations, estimator.x_shape, args.observation)
    samples = estimator.sample(x, args.num, torch.Generator().manual_seed(args.seed))
    write_new_npz(out, samples=samples.cpu().numpy(), parameters=np.array(estimator.prior.names))
    print(f"wrote samples {list(samples.shape)} [n, B, d] for parameters {estimator.prior.names} to {out}")
    return 0
