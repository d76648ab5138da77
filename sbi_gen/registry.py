"""Plugin manager: entry-point discovery, name lookup and clear errors.

Every simulator, estimator and embedding net (the built-in ones too) comes
from a plugin in the ``sbi_gen`` entry-point group. Loading is guarded: a
plugin that fails to import is recorded with its name and the exception, and
every other plugin keeps working. Two plugins registering the same name is an
error that names both distributions.

Environment variables:
    ``SBI_GEN_DISABLE_PLUGINS``: comma-separated entry-point names not to load
    (a name that matches no installed entry point is warned about).
    ``SBI_GEN_DISABLE_PLUGIN_AUTOLOAD``: ``1``/``true``/``yes``/``on`` loads no entry
    points (only plugins registered by hand with :meth:`Registry.register`);
    ``0``/``false``/``no``/``off`` or unset loads them; anything else is an error.
"""

from __future__ import annotations

import copy
import difflib
import importlib.metadata
import inspect
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

import sbi_gen.hookspecs as hookspecs
from sbi_gen.errors import (
    DataError,
    DuplicatePluginError,
    PluginError,
    SbiGenError,
    UnknownPluginError,
    refuse_unknown_options,
)
from sbi_gen.hookspecs import EmbeddingSpec, EstimatorSpec, PluginSpec, SimulatorCapabilities, SimulatorSpec
from sbi_gen.nn.embedding import DEFAULT_EMBEDDING_FEATURES

__all__ = [
    "PluginInfo",
    "Registry",
    "get_registry",
    "reset_registry",
    "get_simulator",
    "get_estimator",
]

#: kind -> (hook name, spec class)
KINDS: dict[str, tuple[str, type[PluginSpec]]] = {
    "simulator": ("sbi_gen_simulators", SimulatorSpec),
    "estimator": ("sbi_gen_estimators", EstimatorSpec),
    "embedding": ("sbi_gen_embeddings", EmbeddingSpec),
}


@dataclass
class PluginInfo:
    """One plugin: where it comes from, whether it loaded, what it registered."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "error": self.error,
            "registered": {kind + "s": names for kind, names in self.registered.items()},
        }


@dataclass(frozen=True)
class _Entry:
    spec: PluginSpec
    plugin: PluginInfo


class Registry:
    """Finds plugins and looks their specs up by name.

    Arguments:
        autoload: load the ``sbi_gen`` entry points (default True, unless the
            environment variable ``SBI_GEN_DISABLE_PLUGIN_AUTOLOAD`` is set).
    """

    def __init__(self, autoload: bool | None = None) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._tables: dict[str, dict[str, _Entry]] | None = None
        if autoload is None:
            autoload = not _env_flag("SBI_GEN_DISABLE_PLUGIN_AUTOLOAD")
        if autoload:
            self._load_entry_points()

    # -- loading -----------------------------------------------------------

    def _load_entry_points(self) -> None:
        blocked = {n.strip() for n in os.environ.get("SBI_GEN_DISABLE_PLUGINS", "").split(",") if n.strip()}
        seen: set[tuple[str, str]] = set()
        entry_points = list(importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME))
        unknown = sorted(blocked - {entry_point.name for entry_point in entry_points})
        if unknown:
            warnings.warn(
                f"SBI_GEN_DISABLE_PLUGINS names {', '.join(unknown)}, which match(es) no installed plugin; "
                f"installed: {', '.join(sorted({e.name for e in entry_points})) or 'none'}",
                RuntimeWarning, stacklevel=3,
            )
        for entry_point in entry_points:
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
            version = dist.version if dist is not None else "<unknown>"
            if (entry_point.name, entry_point.value) in seen or entry_point.name in blocked:
                continue
            seen.add((entry_point.name, entry_point.value))
            info = PluginInfo(entry_point.name, dist_name, version, entry_point.value)
            try:
                module = entry_point.load()
            except Exception as error:  # noqa: BLE001 - any import failure is reported, not raised
                self._record_failure(info, error)
                continue
            self._register(module, info)

    def _record_failure(self, info: PluginInfo, error: BaseException) -> None:
        info.error = f"{type(error).__name__}: {error}"
        self.plugins[info.name] = info
        warnings.warn(
            f"sbi-gen plugin {info.name!r} ({info.distribution} {info.version}) could not be loaded: {info.error}",
            RuntimeWarning,
            stacklevel=3,
        )

    def _register(self, plugin: object, info: PluginInfo) -> None:
        if info.name in self.plugins and self.plugins[info.name].error is None:
            other = self.plugins[info.name]
            raise DuplicatePluginError(
                f"two plugins are called {info.name!r}: one from {other.distribution} ({other.module}), "
                f"one from {info.distribution} ({info.module})"
            )
        try:
            self.manager.register(plugin, name=info.name)
            self.manager.check_pending()
        except Exception as error:  # noqa: BLE001 - a bad plugin must not break the others
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self._record_failure(info, error)
            return
        self.plugins[info.name] = info
        self._tables = None

    def register(
        self, plugin: object, name: str, distribution: str = "<registered at run time>", version: str = ""
    ) -> None:
        """Register a plugin object (a module or an instance with hook methods) by hand."""
        self._register(plugin, PluginInfo(name, distribution, version, getattr(plugin, "__name__", repr(plugin))))

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        self.manager.unregister(name=name)
        self.plugins.pop(name, None)
        self._tables = None

    # -- spec tables -------------------------------------------------------

    def _collect(self) -> dict[str, dict[str, _Entry]]:
        if self._tables is not None:
            return self._tables
        for info in self.plugins.values():
            info.registered = {kind: [] for kind in KINDS}
        tables: dict[str, dict[str, _Entry]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, spec_type) in KINDS.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                info = self.plugins[impl.plugin_name]
                try:
                    specs = list(impl.function() or [])
                    bad = [s for s in specs if not isinstance(s, spec_type)]
                    if bad:
                        raise TypeError(f"{hook_name} must return {spec_type.__name__} records, got {bad[0]!r}")
                except Exception as error:  # noqa: BLE001 - report the plugin, keep the rest
                    self._record_failure(info, error)
                    continue
                for spec in specs:
                    if spec.name in tables[kind]:
                        other = tables[kind][spec.name].plugin
                        raise DuplicatePluginError(
                            f"{kind} {spec.name!r} is registered twice: by plugin {other.name!r} from "
                            f"distribution {other.distribution} and by plugin {info.name!r} from distribution "
                            f"{info.distribution}. Uninstall one, or block one with "
                            f"SBI_GEN_DISABLE_PLUGINS={info.name}"
                        )
                    tables[kind][spec.name] = _Entry(spec, info)
                    info.registered[kind].append(spec.name)
        self._tables = tables
        return tables

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind`` (``"simulator"``, ``"estimator"``, ``"embedding"``)."""
        return sorted(self._collect()[kind])

    def spec(self, kind: str, name: str) -> PluginSpec:
        """The spec registered as ``name``; :class:`UnknownPluginError` lists the alternatives."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(KINDS)}")
        table = self._collect()[kind]
        if name in table:
            return table[name].spec
        available = sorted(table)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        broken = [p.name for p in self.plugins.values() if p.error]
        note = f" (plugins that failed to load: {', '.join(broken)}; see `sbi-gen plugins`)" if broken else ""
        raise UnknownPluginError(
            f"unknown {kind} {name!r}.{hint} Available {kind}s: {', '.join(available) or 'none'}{note}"
        )

    def plugin_of(self, kind: str, name: str) -> PluginInfo:
        """Which plugin (and so distribution and version) provides ``name``."""
        self.spec(kind, name)
        return self._collect()[kind][name].plugin

    def simulator(self, name: str, **options: Any):
        """Build the simulator ``name`` with keyword ``options``.

        A simulator that carries no :class:`~sbi_gen.hookspecs.SimulatorCapabilities` of its own
        (not a :class:`~sbi_gen.Simulator` subclass) is given its spec's.
        """
        spec = self.spec("simulator", name)
        simulator = _build("simulator", name, spec.factory, options)
        simulator.name = name
        if not hasattr(simulator, "options"):
            simulator.options = dict(options)
        if not isinstance(getattr(simulator, "capabilities", None), SimulatorCapabilities):
            simulator.capabilities = spec.capabilities
        return simulator

    def estimator(self, name: str, **options: Any):
        """Build an unfitted estimator ``name`` with keyword ``options``.

        It resolves the embedding its options name through this registry.
        """
        estimator = _build("estimator", name, self.spec("estimator", name).factory, options)
        estimator.registry = self
        return estimator

    def estimator_options_for(
        self, estimator: str, simulator: str, options: dict[str, Any] | None = None,
        simulator_options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``options`` for ``estimator`` on ``simulator``, completed by what the simulator's spec suggests.

        A simulator may suggest estimator options (its capabilities'
        ``suggested_estimator_options``, e.g. an embedding suited to its data). They apply only
        to estimators that take an ``embedding`` option; the caller's ``options`` win, and naming
        another embedding drops the suggested embedding's options. An embedding built from the
        simulator itself (its options name ``simulator``) gets ``simulator_options``.
        """
        options = dict(options or {})
        suggested = copy.deepcopy(dict(self.spec("simulator", simulator).capabilities.suggested_estimator_options))
        factory = self.spec("estimator", estimator).factory
        if not suggested or "embedding" not in inspect.signature(factory).parameters:
            return options
        if "embedding" in options and options["embedding"] != suggested.get("embedding"):
            suggested.pop("embedding_options", None)
        merged = {**suggested, **options}
        embedding_options = dict(merged.get("embedding_options") or {})
        if embedding_options.get("simulator") == simulator:
            embedding_options.setdefault("simulator_options", dict(simulator_options or {}))
            merged["embedding_options"] = embedding_options
        return merged

    def embedding(self, name: str, x_shape: tuple[int, ...], output_features: int | None, **options: Any):
        """Build the embedding net ``name`` for observations of shape ``x_shape``.

        ``output_features=None`` leaves the size to the factory when its ``output_features`` parameter has
        a default (``identity``: the entries of ``x``) and passes ``DEFAULT_EMBEDDING_FEATURES`` (32) to a
        factory that requires it, as every factory was called before the option could be ``None``.
        A factory with a ``registry`` parameter is given this registry (to resolve the plugins its options name).
        """
        factory = self.spec("embedding", name).factory
        try:
            parameters = list(inspect.signature(factory).parameters.values())
        except (TypeError, ValueError):  # a builtin or C factory
            parameters = []
        if any(p.name == "registry" for p in parameters):
            options = {**options, "registry": self}
        if output_features is not None:
            return factory(tuple(x_shape), output_features, **options)
        if len(parameters) > 1 and parameters[1].default is not inspect.Parameter.empty:
            return factory(tuple(x_shape), **options)  # the embedding's own default size
        return factory(tuple(x_shape), DEFAULT_EMBEDDING_FEATURES, **options)

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin as a JSON-serializable dict (for ``sbi-gen plugins --json``)."""
        try:
            self._collect()
        except PluginError:
            pass
        return [info.to_dict() for info in sorted(self.plugins.values(), key=lambda p: p.name)]


def _env_flag(name: str) -> bool:
    """A yes/no environment variable: unset or 0/false/no/off is False, 1/true/yes/on True, else an error."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise PluginError(f"{name}={os.environ[name]!r} is not a yes/no value: use 1/true/yes/on or 0/false/no/off")


def _build(kind: str, name: str, factory, options: dict[str, Any]):
    """``factory(**options)``; an unknown option name or a rejected value is a :class:`DataError` naming both."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C factory: nothing to check against
        parameters = {}
    takes_any = not parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_any:
        known = [p for p, value in parameters.items() if value.kind is not inspect.Parameter.VAR_POSITIONAL]
        refuse_unknown_options(options, known, f"{kind} {name!r}")
    try:
        return factory(**options)
    except SbiGenError:
        raise
    except (TypeError, ValueError) as error:
        raise DataError(f"{kind} {name!r} rejected its options {options}: {error}") from None


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (the next call rediscovers plugins)."""
    global _default
    _default = None


def get_simulator(name: str, **options: Any):
    """Build a registered simulator by name: ``get_simulator("toy_gaussian", dim=3)``."""
    return get_registry().simulator(name, **options)


def get_estimator(name: str, **options: Any):
    """Build an unfitted registered estimator by name: ``get_estimator("flow")``."""
    return get_registry().estimator(name, **options)
