"""The JSON Schema of ``calibration.json``, and a small validator for it.

:data:`REPORT_SCHEMA` is standard JSON Schema (draft 2020-12), written next
to every report as ``calibration.schema.json``, so any validator can check a
report. :func:`validate` implements the subset the schema uses (``type``,
``enum``, ``properties``, ``required``, ``items``, ``minimum``, ``maximum``,
``$ref``) so sbi-gen needs no extra dependency.
"""

from __future__ import annotations

from typing import Any

from sbi_gen.calibration.verdict import LABELS

__all__ = ["REPORT_SCHEMA", "SchemaError", "validate"]

_NUM = {"type": "number"}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_CURVE = {"type": "array", "items": _PROB}
_INTERVAL = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}
_LABEL = {"type": "string", "enum": list(LABELS)}
_LABEL_MAP = {"type": "object", "additionalProperties": _LABEL}


def _object(required: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": required, "required": list(required)}


_C2ST = _object(
    {"label": _LABEL, "accuracy": _PROB, "accuracy_ci": _INTERVAL, "pvalue": _PROB, "threshold": _PROB,
     "per_observation": _CURVE, "num_samples": {"type": "array", "items": {"type": "integer"}}, "level": _PROB,
     "test": {"type": "string"}},
    "held-out C2ST accuracy, pooled over observations, with its Clopper-Pearson interval",
)

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://sbi-gen/calibration.schema.json",
    "title": "sbi-gen calibration report",
    "$defs": {"c2st": _C2ST},
    **_object(
        {
            "format": {"type": "string", "enum": ["sbi-gen-calibration"]},
            "format_version": {"type": "integer", "minimum": 1},
            "verdict": _object(
                {
                    "overall": _LABEL,
                    "per_parameter": _LABEL_MAP,
                    "per_diagnostic": _LABEL_MAP,
                    "findings": {"type": "array", "items": _object({
                        "subject": {"type": "string", "description": "a parameter name, or 'all'"},
                        "diagnostic": {"type": "string"}, "label": _LABEL, "statistic": {"type": "string"},
                        "value": _NUM, "ci": _INTERVAL, "expected": _NUM, "test": {"type": "string"},
                        "pvalue": _PROB, "level": _PROB})},
                    "skipped": {"type": "object", "additionalProperties": {"type": "string"}},
                    "alpha": _PROB,
                },
                "overall and per-parameter labels, with the statistic, interval and test behind each",
            ),
            "parameters": {"type": "array", "items": _object(
                {"name": {"type": "string"}, "unit": {"type": "string"}, "label": {"type": "string"},
                 "axis_label": {"type": "string"}})},
            "settings": _object({"num_pairs": {"type": "integer", "minimum": 1},
                                 "num_samples": {"type": "integer", "minimum": 1}, "alpha": _PROB,
                                 "seed": {"type": "integer"}}),
            "sbc": _object(
                {"uniformity": _object({"ranks": {"type": "array", "items": {"type": "array"}},
                                        "chi2_pvalues": _CURVE, "ks_pvalues": _CURVE, "pvalue": _PROB}),
                 "parameters": {"type": "array", "items": _object(
                     {"name": {"type": "string"}, "label": _LABEL, "rank_mean": _PROB, "rank_mean_ci": _INTERVAL,
                      "bias_pvalue": _PROB, "central_coverage": _PROB, "central_coverage_ci": _INTERVAL,
                      "dispersion_pvalue": _PROB, "shape_pvalue": _PROB, "ecdf": _CURVE})},
                 "band": _object({"points": _CURVE, "lower": _CURVE, "upper": _CURVE, "level": _PROB}),
                 "pvalue": _PROB},
                "SBC ranks (Talts et al. 2018) with per-parameter bias, dispersion and shape tests",
            ),
            "tarp": _object(
                {"label": _LABEL, "alpha": _CURVE, "ecp": _CURVE, "bootstrap_lower": _CURVE,
                 "bootstrap_upper": _CURVE, "band_lower": _CURVE, "band_upper": _CURVE, "atc": _NUM,
                 "atc_ci": _INTERVAL, "pvalue": _PROB},
                "TARP coverage curve (Lemos et al. 2023) and its area to curve",
            ),
            "coverage": {"anyOf": [{"type": "null"}, _object(
                {"label": _LABEL, "nominal": _CURVE, "empirical": _CURVE, "band_lower": _CURVE,
                 "band_upper": _CURVE, "area": _NUM, "area_ci": _INTERVAL, "pvalue": _PROB,
                 "levels": {"type": "object"}},
                "expected HPD coverage (Hermans et al. 2022); null without log_prob",
            )]},
            "reference_c2st": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/c2st"}]},
            "data_averaged_posterior": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/c2st"}]},
            "notes": {"type": "array", "items": {"type": "string"}},
            "timings": {"type": "object", "additionalProperties": _NUM},
        },
        "calibration.json: verdict, settings and the result of every diagnostic",
    ),
}


class SchemaError(ValueError):
    """A report does not match the schema; the message names the JSON path."""


_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "null": type(None),
          "boolean": bool}


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$") -> None:
    """Raise :class:`SchemaError` unless ``value`` matches ``schema`` (the subset described above)."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return validate(value, target, root, path)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                return validate(value, option, root, path)
            except SchemaError as error:
                errors.append(str(error))
        raise SchemaError(f"{path}: matches no allowed form ({'; '.join(errors)})")
    kind = schema.get("type")
    if kind and (not isinstance(value, _TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool))):
        raise SchemaError(f"{path}: expected {kind}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise SchemaError(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            bounds = f"[{schema.get('minItems')}, {schema.get('maxItems')}]"
            raise SchemaError(f"{path}: {len(value)} items, outside {bounds}")
        for i, item in enumerate(value):
            if "items" in schema:
                validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError(f"{path}: missing key {key!r}")
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                validate(item, sub, root, f"{path}.{key}")
    return None
