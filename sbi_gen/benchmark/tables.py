"""Benchmark results as Markdown tables and a C2ST-versus-budget plot."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["markdown", "ratio_rows", "plot_c2st_vs_budget", "write_tables"]

CLASSIFIER_NOTE = (
    "C2ST: cross-validated accuracy of a classifier told apart reference and estimated posterior samples, "
    "0.5 is perfect; mean over the observations (max in brackets). Every method and toolkit is scored by the "
    "same classifiers on the same reference samples: {classifiers}. Tasks marked (sbibm) are sbibm's own "
    "(its prior, simulator, observations 1-N and published reference samples); the others are sbi-gen's, on "
    "observations drawn from the prior."
)


def _classifiers(results: list[dict[str, Any]]) -> list[str]:
    """The classifiers of the results, primary first (results written before there were several: torch-mlp)."""
    names: list[str] = []
    for r in _ok(results):
        for name in r.get("c2st_by_classifier", {"torch-mlp": None}):
            if name not in names:
                names.append(name)
    return names


def _c2st(result: dict[str, Any], classifier: str) -> list[float] | None:
    by = result.get("c2st_by_classifier") or {"torch-mlp": result["c2st"]}
    return by.get(classifier)


def _task_label(result: dict[str, Any]) -> str:
    return f"{result['task']} (sbibm)" if result.get("observations") == "published" else result["task"]


def _ok(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if not r.get("error")]


def ratio_rows(results: list[dict[str, Any]], comparisons: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Our method over its sbi counterpart, per task and budget: C2ST, training time and sampling time ratios."""
    by_key = {(r["task"], r["method"], r["budget"]): r for r in _ok(results)}
    rows = []
    for (task, method, budget), ours in sorted(by_key.items()):
        for baseline in comparisons.get(method, []):
            theirs = by_key.get((task, baseline, budget))
            if theirs is None:
                continue
            rows.append({
                "task": task, "budget": budget, "method": method, "versus": baseline,
                "c2st_ratio": ours["c2st_mean"] / theirs["c2st_mean"],
                "c2st_by_classifier": {
                    name: (sum(_c2st(ours, name)) / len(_c2st(ours, name)),
                           sum(_c2st(theirs, name)) / len(_c2st(theirs, name)))
                    for name in _classifiers([ours]) if _c2st(theirs, name) is not None
                },
                "train_time_ratio": ours["train_seconds"] / theirs["train_seconds"],
                "train_cpu_ratio": (ours["train_cpu_seconds"] / theirs["train_cpu_seconds"]
                                    if "train_cpu_seconds" in ours and "train_cpu_seconds" in theirs else None),
                "sample_time_ratio": ours["sample_seconds"] / max(theirs["sample_seconds"], 1e-9),
                "c2st": (ours["c2st_mean"], theirs["c2st_mean"]),
            })
    return rows


def _seconds(result: dict[str, Any], key: str) -> str:
    return f"{result[key]:.0f}" if key in result else "-"  # results written before the field existed lack it


def _mean_max(values: list[float] | None) -> str:
    return "-" if not values else f"{sum(values) / len(values):.3f} ({max(values):.3f})"


def markdown(results: list[dict[str, Any]], comparisons: dict[str, list[str]]) -> str:
    """One table per budget (task x method), then the ratio table and any failed cells."""
    from sbi_gen.benchmark.classifiers import CLASSIFIERS

    classifiers = _classifiers(results)
    described = "; ".join(f"{name}: {CLASSIFIERS.get(name, name)}" for name in classifiers)
    lines = ["# Benchmark results", "", CLASSIFIER_NOTE.format(classifiers=described), ""]
    budgets = sorted({r["budget"] for r in results})
    c2st_columns = " | ".join(f"C2ST {name}" for name in classifiers)
    for budget in budgets:
        rows = [r for r in _ok(results) if r["budget"] == budget]
        if not rows:
            continue
        lines += [f"## {budget:,} simulations", "",
                  f"| task | method | {c2st_columns} | train s | train CPU s | epochs | sample s (all obs.) | "
                  "cell s | peak RSS MB |", "|---|---|" + "---|" * (len(classifiers) + 6)]
        for r in sorted(rows, key=lambda r: (r["task"], r["method"].startswith("sbi:"), r["method"])):
            scores = " | ".join(_mean_max(_c2st(r, name)) for name in classifiers)
            lines.append(
                f"| {_task_label(r)} | {r['method']} | {scores} | {r['train_seconds']:.1f} | "
                f"{_seconds(r, 'train_cpu_seconds')} | {r['epochs']} | {r['sample_seconds']:.2f} | "
                f"{_seconds(r, 'cell_seconds')} | {r['peak_rss_mb']:.0f} |"
            )
        lines.append("")
        first = rows[0]
        total = sum(r.get("cell_seconds", 0.0) for r in rows)
        lines += [f"{first['num_observations']} observations x {first['num_samples']:,} posterior samples; "
                  f"{first['threads']} torch thread(s) per cell, {first.get('jobs', 1)} cell(s) at a time; "
                  f"\"cell s\" is the cell's wall time (process start, "
                  f"simulation, training, sampling and C2ST), {total / 60:.1f} min for the cells of this table.", ""]
    ratios = ratio_rows(results, comparisons)
    if ratios:
        pair_columns = " | ".join(f"C2ST {name} (ours / sbi)" for name in classifiers)
        lines += ["## Ours over sbi (same simulations, observations and classifiers; below 1 favours sbi-gen)", "",
                  f"| task | budget | method | versus | {pair_columns} | C2ST ratio ({classifiers[0]}) | "
                  "train time ratio | train CPU ratio | sample time ratio |",
                  "|---|---|---|---|" + "---|" * (len(classifiers) + 4)]
        for row in ratios:
            pairs = " | ".join(
                f"{row['c2st_by_classifier'][name][0]:.3f} / {row['c2st_by_classifier'][name][1]:.3f}"
                if name in row["c2st_by_classifier"] else "-" for name in classifiers
            )
            cpu = "-" if row["train_cpu_ratio"] is None else f"{row['train_cpu_ratio']:.2f}"
            lines.append(
                f"| {row['task']} | {row['budget']:,} | {row['method']} | {row['versus']} | {pairs} | "
                f"{row['c2st_ratio']:.3f} | {row['train_time_ratio']:.2f} | {cpu} | {row['sample_time_ratio']:.3f} |"
            )
        lines.append("")
    failed = [r for r in results if r.get("error")]
    if failed:
        lines += ["## Failed cells", ""] + [f"- {r['task']} / {r['method']} / {r['budget']}: {r['error']}"
                                           for r in failed] + [""]
    return "\n".join(lines)


def plot_c2st_vs_budget(results: list[dict[str, Any]], path: str | Path) -> Path:
    """C2ST against budget (log axis), one panel per task, one line per method (sbi's dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in _ok(results):
        series[r["task"]][r["method"]].append((r["budget"], r["c2st_mean"]))
    tasks = sorted(series)
    figure, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4 * max(1, len(tasks)), 3.4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        for method, points in sorted(series[task].items()):
            points.sort()
            budgets, values = zip(*points)
            axis.plot(budgets, values, "--" if method.startswith("sbi:") else "-", marker="o", label=method)
        axis.set_xscale("log")
        axis.set_ylim(0.45, 1.02)
        axis.axhline(0.5, color="grey", lw=0.8)
        axis.set_title(task)
        axis.set_xlabel("simulations")
    axes[0][0].set_ylabel("C2ST accuracy (0.5 = perfect)")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    path = Path(path)
    partial = path.with_name(path.stem + ".partial.png")
    figure.savefig(partial, dpi=120)
    plt.close(figure)
    os.replace(partial, path)
    return path


def write_tables(results: list[dict[str, Any]], config, out: str | Path) -> None:
    """``results.md`` and ``c2st_vs_budget.png`` in ``out``."""
    out = Path(out)
    partial = out / "results.md.partial"
    partial.write_text(markdown(results, config.comparisons))
    os.replace(partial, out / "results.md")
    if _ok(results):
        plot_c2st_vs_budget(results, out / "c2st_vs_budget.png")
