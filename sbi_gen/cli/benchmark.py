"""``sbi-gen benchmark``: the command line of the benchmark suite (:mod:`sbi_gen.benchmark`)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path

from sbi_gen.benchmark.classifiers import CLASSIFIERS, default_classifiers
from sbi_gen.benchmark.suite import SBI_METHODS, SuiteConfig, expand_methods, run_suite
from sbi_gen.cli.common import add_device_argument, add_seed_argument, check_device, positive_int

__all__ = ["add_parser", "command", "QUICK", "DEFAULT_TASKS"]

#: tasks run when none are given: the sbibm-style tasks with exact reference posteriors
DEFAULT_TASKS = "toy_gaussian,two_moons,slcp"

#: sbi's methods run by default: NPE with both flows. NPSE and FMPE are opt-in (--sbi-methods):
#: their samplers alone take 1-2 minutes per task here (NPSE: 500 SDE steps per draw)
DEFAULT_SBI_METHODS = "sbi:NPE-maf,sbi:NPE-nsf"

#: the smoke run (under 2 minutes on 2 CPU cores): small budget, short training, few samples
QUICK = {"tasks": "toy_gaussian,two_moons", "budgets": "1000", "observations": 2, "samples": 1000,
         "max_epochs": 15, "sbi_methods": "sbi:NPE-maf"}

#: cells at a time by default: two 1-thread cells use 2 cores better than one 2-thread cell
DEFAULT_JOBS = 2


#: what ``--task-options`` may give for each task
TASK_OPTION_KEYS = {"simulator_options", "estimator_options"}


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _json_object(text: str):
    """argparse type of --task-options: JSON text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None


def add_parser(commands) -> argparse.ArgumentParser:
    """Register the ``benchmark`` sub-command on ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "benchmark",
        help="accuracy (C2ST) and cost per task x estimator x budget, beside the sbi package when installed",
        description="For every task x method x budget: simulate, train, draw posterior samples for fixed "
        "observations, and record C2ST against the reference posterior, training time, sampling time and peak "
        "memory. With the sbi package installed (pip install 'sbi-gen[bench]') sbi's NPE / NPSE / FMPE run on "
        "the same simulations. Writes results.json, results.md and c2st_vs_budget.png into --out.",
    )
    parser.add_argument("--tasks", help=f"comma-separated simulators (default: {DEFAULT_TASKS}); 'sbibm' stands "
                        "for every sbibm task (sbibm_two_moons, ...: sbibm's observations and reference samples)")
    parser.add_argument("--methods", default="flow,diffusion,flow_matching",
                        help="comma-separated sbi-gen estimators (default: flow,diffusion,flow_matching)")
    parser.add_argument("--sbi", choices=("auto", "on", "off"), default="auto",
                        help="run sbi's estimators too: auto = when installed (default), on = required, off")
    parser.add_argument("--sbi-methods",
                        help=f"which of sbi's: {', '.join(SBI_METHODS)} (default: {DEFAULT_SBI_METHODS})")
    parser.add_argument("--budgets", help="comma-separated simulation budgets (default: 10000)")
    parser.add_argument("--classifiers",
                        help=f"comma-separated C2ST classifiers, the first one primary ({', '.join(CLASSIFIERS)}; "
                        "default: torch-mlp, the fast one; the published sbibm tables use sbibm-mlp,sbi-rf)")
    parser.add_argument("--observations", type=positive_int, help="observations per task (default: 5)")
    parser.add_argument("--samples", type=positive_int, help="posterior samples per observation (default: 10000)")
    parser.add_argument("--max-epochs", type=positive_int, help="cap on training epochs, for both toolkits")
    parser.add_argument("--task-options", type=_json_object, default={},
                        help='JSON: per task {"simulator_options": {...}, "estimator_options": {METHOD: {...}}}')
    parser.add_argument("--jobs", type=positive_int, default=DEFAULT_JOBS,
                        help=f"cells run at the same time, each in its own process (default: {DEFAULT_JOBS}; "
                        "use 1 for timings on an otherwise idle machine)")
    parser.add_argument("--threads", type=positive_int,
                        help="torch threads per cell (default: the CPU cores divided among the jobs, at least 1)")
    add_seed_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: toy_gaussian and two_moons, 1000 simulations, 15 epochs, 2 x 1000 samples")
    parser.add_argument("--in-process", action="store_true",
                        help="run cells in this process, one at a time (--jobs is ignored; faster start; "
                        "peak memory is then cumulative)")
    parser.add_argument("--resume", action="store_true", help="complete an interrupted run in --out")
    parser.add_argument("-o", "--out", help="output directory (default: runs/benchmark-TIME)")
    add_device_argument(parser)
    return parser


def _expand_tasks(names: list[str]) -> list[str]:
    """``names`` with ``sbibm`` replaced by every registered ``sbibm_*`` task."""
    if "sbibm" not in names:
        return names
    from sbi_gen.registry import get_registry

    sbibm = [name for name in get_registry().names("simulator") if name.startswith("sbibm_")]
    expanded: list[str] = []
    for name in names:
        expanded += [t for t in (sbibm if name == "sbibm" else [name]) if t not in expanded]
    return expanded


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    """The :class:`SuiteConfig` of the command line (``--quick`` fills what was not given)."""
    quick = QUICK if args.quick else {}
    tasks = _expand_tasks(_names(args.tasks or quick.get("tasks", DEFAULT_TASKS)))
    sbi_methods = args.sbi_methods or quick.get("sbi_methods", DEFAULT_SBI_METHODS)
    methods = expand_methods(_names(args.methods), args.sbi, _names(sbi_methods))
    from sbi_gen.calibration.budgets import parse_budgets  # here, not at start-up: it imports the plotting stack

    budgets = parse_budgets(args.budgets or quick.get("budgets", "10000"))
    max_epochs = args.max_epochs or quick.get("max_epochs")
    options = args.task_options
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError("--task-options must be a JSON object of objects, one per task")
    for task, given in options.items():
        unknown = sorted(set(given) - TASK_OPTION_KEYS)
        if unknown:
            raise ValueError(f"--task-options for {task!r}: unknown key(s) {unknown}; each task takes "
                             f"{sorted(TASK_OPTION_KEYS)}, e.g. '{{\"{task}\": {{\"simulator_options\": "
                             f"{json.dumps(given)}}}}}'")
    return SuiteConfig(
        tasks=tasks,
        methods=methods,
        budgets=budgets,
        num_observations=args.observations or quick.get("observations", 5),
        num_samples=args.samples or quick.get("samples", 10_000),
        seed=args.seed,
        simulator_options={t: o.get("simulator_options", {}) for t, o in options.items()},
        estimator_options={t: o.get("estimator_options", {}) for t, o in options.items()},
        training_options={"max_epochs": max_epochs} if max_epochs else {},
        sbi_training_options={"max_num_epochs": max_epochs} if max_epochs else {},
        threads=args.threads or max(1, (os.cpu_count() or 1) // args.jobs),
        jobs=1 if args.in_process else args.jobs,
        isolate=not args.in_process,
        device=check_device(args),
        classifiers=_names(args.classifiers) if args.classifiers else default_classifiers(),
    )


def command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = Path(args.out or Path("runs") / f"benchmark-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    print(f"benchmark: {len(config.tasks)} task(s) x {len(config.methods)} method(s) x {len(config.budgets)} "
          f"budget(s) -> {out}", flush=True)
    results = run_suite(config, out, resume=args.resume, log=lambda message: print(message, flush=True))
    failed = [r for r in results if r.get("error")]
    print(f"wrote {out / 'results.md'}" + (f"; {len(failed)} cell(s) failed" if failed else ""))
    return 1 if failed else 0
