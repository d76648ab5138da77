"""Local C2ST: it flags a posterior that is wrong at an observation and passes the exact one there.

Like the global calibration tests, each case runs at a fixed seed and level. The p-value of the exact
posterior is uniform over seeds (the permutation test is exact), so a fixed seed makes the check
deterministic, and it would fail at about alpha = 5% of seeds. The wrong posteriors are shifted by about one
posterior standard deviation; the test asserts the margin (the statistic 10 times the exact one's, the
smallest attainable p-value), not only the verdict.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sbi_gen
from sbi_gen.calibration.lc2st import draw_calibration_pairs, lc2st, plot_lc2st
from sbi_gen.cli import main
from sbi_gen.seeding import RandomStreams

SIMULATOR = sbi_gen.get_simulator("toy_gaussian", dim=2)  # posterior std about 0.35 / 0.43 per parameter


class _Posterior:
    """The exact posterior, its draws shifted by ``shift(x) [N, 1]`` times ``offset``."""

    def __init__(self, x, shift):
        self.inner, self.offset = SIMULATOR.reference_posterior(x), shift(x)

    def sample(self, n, generator=None):
        return self.inner.sample(n, generator) + self.offset[None]


def exact(x):
    return _Posterior(x, lambda x: torch.zeros(len(x), 1))


def shifted_everywhere(x):
    return _Posterior(x, lambda x: torch.full((len(x), 1), 0.4))


def shifted_where_x0_is_large(x):
    return _Posterior(x, lambda x: 0.6 * (x[:, :1] > 0.5).float())


def test_the_exact_posterior_passes_and_a_shifted_one_is_flagged():
    x_obs = sbi_gen.simulate(SIMULATOR, 2, seed=11).x
    passed = lc2st(exact, SIMULATOR, x_obs, num_simulations=1000, num_permutations=50, seed=0)
    flagged = lc2st(shifted_everywhere, SIMULATOR, x_obs, num_simulations=1000, num_permutations=50, seed=0)
    assert all(not r.rejects for r in passed), [r.pvalue for r in passed]
    assert all(r.rejects and r.pvalue == 1 / 51 for r in flagged), [r.pvalue for r in flagged]
    assert all(f.statistic > 10 * max(p.statistic, 1e-4) for f, p in zip(flagged, passed))


def test_it_is_local_a_posterior_wrong_in_one_region_is_flagged_only_there():
    inside, outside = torch.tensor([[1.2, 0.0]]), torch.tensor([[-1.2, 0.0]])  # x0 > 0.5 and x0 < 0.5
    x_obs = torch.cat([inside, outside])
    results = lc2st(shifted_where_x0_is_large, SIMULATOR, x_obs, num_simulations=2000, num_permutations=50, seed=1)
    assert results[0].rejects and not results[1].rejects, [r.pvalue for r in results]


def test_calibration_pairs_are_reused_and_settings_are_checked(tmp_path):
    pairs = draw_calibration_pairs(exact, SIMULATOR, 300, RandomStreams(0))
    assert [tuple(p.shape) for p in pairs] == [(300, 2), (300, 2), (300, 2)]
    x_obs = sbi_gen.simulate(SIMULATOR, 1, seed=3).x
    result = lc2st(exact, SIMULATOR, x_obs, calibration=pairs, num_permutations=20, alpha=0.1, seed=0)[0]
    assert result.num_calibration_pairs == 300 and len(result.null_statistics) == 20
    plot_lc2st(result, tmp_path / "pp.png")
    assert (tmp_path / "pp.png").stat().st_size > 0
    with pytest.raises(ValueError, match="smallest p-value"):
        lc2st(exact, SIMULATOR, x_obs, calibration=pairs, num_permutations=10, alpha=0.05)


def test_calibrate_with_an_observation_writes_the_local_verdict(tmp_path, capsys):
    estimator = sbi_gen.get_estimator("flow", num_transforms=1, hidden_features=8)
    estimator.fit(sbi_gen.simulate(SIMULATOR, 500, seed=0), prior=SIMULATOR.prior, max_epochs=2, progress=False)
    estimator.metadata["simulator"] = SIMULATOR.describe()
    estimator.save(tmp_path / "model")
    np.save(tmp_path / "obs.npy", sbi_gen.simulate(SIMULATOR, 2, seed=1).x.numpy())
    argv = ["calibrate", str(tmp_path / "model"), "-n", "200", "--samples", "200", "--alpha", "0.05"]
    assert main([*argv, "--observation", str(tmp_path / "obs.npy"), "-o", str(tmp_path / "cal")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("L-C2ST at observation") == 2
    assert (tmp_path / "cal" / "lc2st.json").exists() and (tmp_path / "cal" / "lc2st_observation_1.png").exists()
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    assert main([*argv, "--observation", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "cal2")]) == 2
    assert "bad.npy" in capsys.readouterr().err and not (tmp_path / "cal2").exists()
