"""One benchmark cell with chosen estimator and training options, for comparing settings on one task.

``sbi-gen benchmark`` runs every method with its defaults (or one set of options per task); this runs a
single cell, in this process and on 1 torch thread, with the options given, and appends its C2ST per
classifier, training CPU seconds and epochs to a JSON-lines file. It scores on the task's own observations
(sbibm's, for ``sbibm_*`` tasks) exactly as a suite cell does (:func:`sbi_gen.benchmark.cell.run_cell`).
The measurements behind the flow's defaults (``bounded_support="truncate"``, batch 256 at 1e-3) came from::

    python benchmarks/sbibm_options.py sbibm_two_moons --label logit128 --estimator-options \\
        '{"bounded_support": "logit"}' --training-options '{"batch_size": 128, "learning_rate": 5e-4}'
    python benchmarks/sbibm_options.py sbibm_two_moons --label trunc256
    python benchmarks/sbibm_options.py sbibm_two_moons --label nsf --method sbi:NPE-nsf

Only one cell runs per call: run two calls side by side at most on 2 cores, and say so with the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sbi_gen.benchmark.cell import run_cell
from sbi_gen.benchmark.suite import SuiteConfig, cell_spec, prepare_reference
from sbi_gen.errors import SbiGenError
from sbi_gen.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="a registered simulator with a reference, e.g. sbibm_two_moons")
    parser.add_argument("--label", required=True, help="name of this setting in the output")
    parser.add_argument("--method", default="flow", help="an sbi-gen estimator or sbi:NPE-nsf, ... (default: flow)")
    parser.add_argument("--estimator-options", type=json.loads, default={}, help="JSON options of the estimator")
    parser.add_argument("--training-options", type=json.loads, default={}, help="JSON TrainingConfig overrides")
    parser.add_argument("--budget", type=int, default=10_000, help="training simulations (default: 10000)")
    parser.add_argument("--classifiers", default="torch-mlp", help="comma-separated C2ST classifiers")
    parser.add_argument("--out", type=Path, default=Path("runs/sbibm-options"), help="folder of the results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = get_registry()
    ours = not args.method.startswith("sbi:")
    try:  # a bad task, method, option or classifier is one line and exit code 2, before any work
        config = SuiteConfig(tasks=[args.task], methods=[args.method], budgets=[args.budget], threads=1, jobs=1,
                             estimator_options={args.task: {args.method: args.estimator_options}},
                             training_options=args.training_options if ours else {},
                             sbi_training_options={} if ours else args.training_options,
                             classifiers=args.classifiers.split(","))
        spec = cell_spec(config, registry, args.task, args.method, args.budget, args.out)
        if ours:
            registry.estimator(args.method, **spec["estimator_options"]).training_config(**args.training_options)
        prepare_reference(registry, args.task, {}, config.num_observations, config.num_samples, config.seed,
                          Path(spec["reference_file"]))
    except (SbiGenError, ValueError, TypeError) as error:
        parser.error(str(error))
    options = spec["estimator_options"]
    result = run_cell(spec, registry)
    record = {"task": args.task, "label": args.label, "method": args.method, "budget": args.budget,
              "estimator_options": options, "training_options": args.training_options,
              **{key: result[key] for key in ("c2st_by_classifier", "c2st_mean_by_classifier", "train_cpu_seconds",
                                              "train_seconds", "epochs")}}
    with open(args.out / "results.jsonl", "a") as out:
        out.write(json.dumps(record) + "\n")
    means = ", ".join(f"{name} {value:.3f}" for name, value in result["c2st_mean_by_classifier"].items())
    print(f"{args.task} {args.label} ({args.budget}): C2ST {means}; training {result['train_cpu_seconds']:.0f} CPU s, "
          f"{result['epochs']} epochs")


if __name__ == "__main__":
    main()
