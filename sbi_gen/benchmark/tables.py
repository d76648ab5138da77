"""Benchmark results as Markdown tables and a C2ST-versus-budget plot."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["markdown", "ratio_rows", "plot_c2st_vs_budget", "write_tables"]

CLASSIFIER_NOTE = (
    "C2ST: accuracy of sbi-gen's torch MLP classifier (the sbibm architecture: 2 hidden layers of 10 d ReLU "
    "units, inputs z-scored on the reference, 5-fold cross-validation), the same classifier for every method "
    "and toolkit; 0.5 is perfect. Mean over the observations (max in brackets)."
)


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
                "train_time_ratio": ours["train_seconds"] / theirs["train_seconds"],
                "sample_time_ratio": ours["sample_seconds"] / max(theirs["sample_seconds"], 1e-9),
                "c2st": (ours["c2st_mean"], theirs["c2st_mean"]),
            })
    return rows


def _seconds(result: dict[str, Any], key: str) -> str:
    return f"{result[key]:.0f}" if key in result else "-"  # results written before the field existed lack it


def markdown(results: list[dict[str, Any]], comparisons: dict[str, list[str]]) -> str:
    """One table per budget (task x method), then the ratio table and any failed cells."""
    lines = ["# Benchmark results", "", CLASSIFIER_NOTE, ""]
    budgets = sorted({r["budget"] for r in results})
    for budget in budgets:
        rows = [r for r in _ok(results) if r["budget"] == budget]
        if not rows:
            continue
        lines += [f"## {budget:,} simulations", "",
                  "| task | method | C2ST | train s | epochs | sample s (all obs.) | cell s | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: (r["task"], r["method"].startswith("sbi:"), r["method"])):
            lines.append(
                f"| {r['task']} | {r['method']} | {r['c2st_mean']:.3f} ({max(r['c2st']):.3f}) | "
                f"{r['train_seconds']:.1f} | {r['epochs']} | {r['sample_seconds']:.2f} | "
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
        lines += ["## Ours over sbi (same simulations, observations and classifier; below 1 favours sbi-gen)", "",
                  "| task | budget | method | versus | C2ST (ours / sbi) | C2ST ratio | train time ratio | "
                  "sample time ratio |", "|---|---|---|---|---|---|---|---|"]
        for row in ratios:
            lines.append(
                f"| {row['task']} | {row['budget']:,} | {row['method']} | {row['versus']} | "
                f"{row['c2st'][0]:.3f} / {row['c2st'][1]:.3f} | {row['c2st_ratio']:.3f} | "
                f"{row['train_time_ratio']:.2f} | {row['sample_time_ratio']:.3f} |"
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
