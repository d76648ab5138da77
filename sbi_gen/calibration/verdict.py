"""From diagnostics to one word: calibrated, overconfident, underconfident or biased.

Labels, and the evidence each diagnostic uses (details in its module):

- ``overconfident``: credible regions too small. SBC ranks U-shaped (the
  central 50% interval covers ``theta*`` less than half the time); HPD
  coverage below nominal (signed area < 0); TARP ATC < 0.
- ``underconfident``: credible regions too large. Hump-shaped ranks (central
  coverage above half); coverage above nominal; ATC > 0.
- ``biased``: the posterior is shifted. SBC rank mean away from 1/2 (skewed
  ranks). Coverage and TARP see a shift only as lost coverage, so only SBC
  can name it.
- ``miscalibrated``: a test rejects but no directional statistic does (e.g.
  C2ST against the reference or the data-averaged-posterior check, which
  cannot tell a direction, or an odd rank shape).

Every diagnostic that runs gets an equal share ``alpha / k`` of the
family-wise level ``alpha`` (Bonferroni over ``k`` diagnostics), and splits it
further among its own tests, so a calibrated posterior is called calibrated
with probability at least ``1 - alpha``.

Combining labels (per SBC over parameters, and overall over diagnostics):
all ``calibrated`` -> ``calibrated``; else any ``biased`` -> ``biased``; else
the more frequent of ``overconfident`` / ``underconfident`` (a tie, or
neither, -> ``miscalibrated``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LABELS", "Finding", "Verdict", "combine_labels"]

LABELS = ("calibrated", "overconfident", "underconfident", "biased", "miscalibrated")


def combine_labels(labels: list[str]) -> str:
    """One label for several (see the module docstring); ``calibrated`` for none."""
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown calibration label(s) {sorted(unknown)}; expected one of {LABELS}")
    flagged = [label for label in labels if label != "calibrated"]
    if not flagged:
        return "calibrated"
    if "biased" in flagged:
        return "biased"
    votes = Counter(flagged)
    over, under = votes["overconfident"], votes["underconfident"]
    if over != under:
        return "overconfident" if over > under else "underconfident"
    return "miscalibrated"


@dataclass
class Finding:
    """One line of evidence: a statistic with its interval, the test and its p-value."""

    subject: str
    diagnostic: str
    label: str
    statistic: str
    value: float
    ci: tuple[float, float]
    expected: float
    test: str
    pvalue: float
    level: float


@dataclass
class Verdict:
    """Overall label, labels per parameter and per diagnostic, and the evidence."""

    overall: str
    per_parameter: dict[str, str]
    per_diagnostic: dict[str, str]
    findings: list[Finding]
    skipped: dict[str, str] = field(default_factory=dict)
    alpha: float = 0.01

    @classmethod
    def from_findings(cls, findings: list[Finding], parameters: list[str], skipped: dict[str, str],
                      alpha: float) -> Verdict:
        """Combine per-diagnostic findings (parameter findings have ``subject`` = the parameter name)."""
        per_parameter = {
            name: combine_labels([f.label for f in findings if f.subject == name]) for name in parameters
        }
        diagnostics = list(dict.fromkeys(f.diagnostic for f in findings))
        per_diagnostic = {
            name: combine_labels([f.label for f in findings if f.diagnostic == name]) for name in diagnostics
        }
        overall = combine_labels(list(per_diagnostic.values()))
        return cls(overall, per_parameter, per_diagnostic, findings, skipped, alpha)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
