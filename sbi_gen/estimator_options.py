"""Estimator options as typed dataclasses: declared once, validated on construction, saved as JSON.

Each estimator plugin lists its architecture options in one frozen dataclass
(its ``Options``), with a default and a line of documentation per field. The
estimator reads them as attributes (``self.options.num_transforms``); the base
class builds the estimator's call signature from the same fields, so the
registry's option-name check (with its "did you mean" hint) sees them, and the
saved ``config.json`` holds :meth:`EstimatorOptions.to_dict`.

Validation on construction: every field's value must match its annotation
(``bool``, ``int``, ``float``, ``str``, a ``Literal`` of choices, a ``dict``,
optionally ``| None``), then :meth:`EstimatorOptions.validate` checks ranges and
combinations, and the whole record must be JSON-serializable. Every message
names the option.

Example::

    @dataclass(frozen=True)
    class MyOptions(EmbeddingOptions):
        #: width of the hidden layers
        hidden_features: int = 64

        def validate(self) -> None:
            if self.hidden_features < 1:
                raise ValueError(f"option 'hidden_features' must be positive, got {self.hidden_features}")
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sbi_gen.errors import DataError, refuse_unknown_options

__all__ = ["EstimatorOptions", "EmbeddingOptions"]

T = TypeVar("T", bound="EstimatorOptions")


@dataclass(frozen=True)
class EstimatorOptions:
    """Base of every estimator's options."""

    #: how parameters on a finite interval are mapped for the network: ``"logit"`` (to the whole line, no
    #: mass outside the prior) or ``"truncate"`` (z-scored only; draws outside the prior are rejected and the
    #: density renormalized, :mod:`sbi_gen.posterior_draws`), which is more accurate where the logit bends the
    #: posterior (:mod:`sbi_gen.nn.support`)
    bounded_support: Literal["logit", "truncate"] = "logit"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            _check_type(item.name, getattr(self, item.name), hints[item.name])
        self.validate()
        try:
            json.dumps(self.to_dict())
        except (TypeError, ValueError) as error:
            raise TypeError(f"options must be JSON values (they are saved with the model): {error}") from None

    def validate(self) -> None:
        """Check ranges and combinations of fields; raise ``ValueError`` naming the option (override)."""

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready ``{name: value}`` (what ``config.json`` records)."""
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in declaration order."""
        return [item.name for item in dataclasses.fields(cls)]

    @classmethod
    def parse(cls: type[T], options: Mapping[str, Any], owner: str) -> T:
        """``cls(**options)``; any problem is a :class:`DataError` that names ``owner`` and the option."""
        refuse_unknown_options(options, cls.names(), owner)
        try:
            return cls(**options)
        except (TypeError, ValueError) as error:
            raise DataError(f"{owner}: {error}") from None

    @classmethod
    def signature(cls) -> inspect.Signature:
        """``(device="cpu", *, <each option>=<its default>)``: the call signature of an estimator with these options."""
        parameters = [inspect.Parameter("device", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="cpu")]
        for item in dataclasses.fields(cls):
            default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
            parameters.append(inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=default))
        return inspect.Signature(parameters)


@dataclass(frozen=True)
class EmbeddingOptions(EstimatorOptions):
    """Options of estimators that summarize ``x`` with a registered embedding net.

    The estimator resolves the embedding once, through its registry, and hands the built net
    to its network (see :meth:`~sbi_gen.PosteriorEstimator.build`).
    """

    #: registered embedding-net name for ``x`` (``sbi-gen plugins`` lists them)
    embedding: str = "mlp"
    #: size of the embedding's output (``None``: the embedding's own default: 32 for the learned ones,
    #: the number of entries of ``x`` for ``identity``)
    embedding_features: int | None = None
    #: keyword options of the embedding net (``None`` is taken as ``{}``)
    embedding_options: dict[str, Any] | None = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embedding_options is None or isinstance(self.embedding_options, Mapping):
            object.__setattr__(self, "embedding_options", dict(self.embedding_options or {}))
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.embedding_features is not None and self.embedding_features < 1:
            raise ValueError(f"option 'embedding_features' must be positive, got {self.embedding_features}")


def _check_type(name: str, value: Any, hint: Any) -> None:
    """Raise ``TypeError`` / ``ValueError`` naming option ``name`` if ``value`` does not match ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None)) if len(args) == 2 and type(None) in args else Any
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"unknown {name} {value!r}: option {name!r} takes one of {args}")
        return
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,), dict: (Mapping,)}.get(origin or hint)
    if expected is None:
        return
    if not isinstance(value, expected) or (isinstance(value, bool) and hint is not bool):
        noun = {bool: "True or False", int: "a whole number", float: "a number", str: "a string",
                dict: "a dict"}[origin or hint]
        raise TypeError(f"option {name!r} must be {noun}, got {value!r} ({type(value).__name__})")
