"""A saved model on disk: ``config.json`` + ``weights.safetensors``, written atomically, verified on reading.

No pickle anywhere: the weights are tensors in the safetensors format and
everything else is JSON, so reading a model can never run code. At save time
the config records the SHA-256 of the weights file and of each config field the
weights are only valid with (:data:`WEIGHT_BOUND_FIELDS`); reading refuses a
damaged or swapped weights file and an edited prior, shape or option, and says
which.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import Tensor

from sbi_gen.errors import ModelFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CONFIG_FILE", "WEIGHTS_FILE", "WEIGHT_BOUND_FIELDS",
           "write_model_files", "read_model_files"]

FORMAT_NAME = "sbi-gen-estimator"
#: 2: config.json records checksums of the weights and of the fields they were trained for
FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
#: the config fields a network's weights are only valid with (edited, they no longer match the weights)
WEIGHT_BOUND_FIELDS = ("plugin", "options", "theta_dim", "x_shape", "prior")


def write_model_files(path: Path, config: dict[str, Any], state: dict[str, Tensor]) -> None:
    """Write ``state`` then ``config`` (with its checksums) into the directory ``path``, each atomically."""
    digest: dict[str, str] = {}

    def write_weights(tmp: Path) -> None:
        save_file(state, str(tmp))
        digest["weights"] = hashlib.sha256(tmp.read_bytes()).hexdigest()

    _atomic_write(path / WEIGHTS_FILE, write_weights)
    config = {**config, "checksums": {"weights_sha256": digest["weights"], "fields_sha256": _field_digests(config)}}
    _atomic_write(path / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))


def read_model_files(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The config and weights saved in ``path``, checked; :class:`ModelFileError` names what is wrong."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file():
        raise ModelFileError(f"{path} is not a saved sbi-gen model: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{config_file} is corrupt: not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{config_file} is not an sbi-gen model config (no format {FORMAT_NAME!r})")
    version = config.get("format_version", 1)
    if not isinstance(version, int):
        raise ModelFileError(f"{config_file}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was saved in format version {version}; this sbi-gen reads up to {FORMAT_VERSION}: upgrade sbi-gen"
        )
    if version < FORMAT_VERSION:  # no release ever wrote an older format: there is nothing to stay compatible with
        raise ModelFileError(
            f"{path} was saved in format version {version} by a development version of sbi-gen, without the "
            f"checksums this one verifies; retrain the model (this sbi-gen reads format {FORMAT_VERSION})"
        )
    missing = {"plugin", "options", "prior", "x_shape"} - set(config)
    if missing:
        raise ModelFileError(f"{config_file} lacks the key(s) {sorted(missing)}")
    if not weights_file.is_file():
        raise ModelFileError(f"{path}: {WEIGHTS_FILE} is missing")
    weights = weights_file.read_bytes()
    _verify_checksums(config, weights, path)
    if not isinstance(config["plugin"], str) or not isinstance(config["options"], dict):
        raise ModelFileError(f"{config_file}: 'plugin' must be a name and 'options' a JSON object")
    try:
        state = load_safetensors(weights)
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{weights_file} is corrupt or truncated ({error})") from None
    return config, state


def _canonical_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _field_digests(config: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of each weight-bound config field, over its canonical JSON."""
    return {key: _canonical_digest(config.get(key)) for key in WEIGHT_BOUND_FIELDS}


def _verify_checksums(config: dict[str, Any], weights: bytes, path: Path) -> None:
    """Refuse weights or weight-bound fields that differ from what was saved together."""
    checksums = config.get("checksums")
    if not isinstance(checksums, dict):
        raise ModelFileError(f"{path / CONFIG_FILE} records no checksums; the model cannot be verified")
    if hashlib.sha256(weights).hexdigest() != checksums.get("weights_sha256"):
        raise ModelFileError(
            f"{path / WEIGHTS_FILE} does not match the checksum recorded in {CONFIG_FILE}: the file is damaged or "
            "comes from another model; restore this model's own weights or retrain"
        )
    recorded = checksums.get("fields_sha256") or {}
    changed = [key for key, digest in _field_digests(config).items() if recorded.get(key) != digest]
    if changed:
        raise ModelFileError(
            f"{path / CONFIG_FILE}: {', '.join(changed)} changed after the model was saved, but the weights were "
            "trained for the saved values; restore them (or retrain with the new settings)"
        )


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
