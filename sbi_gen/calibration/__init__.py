"""Calibration diagnostics: pure functions over samples, returning JSON-serializable results.

``calibrate`` / ``calibrate_estimator`` run them all on one shared set of
posterior draws and ``write_report`` writes JSON, Markdown and PNG plots.
"""

from sbi_gen.calibration.c2st import C2STResult, c2st, c2st_per_observation
from sbi_gen.calibration.c2st_checks import (
    C2STCheck,
    data_averaged_posterior_check,
    reference_c2st_check,
)
from sbi_gen.calibration.coverage import CoverageResult, expected_coverage
from sbi_gen.calibration.report import (
    CalibrationReport,
    PosteriorDraws,
    calibrate,
    calibrate_estimator,
    calibrate_samples,
    draw_posterior,
    write_report,
)
from sbi_gen.calibration.sbc import (
    ParameterCheck,
    SBCCheck,
    SBCResult,
    sbc_check,
    sbc_ranks,
    sbc_test,
)
from sbi_gen.calibration.schema import REPORT_SCHEMA, validate
from sbi_gen.calibration.tarp import TARPResult, tarp
from sbi_gen.calibration.verdict import LABELS, Verdict

__all__ = [
    "LABELS",
    "REPORT_SCHEMA",
    "C2STCheck",
    "C2STResult",
    "CalibrationReport",
    "CoverageResult",
    "ParameterCheck",
    "PosteriorDraws",
    "SBCCheck",
    "SBCResult",
    "TARPResult",
    "Verdict",
    "c2st",
    "c2st_per_observation",
    "calibrate",
    "calibrate_estimator",
    "calibrate_samples",
    "data_averaged_posterior_check",
    "draw_posterior",
    "expected_coverage",
    "reference_c2st_check",
    "sbc_check",
    "sbc_ranks",
    "sbc_test",
    "tarp",
    "validate",
    "write_report",
]
