"""``calibration.md``: the report for people, rendered from the ``calibration.json`` data."""

from __future__ import annotations

from typing import Any

__all__ = ["render_markdown"]

_MEANING = {
    "calibrated": "no diagnostic finds a miscalibration at the chosen level",
    "overconfident": "credible regions are too small: the truth falls outside them too often",
    "underconfident": "credible regions are too large: the truth falls inside them too often",
    "biased": "the posterior is shifted: the truth sits on one side of it too often",
    "miscalibrated": "a test rejects, but no statistic names the direction",
}
_DIAGNOSTIC = {
    "sbc": "SBC (Talts et al. 2018, arXiv:1804.06788)",
    "coverage": "Expected coverage (Hermans et al. 2022, arXiv:2110.06581)",
    "tarp": "TARP (Lemos et al. 2023, arXiv:2302.03026)",
    "reference_c2st": "C2ST against the reference posterior",
    "data_averaged_posterior": "Data-averaged posterior vs prior (C2ST)",
}


def _row(finding: dict[str, Any]) -> str:
    low, high = finding["ci"]
    return (f"| {finding['subject']} | {_DIAGNOSTIC.get(finding['diagnostic'], finding['diagnostic'])} | "
            f"**{finding['label']}** | {finding['statistic']} | {finding['value']:.4g} | "
            f"[{low:.4g}, {high:.4g}] ({finding['level']:.4%}) | {finding['expected']:.4g} | {finding['test']} | "
            f"{finding['pvalue']:.3g} |")


def render_markdown(data: dict[str, Any], images: list[str]) -> str:
    """Markdown summary of a report dictionary (``CalibrationReport.to_dict()``), linking ``images``."""
    verdict, settings = data["verdict"], data["settings"]
    names = {p["name"]: p["axis_label"] for p in data["parameters"]}
    lines = [
        "# Calibration report",
        "",
        f"**Overall: {verdict['overall']}**: {_MEANING[verdict['overall']]}.",
        "",
        (f"{settings['num_pairs']} test pairs, {settings['num_samples']} posterior draws each, drawn once and "
         f"shared by every diagnostic. Family-wise level alpha = {settings['alpha']:g}, split equally over the "
         f"diagnostics that ran ({settings['alpha_per_diagnostic']:.3g} each)."),
        "",
        "## Per parameter (SBC)",
        "",
        "| parameter | verdict | rank mean [CI] (0.5 expected) | central 50% coverage [CI] | uniformity p |",
        "|---|---|---|---|---|",
    ]
    for check in data["sbc"]["parameters"]:
        (m_low, m_high), (c_low, c_high) = check["rank_mean_ci"], check["central_coverage_ci"]
        lines.append(
            f"| {names[check['name']]} | **{verdict['per_parameter'][check['name']]}** | {check['rank_mean']:.3f} "
            f"[{m_low:.3f}, {m_high:.3f}] | {check['central_coverage']:.3f} [{c_low:.3f}, {c_high:.3f}] "
            f"(nominal {check['central_nominal']:.3f}) | {check['shape_pvalue']:.3g} |"
        )
    lines += ["", "## Per diagnostic", "", "| diagnostic | verdict |", "|---|---|"]
    lines += [f"| {_DIAGNOSTIC.get(name, name)} | **{label}** |" for name, label in verdict["per_diagnostic"].items()]
    lines += [f"| {_DIAGNOSTIC.get(name, name)} | skipped: {why} |" for name, why in verdict["skipped"].items()]
    coverage = data.get("coverage")
    if coverage:
        lines += ["", "Coverage of HPD regions at chosen levels:", ""]
        lines += [f"- {float(k):.0%} region: {v['empirical']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                  for k, v in coverage["levels"].items()]
    lines += [
        "", "## Evidence", "",
        ("Each line: the statistic, its confidence interval (at the level of its test), the value expected for a "
         "calibrated posterior, the test and its p-value."), "",
        "| subject | diagnostic | label | statistic | value | CI | expected | test | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(finding) for finding in verdict["findings"]]
    if data["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in data["notes"]]
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    lines += ["", "Rules behind the labels: `sbi_gen/calibration/verdict.py` (module docstring).", ""]
    return "\n".join(lines)
