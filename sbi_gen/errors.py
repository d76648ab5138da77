"""Exceptions raised by sbi-gen; each message names the problem and how to fix it."""

from __future__ import annotations

__all__ = [
    "SbiGenError",
    "PluginError",
    "UnknownPluginError",
    "DuplicatePluginError",
    "DataError",
    "PriorSupportError",
    "ModelFileError",
    "NotFittedError",
    "DeviceError",
    "UntrustworthyResultError",
    "TrainingDivergedError",
]


class SbiGenError(Exception):
    """Base class of every error sbi-gen raises on purpose."""


class PluginError(SbiGenError):
    """A plugin could not be found, loaded or registered."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin of the requested kind carries the requested name."""


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name for the same kind."""


class DataError(SbiGenError, ValueError):
    """Simulations or observations have the wrong shape, dtype or values."""


class PriorSupportError(DataError):
    """A parameter vector lies outside the support of the prior."""


class ModelFileError(SbiGenError, OSError):
    """A saved model or data file is missing, corrupt or of an unknown version."""


class NotFittedError(SbiGenError, RuntimeError):
    """An estimator was used before `fit` or `load`."""


class DeviceError(SbiGenError, ValueError):
    """A device name is unknown, or names hardware that is not available."""


class UntrustworthyResultError(SbiGenError, RuntimeError):
    """A computed result is wrong or cannot be trusted (non-finite samples, a failed diagnostic).

    The command line exits with status 3 on it, never 0, and writes no result file.
    """


class TrainingDivergedError(UntrustworthyResultError):
    """Training ended without a finite validation loss: there is no usable model to save."""


def refuse_unknown_options(options, known: list[str], owner: str) -> None:
    """Raise :class:`DataError` for the first name in ``options`` not in ``known``, with the closest match.

    The one check behind every plugin's options (:func:`sbi_gen.registry.Registry` builds and
    :meth:`sbi_gen.estimator_options.EstimatorOptions.parse`); ``owner`` names the plugin in the message.
    """
    import difflib

    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(f"unknown option {key!r} for {owner}.{hint} Its options: {', '.join(known)}")
