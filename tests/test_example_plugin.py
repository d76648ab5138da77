"""A third-party plugin, installed with pip as its own distribution, is found, runs end to end and passes its own
conformance tests (the kit, sbi_gen.testing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sbi-gen-example-plugin"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example installed by pip into a folder of its own, put on the path of the commands run below only:
    the test environment itself never changes, so tests running in parallel never see a half-installed plugin."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=600)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def sbi_gen(environment, *args, check=True):
    return subprocess.run([sys.executable, "-m", "sbi_gen.cli", *args], capture_output=True, text=True, check=check,
                          timeout=600, env=environment)


def test_example_plugin_is_discovered_and_runs(installed_example, tmp_path):
    listing = json.loads(sbi_gen(installed_example, "plugins", "--json").stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["oscillator"]["distribution"] == "sbi-gen-example-plugin"
    assert by_name["oscillator"]["version"] == "0.1.0"
    assert by_name["oscillator"]["registered"]["simulators"] == ["oscillator"]
    out = tmp_path / "run"
    result = sbi_gen(installed_example, "run", "oscillator", "-n", "500", "--observations", "2", "--samples", "200",
                     "--sbc", "40", "--max-epochs", "2", "--no-progress", "-o", str(out))
    assert "C2ST skipped: the simulator has no reference posterior" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["simulator"] == "oscillator" and metrics["c2st"] is None
    config = json.loads((out / "model" / "config.json").read_text())
    assert [p["unit"] for p in config["prior"]["parameters"]] == ["rad / s", "1 / s"]


def test_example_plugin_passes_its_own_conformance_tests(installed_example):
    """The example's tests (tests/test_conformance.py: sbi_gen.testing.check_simulator) pass on the installed copy."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                             str(EXAMPLE / "tests")], capture_output=True, text=True, timeout=600,
                            env={**installed_example, "OMP_NUM_THREADS": "1"}, cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
