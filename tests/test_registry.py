"""Plugin discovery through real entry points, written as distributions on sys.path."""

import json
import textwrap
from pathlib import Path

import pytest

from sbi_gen import DuplicatePluginError, UnknownPluginError
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.registry import Registry, get_registry

SIMULATOR_MODULE = """
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen_simulators.toy_gaussian import ToyGaussian

@hookimpl
def sbi_gen_simulators():
    return [SimulatorSpec({name!r}, "test simulator", ToyGaussian)]
"""


def write_distribution(root: Path, dist: str, entry_name: str, module: str, source: str) -> None:
    """A minimal installed distribution: a module and a dist-info with an sbi_gen entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[sbi_gen]\n{entry_name} = {module}\n")


def test_builtins_come_through_entry_points(registry):
    assert "toy_gaussian" in registry.names("simulator")
    assert "flow" in registry.names("estimator")
    assert {"mlp", "identity"} <= set(registry.names("embedding"))
    plugin = registry.plugin_of("simulator", "toy_gaussian")
    assert plugin.distribution == "sbi-gen"
    assert plugin.module == "sbi_gen_simulators.toy_gaussian"


def test_unknown_name_lists_available_and_suggests(registry):
    with pytest.raises(UnknownPluginError, match=r"unknown simulator 'toy_gausian'\. Did you mean 'toy_gaussian'\?"):
        registry.simulator("toy_gausian")
    with pytest.raises(UnknownPluginError, match="Available estimators: .*flow"):
        registry.estimator("nope")


def test_broken_plugin_is_reported_and_others_keep_working(tmp_path, monkeypatch):
    write_distribution(tmp_path, "broken_dist", "broken", "broken_plugin_mod", "raise ImportError('needs libfoo')")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="'broken' .*broken_dist.*ImportError: needs libfoo"):
        registry = Registry()
    info = registry.plugins["broken"]
    assert info.error == "ImportError: needs libfoo"
    assert info.distribution == "broken_dist"
    assert registry.simulator("toy_gaussian").prior.dim == 5
    with pytest.raises(UnknownPluginError, match="plugins that failed to load: broken"):
        registry.simulator("from_broken")


def test_plugin_whose_hook_raises_is_reported(registry):
    class Faulty:
        @hookimpl
        def sbi_gen_simulators(self):
            raise RuntimeError("bad config")

    registry.register(Faulty(), "faulty")
    with pytest.warns(RuntimeWarning, match="RuntimeError: bad config"):
        names = registry.names("simulator")
    assert "toy_gaussian" in names


def test_two_distributions_claiming_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    write_distribution(tmp_path, "first_dist", "first", "dup_first", SIMULATOR_MODULE.format(name="dup"))
    write_distribution(tmp_path, "second_dist", "second", "dup_second", SIMULATOR_MODULE.format(name="dup"))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    with pytest.raises(DuplicatePluginError, match=r"simulator 'dup'.*first_dist.*second_dist"):
        registry.names("simulator")


def test_disable_plugins_by_environment(tmp_path, monkeypatch):
    write_distribution(tmp_path, "first_dist", "first", "dup_first", SIMULATOR_MODULE.format(name="dup"))
    write_distribution(tmp_path, "second_dist", "second", "dup_second", SIMULATOR_MODULE.format(name="dup"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SBI_GEN_DISABLE_PLUGINS", "second")
    registry = Registry()
    assert registry.plugin_of("simulator", "dup").distribution == "first_dist"


def test_hand_registered_plugin_is_listed_and_removable(registry):
    class Extra:
        @hookimpl
        def sbi_gen_simulators(self):
            from sbi_gen_simulators.toy_gaussian import ToyGaussian

            return [SimulatorSpec("extra_sim", "registered in a test", ToyGaussian)]

    registry.register(Extra(), "extra", distribution="tests")
    assert registry.simulator("extra_sim", dim=2).prior.dim == 2
    described = {p["name"]: p for p in registry.describe()}
    assert described["extra"]["registered"]["simulators"] == ["extra_sim"]
    json.dumps(described)  # JSON-serializable
    registry.unregister("extra")
    assert "extra_sim" not in registry.names("simulator")


def test_spec_rejects_bad_names():
    with pytest.raises(ValueError, match="plugin name"):
        SimulatorSpec("has space", "x", dict)


def test_simulators_suggest_estimator_options_that_callers_can_override():
    registry = get_registry()
    suggested = registry.estimator_options_for("flow", "gw", {}, {"f_max": 200.0})
    assert suggested["embedding"] == "gw_svd"
    assert suggested["embedding_options"] == {"simulator": "gw", "hidden_features": 256,
                                              "simulator_options": {"f_max": 200.0}}
    assert registry.estimator_options_for("diffusion", "alkane_set") == {"embedding": "deepsets"}
    # the caller's choice wins, and another embedding does not inherit the suggested one's options
    assert registry.estimator_options_for("flow", "gw", {"embedding": "mlp", "hidden_features": 32}) == {
        "embedding": "mlp", "embedding_features": 64, "hidden_features": 32, "bounded_support": "logit"}
    assert registry.estimator_options_for("flow", "toy_gaussian", {"num_transforms": 3}) == {"num_transforms": 3}


def test_an_embedding_without_a_size_default_still_gets_32_and_one_with_a_default_uses_its_own(registry):
    from torch import nn

    from sbi_gen.hookspecs import EmbeddingSpec

    def requires_size(x_shape, output_features):  # a third-party factory written before sizes were optional
        return nn.Linear(x_shape[0], output_features)

    def own_size(x_shape, output_features=7):
        return nn.Linear(x_shape[0], output_features)

    class Extra:
        @hookimpl
        def sbi_gen_embeddings(self):
            return [EmbeddingSpec("requires_size", "test", requires_size), EmbeddingSpec("own_size", "test", own_size)]

    registry.register(Extra(), "extra_embeddings", distribution="tests")
    assert registry.embedding("requires_size", (3,), None).out_features == 32
    assert registry.embedding("own_size", (3,), None).out_features == 7
    assert registry.embedding("own_size", (3,), 5).out_features == 5
    registry.unregister("extra_embeddings")
