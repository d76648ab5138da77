"""Calibration diagnostics: pure functions over samples, returning JSON-serializable results."""

from sbi_gen.calibration.c2st import C2STResult, c2st
from sbi_gen.calibration.sbc import SBCResult, sbc_ranks, sbc_test

__all__ = ["C2STResult", "SBCResult", "c2st", "sbc_ranks", "sbc_test"]
