"""One simulation path: the same seed and chunk size give the same pairs in memory, in ``.npz`` and in ``.h5``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.cli import main
from sbi_gen.data import load_simulations
from sbi_gen.simulation import chunk_generator, simulate, simulate_chunk


@pytest.mark.parametrize("chunk", [[], ["--chunk-size", "700"]], ids=["default-chunks", "chunks-of-700"])
def test_npz_and_h5_outputs_of_simulate_hold_the_same_pairs(tmp_path, chunk, capsys):
    args = ["simulate", "two_moons", "-n", "2100", "--seed", "5", *chunk]
    assert main([*args, "-o", str(tmp_path / "a.npz")]) == 0
    assert main([*args, "--no-progress", "-o", str(tmp_path / "a.h5")]) == 0
    npz, h5 = load_simulations(tmp_path / "a.npz"), load_simulations(tmp_path / "a.h5")
    # bit-for-bit: both run the same float32 code on the same random streams
    assert torch.equal(npz.theta, h5.theta) and torch.equal(npz.x, h5.x)
    assert npz.meta["seed"] == h5.meta["seed"] == 5 and npz.meta["chunk_size"] == h5.meta["chunk_size"]


def test_the_python_api_gives_the_pairs_of_the_cli(tmp_path, capsys):
    assert main(["simulate", "toy_gaussian", "--option", "dim=3", "-n", "1200", "--seed", "2", "--chunk-size", "500",
                 "--no-progress", "-o", str(tmp_path / "a.h5")]) == 0
    stored = load_simulations(tmp_path / "a.h5")
    in_memory = sbi_gen.simulate(sbi_gen.get_simulator("toy_gaussian", dim=3), 1200, seed=2, chunk_size=500)
    assert torch.equal(stored.theta, in_memory.theta) and torch.equal(stored.x, in_memory.x)


def test_a_chunk_depends_only_on_the_seed_and_its_index():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    short, longer = simulate(simulator, 1000, seed=1, chunk_size=400), simulate(simulator, 1500, seed=1, chunk_size=400)
    assert torch.equal(short.theta[:800], longer.theta[:800])  # the first two chunks are whole in both
    theta, x = simulate_chunk(simulator, 1, 2, 400, 1500)
    assert torch.equal(theta, longer.theta[800:1200]) and torch.equal(x, longer.x[800:1200])
    assert theta.dtype == x.dtype == torch.float32
    assert not torch.equal(simulate(simulator, 400, seed=2, chunk_size=400).theta, longer.theta[:400])


def test_chunk_streams_are_seed_sequence_children():
    child = np.random.SeedSequence(9).spawn(3)[2].generate_state(1, np.uint64)[0]
    assert torch.equal(chunk_generator(9, 2).get_state(), torch.Generator().manual_seed(int(child)).get_state())


def test_bad_sizes_are_refused():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    with pytest.raises(ValueError, match="positive"):
        simulate(simulator, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        simulate(simulator, 10, chunk_size=0)
