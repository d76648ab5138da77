"""Posterior samples as an ArviZ ``InferenceData`` (netCDF) or as bilby result files (JSON).

ArviZ is how the Bayesian Python world reads posterior draws (its summaries,
ESS, plots); writing our samples in its layout lets a user apply all of it to
an amortized posterior. Groups (dimension names in brackets):

- ``posterior``: one variable per parameter ``[chain=1, draw=n, observation=B]``,
  with the parameter's astropy unit and plot label as attributes;
- ``sample_stats``: ``log_weight [chain, draw, observation]`` when the draws
  are importance-sampling proposals (``sbi-gen refine``);
- ``observed_data``: the observations ``x [observation, x_dim_0, ...]``;
- ``true_parameters``: the parameters that made each observation, when known;
- ``evidence``: ``log_evidence`` and ``log_evidence_error [observation]`` from refinement.

Needs the optional extra ``pip install "sbi-gen[export]"`` (``arviz-base``,
``h5netcdf``); nothing in the core imports this module.

:func:`bilby_result` writes the other format of the field, a bilby result
file per observation (``{label}_result.json``), readable by bilby's
``read_in_result`` for its plots and post-processing; it needs no extra.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sbi_gen.errors import DataError
from sbi_gen.prior import Parameter

__all__ = ["require_export_extra", "to_inference_data", "write_netcdf", "read_netcdf", "bilby_result",
           "write_bilby_results"]

EXTRA_HINT = 'writing netCDF needs the export extra: pip install "sbi-gen[export]" (arviz-base and h5netcdf)'


def require_export_extra():
    """``(arviz_base, xarray)``; without the export extra, a :class:`DataError` that says how to install it."""
    try:
        import arviz_base
        import xarray
    except ImportError:
        raise DataError(EXTRA_HINT) from None
    return arviz_base, xarray


def to_inference_data(
    samples: Any, parameters: Sequence[Parameter], *, x_obs: Any = None, theta_true: Any = None,
    log_weights: Any = None, log_evidence: Any = None, log_evidence_error: Any = None,
    attrs: dict[str, Any] | None = None,
):
    """An ``InferenceData`` (``xarray.DataTree``) of ``samples [n, B, d]`` for ``B`` observations.

    Arguments:
        parameters: the prior's parameters (names, units, labels), ``d`` of them.
        x_obs: ``[B, *x_shape]`` observations; theta_true: ``[B, d]`` when known.
        log_weights: ``[n, B]`` importance log weights of the draws; log_evidence,
            log_evidence_error: ``[B]`` (natural log).
        attrs: extra root attributes (JSON-like scalars and strings), e.g. the model's plugin.
    """
    arviz_base, xarray = require_export_extra()
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3 or samples.shape[2] != len(parameters):
        raise DataError(f"samples must have shape [n, B, {len(parameters)}], got {list(samples.shape)}")
    num_observations = samples.shape[1]
    posterior = {p.name: samples[None, :, :, i] for i, p in enumerate(parameters)}
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior}
    dims = {p.name: ["observation"] for p in parameters}
    if log_weights is not None:
        groups["sample_stats"] = {"log_weight": np.asarray(log_weights, dtype=np.float64)[None]}
        dims["log_weight"] = ["observation"]
    tree = arviz_base.from_dict(groups, dims=dims, coords={"observation": np.arange(num_observations)})
    for parameter in parameters:
        tree["posterior"][parameter.name].attrs.update(unit=parameter.unit, label=parameter.label)
    extra: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {}
    if x_obs is not None:
        x = np.asarray(x_obs, dtype=np.float64)
        extra["observed_data"] = {"x": (["observation", *[f"x_dim_{k}" for k in range(x.ndim - 1)]], x)}
    if theta_true is not None:
        theta = np.asarray(theta_true, dtype=np.float64).reshape(num_observations, len(parameters))
        extra["true_parameters"] = {p.name: (["observation"], theta[:, i]) for i, p in enumerate(parameters)}
    if log_evidence is not None:
        evidence = {"log_evidence": (["observation"], np.asarray(log_evidence, dtype=np.float64).reshape(-1))}
        if log_evidence_error is not None:
            error = np.asarray(log_evidence_error, dtype=np.float64).reshape(-1)
            evidence["log_evidence_error"] = (["observation"], error)
        extra["evidence"] = evidence
    for name, variables in extra.items():
        tree[name] = xarray.DataTree(xarray.Dataset(variables, coords={"observation": np.arange(num_observations)}))
    tree.attrs.update({"creation_library": "sbi-gen", **(attrs or {})})
    return tree


def write_netcdf(path: str | os.PathLike, tree) -> Path:
    """Write ``tree`` to ``path`` (``.nc``) with the h5netcdf engine, atomically (renamed into place)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        tree.to_netcdf(partial, engine="h5netcdf")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def read_netcdf(path: str | os.PathLike):
    """The ``InferenceData`` written by :func:`write_netcdf` (``xarray.open_datatree``)."""
    _, xarray = require_export_extra()
    return xarray.open_datatree(Path(path), engine="h5netcdf")


def bilby_result(
    samples: Any, parameters: Sequence[Parameter], *, label: str, injection: Any = None,
    log_evidence: float = float("nan"), log_evidence_error: float = float("nan"), meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A bilby result (the JSON dictionary ``bilby.core.result.read_in_result`` loads) for ``samples [n, d]``.

    bilby's result files hold equal-weight posterior draws of one event, so write one per observation
    (refined draws after importance sampling). The posterior is bilby's encoded ``pandas.DataFrame``;
    parameter labels carry their units; priors are left out (bilby would import their classes by
    name when reading) and recorded instead as sbi-gen's prior config in ``meta_data``.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != len(parameters):
        raise DataError(f"samples for one observation must have shape [n, {len(parameters)}], got "
                        f"{list(samples.shape)}")
    names = [p.name for p in parameters]
    result = {
        "label": label, "outdir": ".", "sampler": "sbi-gen",
        "search_parameter_keys": names, "fixed_parameter_keys": [], "constraint_parameter_keys": [],
        "parameter_labels": [p.label for p in parameters],
        "parameter_labels_with_unit": [f"{p.label} [{p.unit}]" if p.unit else p.label for p in parameters],
        "posterior": {"__dataframe__": True, "content": {n: samples[:, i].tolist() for i, n in enumerate(names)}},
        "log_evidence": float(log_evidence), "log_evidence_err": float(log_evidence_error),
        "meta_data": meta or {},
    }
    if injection is not None:
        values = np.asarray(injection, dtype=np.float64).reshape(-1)
        result["injection_parameters"] = dict(zip(names, values.tolist()))
    return result


def write_bilby_results(folder: str | os.PathLike, results: Sequence[dict[str, Any]]) -> list[Path]:
    """Write each :func:`bilby_result` as ``FOLDER/{label}_result.json`` (bilby's file name); returns the paths."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        path = folder / f"{result['label']}_result.json"
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(result, allow_nan=True))
        os.replace(partial, path)
        paths.append(path)
    return paths
