"""Run the benchmark grid: references once per task, then one process per cell, results as they come.

Output directory::

    results.json            every finished cell (rewritten atomically after each one)
    results.md              the tables (one per budget) and the ratios against sbi
    c2st_vs_budget.png      C2ST against simulation budget, one panel per task
    references/TASK.npz     observations (theta_true [B, d], x [B, *x_shape]) and
                            reference posterior samples [n, B, d]
    cells/                  each cell's spec, result and log
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbi_gen.benchmark.classifiers import check_classifiers, default_classifiers, importable
from sbi_gen.registry import Registry, get_registry
from sbi_gen.seeding import RandomStreams
from sbi_gen.simulation import simulate

__all__ = ["SBI_METHODS", "SuiteConfig", "run_suite", "expand_methods", "prepare_reference", "cell_key", "cell_spec"]

#: sbi's estimators the suite can run beside ours (see :mod:`sbi_gen.benchmark.sbi_backend`)
SBI_METHODS = ("sbi:NPE-maf", "sbi:NPE-nsf", "sbi:NPSE", "sbi:FMPE")


@dataclass
class SuiteConfig:
    """What to run.

    Arguments:
        tasks: registered simulators with a reference posterior.
        methods: sbi-gen estimator plugins and/or entries of :data:`SBI_METHODS`.
        budgets: training simulations per cell.
        num_observations: observations per task (theta drawn from the prior).
        num_samples: posterior draws per observation, and reference draws.
        seed: seeds observations, references, training sets, training and sampling, each from its own
            stream of :class:`~sbi_gen.seeding.RandomStreams` (the same training pairs for every method).
        simulator_options: per task, keyword options of the simulator.
        estimator_options: per task, per sbi-gen method (or ``"*"`` for all), estimator
            options; they override the options the simulator suggests
            (its capabilities' ``suggested_estimator_options``).
        training_options: :class:`~sbi_gen.TrainingConfig` overrides for sbi-gen methods.
        sbi_training_options: keyword arguments of sbi's ``train`` (e.g. ``max_num_epochs``).
        comparisons: which sbi method each sbi-gen method is compared with in the ratio table.
        threads: torch threads per cell.
        device: where every cell trains and samples, ours and sbi's (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        jobs: cells run at the same time, each in its own process (needs ``isolate``). On a
            machine with 2 cores, 2 jobs of 1 thread finish the grid in about half the time of
            1 job of 2 threads: the small networks here hardly use a second thread. Every cell,
            ours and sbi's, then shares the machine with one neighbour, so times are those of
            one core under light contention.
        isolate: run each cell in its own process (peak memory is then the cell's own).
        cell_timeout_s: a cell running longer is stopped and recorded as failed.
        classifiers: C2ST classifiers every cell is scored with (:mod:`sbi_gen.benchmark.classifiers`);
            the first is the primary one. Default: sbi-gen's torch MLP (fast); the published sbibm
            tables use ``["sbibm-mlp", "sbi-rf"]``.
    """

    tasks: list[str]
    methods: list[str] = field(default_factory=lambda: ["flow", "diffusion", "flow_matching"])
    budgets: list[int] = field(default_factory=lambda: [1_000, 10_000])
    num_observations: int = 5
    num_samples: int = 10_000
    seed: int = 0
    device: str = "cpu"
    simulator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimator_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    training_options: dict[str, Any] = field(default_factory=dict)
    sbi_training_options: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[str, list[str]] = field(
        default_factory=lambda: {
            "flow": ["sbi:NPE-maf", "sbi:NPE-nsf"],
            "diffusion": ["sbi:NPSE"],
            "flow_matching": ["sbi:FMPE"],
        }
    )
    threads: int = 2
    jobs: int = 1
    isolate: bool = True
    cell_timeout_s: float = 3600.0
    classifiers: list[str] = field(default_factory=default_classifiers)

    def __post_init__(self) -> None:
        check_classifiers(self.classifiers)
        if not self.tasks:
            raise ValueError("no benchmark tasks given")
        if not self.methods:
            raise ValueError("no methods given")
        if any(int(b) < 2 for b in self.budgets) or not self.budgets:
            raise ValueError(f"budgets must be at least 2 simulations each, got {self.budgets}")
        if self.num_observations < 1 or self.num_samples < 10:
            raise ValueError("need at least 1 observation and 10 posterior samples")
        if self.jobs < 1 or self.threads < 1:
            raise ValueError(f"jobs and threads must be at least 1, got jobs={self.jobs}, threads={self.threads}")
        if self.jobs > 1 and not self.isolate:
            raise ValueError("cells can only run in parallel (jobs > 1) in their own processes: drop in-process")


def sbi_available() -> bool:
    """Whether the ``sbi`` package can be imported (the ``bench`` extra)."""
    return importable("sbi")


def expand_methods(methods: list[str], sbi: str = "auto", sbi_methods: list[str] | None = None) -> list[str]:
    """``methods`` plus sbi's (``sbi="on"``: required, ``"auto"``: if installed, ``"off"``: none)."""
    if sbi not in ("auto", "on", "off"):
        raise ValueError(f"sbi must be 'auto', 'on' or 'off', got {sbi!r}")
    chosen = list(sbi_methods) if sbi_methods is not None else list(SBI_METHODS)
    unknown = [m for m in chosen if m not in SBI_METHODS]
    if unknown:
        raise ValueError(f"unknown sbi method(s) {unknown}; available: {', '.join(SBI_METHODS)}")
    if sbi == "on" and not sbi_available():
        raise ImportError("the sbi package is not installed: pip install 'sbi-gen[bench]'")
    extra = chosen if sbi == "on" or (sbi == "auto" and sbi_available()) else []
    return [m for m in methods if m not in extra] + extra


def cell_key(task: str, method: str, budget: int) -> str:
    """File-name-safe identifier of one cell."""
    return f"{task}__{method.replace(':', '-')}__{budget}"


def prepare_reference(
    registry: Registry, task: str, options: dict[str, Any], num_observations: int, num_samples: int, seed: int,
    path: Path,
) -> dict[str, Any]:
    """Observations and reference posterior samples of ``task``, written to ``path`` (``.npz``); reused if present.

    A task that publishes fixed observations (sbibm's, ``reference_observations``) is scored on its first
    ``num_observations`` with their published reference samples; otherwise observations are drawn from the
    prior with ``seed`` and the reference posterior is sampled. A stored file is reused only if it was made
    the same way (source, seed and shape).
    """
    simulator = registry.simulator(task, **options)
    published = simulator.capabilities.has_reference_observations
    source = "published" if published else f"drawn from the prior, seed {seed}"
    if path.exists():
        with np.load(path) as stored:
            same = ("source" in stored and str(stored["source"]) == source
                    and stored["samples"].shape[:2] == (num_samples, num_observations))
            if same:
                return {"seconds": float(stored["seconds"]), "reused": True, "observations": source}
    start = time.perf_counter()
    if published:
        theta, x, samples = simulator.reference_observations()
        if num_observations > len(x) or num_samples > samples.shape[0]:
            raise ValueError(f"task {task!r} publishes {len(x)} observations with {samples.shape[0]} reference "
                             f"samples each; asked for {num_observations} x {num_samples}")
        theta, x, samples = theta[:num_observations], x[:num_observations], samples[:num_samples, :num_observations]
    elif simulator.capabilities.has_reference_posterior:
        streams = RandomStreams(seed)
        observations = simulate(simulator, num_observations, seed=streams.seed("observations"))
        theta, x = observations.theta, observations.x
        samples = simulator.reference_posterior(x).sample(num_samples, streams.generator("reference"))
    else:
        raise ValueError(f"task {task!r} has neither a reference posterior nor published reference observations, "
                         "so C2ST cannot be computed")
    seconds = time.perf_counter() - start
    samples = torch.as_tensor(samples).reshape(num_samples, num_observations, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, theta=theta.numpy(), x=x.numpy(), samples=samples.float().numpy(), seconds=seconds,
             source=source)
    os.replace(partial, path)
    return {"seconds": seconds, "reused": False, "observations": source}


def _write_json(path: Path, payload: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(payload, indent=2))
    os.replace(partial, path)  # atomic: an interrupted run never leaves a torn results file


def cell_spec(config: SuiteConfig, registry: Registry, task: str, method: str, budget: int, out: Path) -> dict:
    """The JSON spec of one cell (what :func:`~sbi_gen.benchmark.cell.run_cell` runs): ``method`` on ``task``
    at ``budget`` simulations, with the options ``config`` and the simulator's suggestions give it."""
    estimator_options: dict[str, Any] = {}
    if not method.startswith("sbi:"):
        per_task = config.estimator_options.get(task, {})
        estimator_options = registry.estimator_options_for(
            method, task, {**per_task.get("*", {}), **per_task.get(method, {})}, config.simulator_options.get(task, {})
        )
    return {
        "task": task,
        "method": method,
        "budget": int(budget),
        "seed": config.seed,
        "simulator_options": config.simulator_options.get(task, {}),
        "estimator_options": estimator_options,
        "training_options": config.training_options if not method.startswith("sbi:") else config.sbi_training_options,
        "reference_file": str(out / "references" / f"{task}.npz"),
        "threads": config.threads,
        "jobs": config.jobs,
        "device": config.device,
        "classifiers": list(config.classifiers),
    }


def _run_isolated(spec: dict, cell_dir: Path, timeout_s: float) -> dict:
    spec_path, result_path, log_path = cell_dir / "spec.json", cell_dir / "result.json", cell_dir / "log.txt"
    spec_path.write_text(json.dumps(spec, indent=2))
    command = [sys.executable, "-m", "sbi_gen.benchmark.cell", str(spec_path), str(result_path)]
    with open(log_path, "w") as log:
        try:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
            code = completed.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code == 0 and result_path.exists():
        return json.loads(result_path.read_text())
    tail = log_path.read_text().strip().splitlines()[-5:]
    return {**{k: spec[k] for k in ("task", "method", "budget")}, "error": f"exit {code}: " + " | ".join(tail)}


#: settings every cell of one results.json must share, so that its tables compare like with like
#: (tasks, methods, budgets may grow with --resume; threads and jobs are recorded in each cell)
SHARED_SETTINGS = ("seed", "num_observations", "num_samples", "training_options", "sbi_training_options",
                   "classifiers")
PER_TASK_SETTINGS = ("simulator_options", "estimator_options")


def _check_resume_settings(previous: dict[str, Any], current: dict[str, Any], results_path: Path) -> None:
    """Refuse a --resume whose settings differ from those the earlier cells of ``results_path`` used."""
    differences = [f"{key}: recorded {previous[key]!r}, given {current[key]!r}"
                   for key in SHARED_SETTINGS if key in previous and previous[key] != current[key]]
    for key in PER_TASK_SETTINGS:
        recorded, given = previous.get(key) or {}, current.get(key) or {}
        for task in set(previous.get("tasks", [])) & set(current.get("tasks", [])):
            if recorded.get(task, {}) != given.get(task, {}):
                differences.append(
                    f"{key} of {task}: recorded {recorded.get(task, {})!r}, given {given.get(task, {})!r}"
                )
    if differences:
        raise ValueError(f"--resume: {results_path} was run with other settings ({'; '.join(differences)}); its cells "
                         "would not be comparable with new ones: give the recorded settings, or choose another --out")


def run_suite(config: SuiteConfig, out: str | Path, registry: Registry | None = None, resume: bool = False,
              log=print) -> list[dict[str, Any]]:
    """Run every cell of ``config`` into ``out``; returns the results (also in ``results.json``).

    With ``resume``, cells already in ``out/results.json`` without an error are kept, not rerun.
    """
    from sbi_gen.benchmark.cell import run_cell
    from sbi_gen.benchmark.tables import write_tables

    registry = registry or get_registry()
    for task in config.tasks:
        registry.spec("simulator", task)  # unknown names fail here, before any work
    for method in config.methods:
        if not method.startswith("sbi:"):
            registry.spec("estimator", method)
        elif method not in SBI_METHODS:
            raise ValueError(f"unknown sbi method {method!r}; available: {', '.join(SBI_METHODS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: list[dict[str, Any]] = []
    references: dict[str, Any] = {}  # with --resume, those of tasks run by earlier invocations are kept
    if results_path.exists():
        if not resume:
            raise FileExistsError(f"{results_path} exists; pass --resume to complete it, or choose another --out")
        previous = json.loads(results_path.read_text())
        _check_resume_settings(previous.get("config") or {}, asdict(config), results_path)
        results = [r for r in previous["cells"] if not r.get("error")]
        references = dict(previous.get("references", {}))
    done = {cell_key(r["task"], r["method"], r["budget"]) for r in results}
    header = {"config": asdict(config), "references": references}
    for task in config.tasks:
        info = prepare_reference(registry, task, config.simulator_options.get(task, {}), config.num_observations,
                                 config.num_samples, config.seed, out / "references" / f"{task}.npz")
        header["references"][task] = info
        took = "reused" if info["reused"] else f"{info['seconds']:.1f} s"
        log(f"reference {task}: {took}")
    cells = [(t, m, b) for b in config.budgets for t in config.tasks for m in config.methods]
    pending = [cell for cell in cells if cell_key(*cell) not in done]
    finished = len(cells) - len(pending)  # cells of this grid done, counting those kept by --resume

    def run_cell_timed(task: str, method: str, budget: int) -> dict[str, Any]:
        spec = cell_spec(config, registry, task, method, budget, out)
        cell_dir = out / "cells" / cell_key(task, method, budget)
        cell_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if config.isolate:
            result = _run_isolated(spec, cell_dir, config.cell_timeout_s)
        else:
            try:
                result = run_cell(spec, registry)
            except Exception as error:  # one failing method must not stop the suite
                result = {"task": task, "method": method, "budget": budget, "error": f"{type(error).__name__}: {error}"}
        result["cell_seconds"] = time.perf_counter() - start  # wall time of the cell, process start included
        return result

    def record(result: dict[str, Any]) -> None:
        nonlocal finished
        results.append(result)
        _write_json(results_path, {**header, "cells": results})
        write_tables(results, config, out)
        finished += 1
        where = f"[{finished}/{len(cells)}] {result['task']} {result['method']} {result['budget']}"
        if result.get("error"):
            log(f"{where}: FAILED {result['error']}")
        else:
            scores = ", ".join(f"{name} {value:.3f}" for name, value in
                               result.get("c2st_mean_by_classifier", {"C2ST": result["c2st_mean"]}).items())
            log(f"{where}: C2ST {scores}, train {result['train_seconds']:.1f} s, "
                f"sample {result['sample_seconds']:.2f} s, C2ST {result['c2st_seconds']:.1f} s, "
                f"cell {result['cell_seconds']:.0f} s, peak {result['peak_rss_mb']:.0f} MB")

    if config.jobs == 1:
        for cell in pending:
            record(run_cell_timed(*cell))
    else:
        with ThreadPoolExecutor(max_workers=config.jobs) as pool:  # threads only wait on the cell processes
            for future in as_completed([pool.submit(run_cell_timed, *cell) for cell in pending]):
                record(future.result())
    return results  # results.json and the tables were written after the last cell that ran
