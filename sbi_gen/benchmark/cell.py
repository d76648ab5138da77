"""One benchmark cell: simulate, train, sample, score. Run as ``python -m sbi_gen.benchmark.cell SPEC RESULT``.

The spec (JSON, written by :mod:`sbi_gen.benchmark.suite`) names the task, the
method, the budget, the seed, options and the reference file. The result holds
the C2ST per observation for each classifier the spec names (the same ones for
every method, :mod:`sbi_gen.benchmark.classifiers`), the training wall time and
CPU time, the sampling time for all observations, the time the C2STs took, the
number of training epochs and the peak resident memory of the process.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbi_gen.benchmark.classifiers import score
from sbi_gen.registry import Registry, get_registry
from sbi_gen.seeding import RandomStreams
from sbi_gen.simulation import simulate

__all__ = ["run_cell", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _train_and_sample_ours(spec: dict, simulator, theta, x, x_obs, num_samples: int, registry: Registry,
                           streams: RandomStreams) -> dict:
    estimator = registry.estimator(spec["method"], device=spec.get("device", "cpu"), **spec["estimator_options"])
    start, cpu_start = time.perf_counter(), time.process_time()
    history = estimator.fit(theta, x, simulator.prior, seed=streams.seed("train"), progress=False,
                            **spec["training_options"])
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    samples = estimator.posterior(x_obs).sample(num_samples, streams.generator("sample"))
    sample_seconds = time.perf_counter() - start
    return {"samples": samples, "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
            "sample_seconds": sample_seconds, "epochs": len(history.train_loss), "toolkit": "sbi-gen"}


def run_cell(spec: dict[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    """Run the cell ``spec`` in this process and return its result record."""
    registry = registry or get_registry()
    torch.set_num_threads(int(spec["threads"]))
    streams = RandomStreams(spec["seed"])  # the same training pairs and training seed for every method of a cell
    simulator = registry.simulator(spec["task"], **spec["simulator_options"])
    with np.load(spec["reference_file"]) as stored:
        x_obs = torch.from_numpy(stored["x"])
        reference = torch.from_numpy(stored["samples"])
        observations = str(stored["source"]) if "source" in stored else "drawn from the prior"
    num_samples, num_observations = reference.shape[:2]
    simulate_start = time.perf_counter()
    data = simulate(simulator, spec["budget"], seed=streams.seed("simulate"))
    simulate_seconds = time.perf_counter() - simulate_start
    baseline_mb = peak_rss_mb()
    if spec["method"].startswith("sbi:"):
        from sbi_gen.benchmark.sbi_backend import train_and_sample

        outcome = train_and_sample(spec["method"], simulator.prior, data.theta, data.x, x_obs, num_samples,
                                   seed=streams.seed("train"), train_options=spec["training_options"],
                                   device=spec.get("device", "cpu"))
    else:
        outcome = _train_and_sample_ours(spec, simulator, data.theta, data.x, x_obs, num_samples, registry, streams)
    samples = torch.as_tensor(outcome.pop("samples")).reshape(num_samples, num_observations, -1)
    peak_mb = peak_rss_mb()
    if not bool(torch.isfinite(samples).all()):
        raise FloatingPointError(f"{spec['method']} returned non-finite posterior samples on {spec['task']}")
    classifiers = spec.get("classifiers") or ["torch-mlp"]
    by_classifier, c2st_seconds = {}, {}
    for name in classifiers:
        by_classifier[name], c2st_seconds[name] = score(name, reference, samples, streams.seed("c2st"),
                                                        int(spec["threads"]))
    accuracies = by_classifier[classifiers[0]]
    return {
        "task": spec["task"],
        "method": spec["method"],
        "budget": spec["budget"],
        "seed": spec["seed"],
        "device": spec.get("device", "cpu"),
        "c2st": accuracies,
        "c2st_mean": float(np.mean(accuracies)),
        "c2st_classifier": classifiers[0],  # the primary one: "c2st" and "c2st_mean" are its
        "c2st_by_classifier": by_classifier,
        "c2st_mean_by_classifier": {name: float(np.mean(values)) for name, values in by_classifier.items()},
        "observations": observations,  # "published": the task's own (sbibm's), else drawn by the suite
        "num_samples": num_samples,
        "num_observations": num_observations,
        "simulate_seconds": simulate_seconds,
        "c2st_seconds": sum(c2st_seconds.values()),
        "c2st_seconds_by_classifier": c2st_seconds,
        "peak_rss_mb": peak_mb,
        "rss_before_training_mb": baseline_mb,
        "threads": int(spec["threads"]),
        "jobs": int(spec.get("jobs", 1)),  # cells running at the same time as this one (itself included)
        "error": None,
        **outcome,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m sbi_gen.benchmark.cell SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run_cell(spec)
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
