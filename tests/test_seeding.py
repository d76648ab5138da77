"""Named random streams: one seed, independent steps, no offsets, the caller's RNG left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.pipeline import RunConfig, run
from sbi_gen.seeding import RandomStreams, seeded_torch


def test_streams_are_reproducible_and_distinct():
    streams = RandomStreams(3)
    names = ["simulate", "train", "observations", "sbc", "sample", "sbc_sample", "calibrate", "c2st"]
    seeds = [streams.seed(name) for name in names]
    assert seeds == [RandomStreams(3).seed(name) for name in names]
    assert len(set(seeds)) == len(names)
    assert all(0 <= seed < 2**63 for seed in seeds)
    # offsets collide across runs (seed 3's "seed + 1" is seed 4's "seed"); named streams do not
    assert not set(seeds) & {RandomStreams(4).seed(name) for name in names}
    child = streams.child("calibrate")
    assert child.seed("sbc") not in seeds and child.seed("sbc") == RandomStreams(3).child("calibrate").seed("sbc")


def test_a_stream_is_the_seed_sequence_it_documents():
    streams = RandomStreams(11)
    sequence = streams.sequence("train")
    assert sequence.entropy == 11 and len(sequence.spawn_key) == 1
    assert torch.equal(streams.generator("train").get_state(),
                       torch.Generator().manual_seed(streams.seed("train")).get_state())


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seeds_are_refused(seed):
    with pytest.raises((ValueError, TypeError)):
        RandomStreams(seed)


def test_seeded_torch_is_reproducible_and_restores_the_callers_state():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_torch(7):
        first = torch.rand(4)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream continues as if nothing happened
    with seeded_torch(7):
        assert torch.equal(torch.rand(4), first)


def test_fitting_leaves_the_global_generator_alone():
    simulator = sbi_gen.get_simulator("toy_gaussian", dim=2)
    data = sbi_gen.simulate(simulator, 300, seed=0)
    torch.manual_seed(5)
    expected_next = torch.rand(2)
    torch.manual_seed(5)
    sbi_gen.get_estimator("flow", num_transforms=1, hidden_features=8).fit(
        data.theta, data.x, simulator.prior, max_epochs=1, progress=False)
    assert torch.equal(torch.rand(2), expected_next)


def _tiny_run(tmp_path, name: str, observations: int) -> dict:
    config = RunConfig(simulator="toy_gaussian", simulator_options={"dim": 2}, num_simulations=300,
                       num_observations=observations, num_posterior_samples=200, num_sbc=30, sbc_samples=50,
                       estimator_options={"num_transforms": 1, "hidden_features": 8},
                       training_options={"max_epochs": 2, "progress": False}, calibration_report=False)
    return run(config, tmp_path / name, quiet=True)


def test_sbc_and_training_do_not_depend_on_the_number_of_observations(tmp_path):
    two, three = _tiny_run(tmp_path, "two", 2), _tiny_run(tmp_path, "three", 3)
    assert two["training"] == three["training"]  # the same training pairs and seed
    assert two["sbc"] == three["sbc"]  # the SBC pairs and their draws come from streams of their own
    first_two = np.load(tmp_path / "three" / "observations.npz")["theta_true"][:2]
    assert np.array_equal(np.load(tmp_path / "two" / "observations.npz")["theta_true"], first_two)
