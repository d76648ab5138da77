"""The simulation store: chunked writes, resume after a kill, reproducible seeding, executors, damage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen import DataError, ModelFileError
from sbi_gen.cli import main
from sbi_gen.executors import ChunkError, InProcessExecutor, resume_store, simulate_to_store
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.simulation import chunk_generator
from sbi_gen.store import SimulationStore, _count_non_finite, is_store
from sbi_gen_simulators.toy_gaussian import ToyGaussian

DATASETS = ("theta", "x", "complete", "non_finite", "checksum")
REPO = Path(__file__).resolve().parents[1]


def assert_same_store(a: Path, b: Path) -> None:
    """Every dataset equal byte for byte, and the metadata equal but for the creation time."""
    with h5py.File(a, "r") as first, h5py.File(b, "r") as second:
        for name in DATASETS:
            assert first[name][()].tobytes() == second[name][()].tobytes(), name
        meta_a, meta_b = json.loads(first.attrs["meta"]), json.loads(second.attrs["meta"])
    meta_a.pop("created"), meta_b.pop("created")
    assert meta_a == meta_b


class FlakyToy(ToyGaussian):
    """toy_gaussian that can raise on its n-th call, and turns x into NaN where theta_0 > 1.5."""

    fail_on_call: int | None = None
    calls = 0

    def __init__(self, nan: bool = False, **options):
        super().__init__(**options)
        self.options["nan"] = nan

    def simulate(self, theta, generator=None):
        FlakyToy.calls += 1
        if FlakyToy.calls == FlakyToy.fail_on_call:
            raise RuntimeError("the solver diverged")
        x = super().simulate(theta, generator)
        if self.options["nan"]:
            x[theta[:, 0] > 1.5] = float("nan")
        return x


class FlakyPlugin:
    @hookimpl
    def sbi_gen_simulators(self):
        return [SimulatorSpec("flaky_toy", "toy_gaussian that fails or returns NaN on request", FlakyToy)]


@pytest.fixture()
def flaky():
    registry = sbi_gen.get_registry()
    registry.register(FlakyPlugin(), "flaky_test_plugin", distribution="tests", version="0")
    FlakyToy.calls, FlakyToy.fail_on_call = 0, None
    yield
    registry.unregister("flaky_test_plugin")


def test_store_round_trip_and_metadata(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=3)
    report = simulate_to_store(simulator, 2500, tmp_path / "s.h5", seed=4, chunk_size=1000, progress=False)
    assert (report.chunks_written, report.chunks_complete, report.num_chunks, report.non_finite) == (3, 3, 3, 0)
    store = SimulationStore.open(tmp_path / "s.h5")
    assert is_store(tmp_path / "s.h5") and store.is_complete and store.missing_chunks() == []
    meta = store.meta
    assert meta["simulator"]["name"] == "toy_gaussian" and meta["simulator"]["options"]["dim"] == 3
    assert meta["plugin"]["distribution"] == "sbi-gen" and meta["plugin"]["version"]
    assert meta["seed"] == 4 and meta["chunk_size"] == 1000 and meta["sbi_gen_version"] == sbi_gen.__version__
    assert meta["created"] and meta["simulator"]["prior"]["type"] == "gaussian"
    assert store.rows(2) == (2000, 2500)
    data = sbi_gen.load_simulations(tmp_path / "s.h5")
    assert data.theta.shape == (2500, 3) and data.x.shape == (2500, 3)
    # chunk i is SeedSequence(seed).spawn(num_chunks)[i]: the same pairs as simulating chunk 1 by hand
    generator = chunk_generator(4, 1)
    theta = simulator.prior.sample(1000, generator)
    assert torch.equal(data.theta[1000:2000], theta)
    assert torch.equal(data.x[1000:2000], simulator.simulate(theta, generator))
    child = np.random.SeedSequence(4).spawn(3)[1].generate_state(1, np.uint64)[0]
    assert torch.equal(torch.Generator().manual_seed(int(child)).get_state(), chunk_generator(4, 1).get_state())


class Reversed(InProcessExecutor):
    """Chunks finish in the opposite order."""

    def map_unordered(self, fn, indices):
        for index in reversed(list(indices)):
            yield fn(index)


def test_contents_do_not_depend_on_the_order_chunks_finish(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    simulate_to_store(simulator, 950, tmp_path / "a.h5", seed=1, chunk_size=100, progress=False)
    simulate_to_store(simulator, 950, tmp_path / "b.h5", seed=1, chunk_size=100, executor=Reversed(), progress=False)
    assert_same_store(tmp_path / "a.h5", tmp_path / "b.h5")


def test_two_dask_workers_write_the_same_file_as_one_process(tmp_path):
    pytest.importorskip("distributed")
    from sbi_gen.executors import DaskExecutor

    simulator = sbi_gen.get_simulator("toy_gaussian")
    simulate_to_store(simulator, 5000, tmp_path / "local.h5", seed=11, chunk_size=250, progress=False)
    with DaskExecutor(workers=2) as executor:
        assert executor.workers == 2
        report = simulate_to_store(simulator, 5000, tmp_path / "dask.h5", seed=11, chunk_size=250,
                                   executor=executor, progress=False)
    assert report.chunks_complete == 20 and report.workers == 2
    assert_same_store(tmp_path / "local.h5", tmp_path / "dask.h5")


@pytest.mark.parametrize("background_write", [True, False], ids=["background-write", "sync-write"])
def test_a_failing_chunk_keeps_the_others_and_resume_completes(tmp_path, flaky, background_write):
    simulator = sbi_gen.get_simulator("flaky_toy", dim=2)
    FlakyToy.fail_on_call = 3
    with pytest.raises(ChunkError, match=r"chunk 2 failed: RuntimeError: the solver diverged\. 2 chunk\(s\) were "
                                         r"written.*sbi-gen simulate --resume"):
        simulate_to_store(simulator, 600, tmp_path / "a.h5", seed=2, chunk_size=100, progress=False,
                          background_write=background_write)
    store = SimulationStore.open(tmp_path / "a.h5")
    assert store.missing_chunks() == [2, 3, 4, 5]
    with pytest.raises(DataError, match="incomplete: 4 of 6 chunks are missing.*--resume"):
        sbi_gen.load_simulations(tmp_path / "a.h5")
    assert len(store.to_simulation_set(allow_incomplete=True)) == 200
    FlakyToy.fail_on_call = None
    report = resume_store(tmp_path / "a.h5", progress=False)
    assert (report.chunks_written, report.chunks_complete) == (4, 6)
    simulate_to_store(simulator, 600, tmp_path / "b.h5", seed=2, chunk_size=100, progress=False)
    assert_same_store(tmp_path / "a.h5", tmp_path / "b.h5")


def test_the_background_writer_owns_the_file_and_keeps_every_chunk_handed_over(tmp_path, monkeypatch):
    """One thread touches h5py; an interruption or a failed write keeps the chunks written before it."""
    import threading

    from sbi_gen.background_writer import BackgroundWriter
    from sbi_gen.store import ChunkWriter

    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    store = SimulationStore.create(tmp_path / "s.h5", simulator.describe(), 500, seed=0, chunk_size=100)
    chunk = np.ones((100, 2), dtype=np.float32)
    threads, write = set(), ChunkWriter.write

    def recording_write(self, index, theta, x):
        threads.add(threading.get_ident())
        return write(self, index, theta, x)

    monkeypatch.setattr(ChunkWriter, "write", recording_write)
    with pytest.raises(KeyboardInterrupt), BackgroundWriter(store) as writer:
        writer.submit(0, chunk, chunk)
        writer.submit(3, chunk, chunk)
        with pytest.raises(DataError, match=r"chunk 1 has theta \(50, 2\).*s.h5 expects \(100, 2\)"):
            writer.submit(1, chunk[:50], chunk)
        raise KeyboardInterrupt  # Ctrl-C while the next chunk is simulated
    assert store.missing_chunks() == [1, 2, 4] and len(threads) == 1 and threading.get_ident() not in threads

    def failing_write(self, index, theta, x):
        if index == 2:
            raise OSError("No space left on device")
        return write(self, index, theta, x)

    monkeypatch.setattr(ChunkWriter, "write", failing_write)
    with pytest.raises(OSError, match="No space left"), BackgroundWriter(store) as writer:
        for index in (1, 2, 4):
            writer.submit(index, chunk, chunk)
    assert store.missing_chunks() == [2, 4]
    monkeypatch.undo()
    with store.writer() as direct:  # the background writer closed the file: it can be opened for writing again
        direct.write(2, chunk, chunk)
    assert store.missing_chunks() == [4]


@pytest.mark.parametrize("policy", ["drop", "keep"])
def test_non_finite_rows_are_counted_and_dropped_or_kept(tmp_path, flaky, policy, capsys):
    path = tmp_path / f"{policy}.h5"
    assert main(["simulate", "flaky_toy", "--option", "nan=true", "--option", "dim=2", "-n", "3000",
                 "--chunk-size", "500", "-o", str(path), f"--{policy}-non-finite", "--no-progress"]) == 0
    with h5py.File(path, "r") as file:
        expected = int((~np.isfinite(file["x"][()]).all(1)).sum())
    assert expected > 50
    printed = capsys.readouterr().out
    assert f"{expected} non-finite row(s) {'dropped when read' if policy == 'drop' else 'kept'}" in printed
    store = SimulationStore.open(path)
    assert store.non_finite_count() == expected
    data = store.to_simulation_set()
    if policy == "drop":
        assert len(data) == 3000 - expected and bool(torch.isfinite(data.x).all())
    else:
        assert len(data) == 3000 and int((~torch.isfinite(data.x).all(1)).sum()) == expected


def test_huge_finite_values_are_not_counted_as_non_finite(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    store = SimulationStore.create(tmp_path / "s.h5", simulator.describe(), 8, seed=0, chunk_size=4, non_finite="keep")
    huge = np.full((4, 2), 3e38, dtype=np.float32)  # finite, but their float32 sum overflows
    mixed = huge.copy()
    mixed[1, 0], mixed[3, 1] = np.inf, np.nan
    with store.writer() as writer:
        assert writer.write(0, huge, huge) == 0 and writer.write(1, huge, mixed) == 2
    assert store.non_finite_count() == 2 and torch.equal(store.read_chunk(0)[1], torch.from_numpy(huge))
    large = np.full(1 << 21, 3e38, dtype=np.float32)  # large arrays are checked by their sum
    assert _count_non_finite(large[:, None], large[:, None]) == 0
    large[[5, 7, 1 << 20]] = np.nan, np.inf, -np.inf
    assert _count_non_finite(large[:, None], np.ones((1 << 21, 1), dtype=np.float32)) == 3


def test_damaged_files_are_named(tmp_path):
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    path = tmp_path / "s.h5"
    simulate_to_store(simulator, 2000, path, seed=0, chunk_size=500, progress=False)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated.h5 could not be opened as a simulation store.*truncated"):
        SimulationStore.open(truncated)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFileError, match="garbage.h5"):
        sbi_gen.load_simulations(garbage)
    with h5py.File(path, "r") as file:
        offset = file["x"].id.get_offset()
    flipped = tmp_path / "flipped.h5"
    raw = bytearray(path.read_bytes())
    raw[offset + 4 * 2 * 600] ^= 0xFF  # a byte of x in chunk 1 (rows 500-999)
    flipped.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match=r"flipped.h5: chunk 1 \(rows 500-999\) does not match its checksum"):
        sbi_gen.load_simulations(flipped)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as file:
        file["theta"], file["x"] = np.zeros((3, 2)), np.zeros((3, 1))
    assert not is_store(plain) and len(sbi_gen.load_simulations(plain)) == 3
    with pytest.raises(ModelFileError, match="plain.h5 is an HDF5 file but not an sbi-gen simulation store"):
        SimulationStore.open(plain)


def test_cli_refuses_mismatched_resume_and_store_flags_on_npz(tmp_path, capsys):
    path = tmp_path / "s.h5"
    assert main(["simulate", "toy_gaussian", "-n", "300", "--chunk-size", "100", "-o", str(path), "--no-progress"]) == 0
    assert main(["simulate", "toy_gaussian", "-n", "300", "-o", str(path)]) == 2
    assert "--resume an interrupted run" in capsys.readouterr().err
    assert main(["simulate", "--resume", "-o", str(path), "--seed", "3"]) == 2
    assert "was started with seed=0; --resume got 3" in capsys.readouterr().err
    assert main(["simulate", "--resume", "-o", str(path)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(["simulate", "toy_gaussian", "-o", str(tmp_path / "s.npz"), "--workers", "2"]) == 2
    assert "--workers need(s) an HDF5 store" in capsys.readouterr().err
    assert main(["simulate", "toy_gaussian", "-o", str(tmp_path / "s.npz"), "--sync-write"]) == 2
    assert "--sync-write need(s) an HDF5 store" in capsys.readouterr().err


def test_sync_and_background_writes_give_the_same_file(tmp_path):
    assert main(["simulate", "toy_gaussian", "-n", "1050", "--chunk-size", "100", "--seed", "4", "--no-progress",
                 "-o", str(tmp_path / "a.h5")]) == 0
    assert main(["simulate", "toy_gaussian", "-n", "1050", "--chunk-size", "100", "--seed", "4", "--no-progress",
                 "--sync-write", "-o", str(tmp_path / "b.h5")]) == 0
    assert_same_store(tmp_path / "a.h5", tmp_path / "b.h5")


SLOW_PLUGIN = """
import os, pathlib, time, uuid
from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen_simulators.toy_gaussian import ToyGaussian

class SlowToy(ToyGaussian):
    def simulate(self, theta, generator=None):
        pathlib.Path(os.environ["SLOW_SIM_MARKS"], uuid.uuid4().hex).touch()
        time.sleep(float(os.environ.get("SLOW_SIM_SECONDS", "0")))
        return super().simulate(theta, generator)

@hookimpl
def sbi_gen_simulators():
    return [SimulatorSpec("slow_toy", "toy_gaussian, slowed down for tests", SlowToy)]
"""


def _install_slow_plugin(root: Path) -> None:
    (root / "slow_toy_plugin.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    info = root / "slow_toy_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow_toy_dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sbi_gen]\nslow_toy = slow_toy_plugin\n")


def _cli(tmp_path: Path, marks: Path, delay: float, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "SLOW_SIM_MARKS": str(marks), "SLOW_SIM_SECONDS": str(delay), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sbi_gen.cli", "simulate", *args, "--no-progress"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_after(process: subprocess.Popen, marks: Path, calls: int, sig: int) -> None:
    """Send ``sig`` once the simulator has been called ``calls`` times."""
    deadline = time.monotonic() + 120
    while len(list(marks.iterdir())) < calls:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the simulation did not get going"
        time.sleep(0.02)
    process.send_signal(sig)
    process.wait(60)


def test_killed_run_resumes_to_the_same_file_as_an_uninterrupted_one(tmp_path):
    _install_slow_plugin(tmp_path)
    args = ["slow_toy", "-n", "3000", "--chunk-size", "100", "--seed", "5", "--option", "dim=3"]
    marks = [tmp_path / f"marks{i}" for i in range(4)]
    for folder in marks:
        folder.mkdir()

    killed = _cli(tmp_path, marks[0], 0.15, *args, "-o", "run.h5")
    _interrupt_after(killed, marks[0], 6, signal.SIGKILL)  # kill -9 while chunk 5 is in flight
    complete = SimulationStore.open(tmp_path / "run.h5").status()
    assert 4 <= complete.sum() < 30, complete.sum()

    interrupted = _cli(tmp_path, marks[1], 0.15, "--resume", "-o", "run.h5")
    _interrupt_after(interrupted, marks[1], 4, signal.SIGINT)  # Ctrl-C
    assert interrupted.returncode == 130
    assert "`sbi-gen simulate --resume -o run.h5` completes it" in interrupted.stderr.read()
    assert SimulationStore.open(tmp_path / "run.h5").status().sum() >= complete.sum() + 2

    resumed = _cli(tmp_path, marks[2], 0.0, "--resume", "-o", "run.h5")
    assert resumed.wait(120) == 0, resumed.stderr.read()
    assert "30/30 chunks complete" in resumed.stdout.read()
    uninterrupted = _cli(tmp_path, marks[3], 0.0, *args, "-o", "full.h5")
    assert uninterrupted.wait(120) == 0, uninterrupted.stderr.read()
    assert len(list(marks[3].iterdir())) == 30
    assert_same_store(tmp_path / "run.h5", tmp_path / "full.h5")
    assert SimulationStore.open(tmp_path / "full.h5").meta["plugin"] == {
        "name": "slow_toy", "distribution": "slow_toy_dist", "version": "1.0"}
