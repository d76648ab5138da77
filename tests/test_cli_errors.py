"""Every user error gets one line that names the option or file and the problem, exit status 2, no traceback.

Table-driven over the cases a careless or hostile user produced (each one ended in a Python traceback, or
exit status 0, before); nothing already on disk may change.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sbi_gen.cli import main

UNIT_PRIOR = '{"type": "uniform", "low": [0, 0], "high": [1, 1]}'


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs, good and bad, and one small saved model (trained on a user's file, so it records no simulator)."""
    root = tmp_path_factory.mktemp("cli-errors")
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.1, 0.9, size=(300, 2)).astype(np.float32)
    np.savez(root / "pairs.npz", theta=theta, x=theta + 0.1)
    np.save(root / "single.npy", theta)
    with h5py.File(root / "group.h5", "w") as file:
        file.create_group("theta")
        file["x"] = np.zeros((3, 2))
    (root / "empty.npy").write_bytes(b"")
    (root / "dict.json").write_text(json.dumps({"x": [1, 2]}))
    (root / "garbage.npz").write_bytes(b"not a zip file at all")
    np.save(root / "obs.npy", np.full((1, 2), 0.5, dtype=np.float32))
    np.save(root / "obs3.npy", np.zeros((1, 3), dtype=np.float32))
    (root / "a_file").write_text("in the way")
    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("earlier work")
    assert main(["train", "--data", str(root / "pairs.npz"), "--prior", UNIT_PRIOR, "-o", str(root / "model"),
                 "--max-epochs", "1", "--no-progress", "--estimator-option", "num_transforms=1"]) == 0
    wrong = root / "wrong_type"
    wrong.mkdir()
    for name in ("weights.safetensors", "config.json"):
        (wrong / name).write_bytes((root / "model" / name).read_bytes())
    config = json.loads((wrong / "config.json").read_text())
    config["training"] = 5  # not a weight-bound field, so no checksum covers it
    (wrong / "config.json").write_text(json.dumps(config))
    return root


# (arguments with {root} for the fixture folder, what the message must name)
CASES = [
    (["train", "--data", "{root}/pairs.npz", "--prior", '{"type": "uniform", "low": ["a", 0], "high": [1, 1]}',
      "-o", "{root}/m"], "'low' must be a non-empty list of numbers"),
    (["train", "--data", "{root}/pairs.npz", "--prior", '{"type": "uniform", "low": null, "high": [1, 1]}',
      "-o", "{root}/m"], "'low'"),
    (["train", "--data", "{root}/pairs.npz", "--prior", "{root}/missing.json", "-o", "{root}/m"], "no prior file"),
    (["train", "--data", "{root}/pairs.npz", "--prior", "{not json", "-o", "{root}/m"], "not valid JSON"),
    (["simulate", "toy_gaussian", "--option", "dim=abc", "-o", "{root}/s.npz"], "rejected its options"),
    (["simulate", "toy_gaussian", "--option", "dmi=3", "-o", "{root}/s.npz"], "Did you mean 'dim'?"),
    (["simulate", "toy_gaussian", "--option", "dim", "-o", "{root}/s.npz"], "KEY=VALUE"),
    (["simulate", "toy_gausian", "-o", "{root}/s.npz"], "Did you mean 'toy_gaussian'?"),
    (["simulate", "toy_gaussian", "-n", "0", "-o", "{root}/s.npz"], "-n/--simulations"),
    (["simulate", "toy_gaussian", "-o", "{root}/s.txt"], ".npz"),
    (["simulate", "toy_gaussian", "--seed", "-1", "-o", "{root}/s.npz"], "--seed: expected a whole number >= 0"),
    (["run", "--seed", "1.5", "-o", "{root}/run"], "--seed: expected a whole number >= 0"),
    (["simulate", "toy_gaussian", "-o", "{root}/a_file/s.npz"], "a_file is a file"),
    (["train", "--data", "{root}/single.npy", "--prior", UNIT_PRIOR, "-o", "{root}/m"], ".npy"),
    (["train", "--data", "{root}/group.h5", "--prior", UNIT_PRIOR, "-o", "{root}/m"], "group"),
    (["train", "--data", "{root}/garbage.npz", "--prior", UNIT_PRIOR, "-o", "{root}/m"], "garbage.npz"),
    (["train", "--data", "{root}/nothing.npz", "--prior", UNIT_PRIOR, "-o", "{root}/m"], "nothing.npz"),
    (["train", "toy_gaussian", "--device", "banana", "-o", "{root}/m"], "banana"),
    (["train", "toy_gaussian", "-o", "{root}/taken"], "taken already exists"),
    (["train", "toy_gaussian", "--estimator-option", "hiden_features=8", "-o", "{root}/m"], "'hidden_features'"),
    (["train", "toy_gaussian", "--learning-rate", "-1", "-o", "{root}/m"], "--learning-rate"),
    (["sample", "{root}/model", "--observation", "{root}/empty.npy", "-o", "{root}/s.npz"], "empty.npy is empty"),
    (["sample", "{root}/model", "--observation", "{root}/dict.json", "-o", "{root}/s.npz"], "JSON dict"),
    (["sample", "{root}/model", "--observation", "{root}/obs3.npy", "-o", "{root}/s.npz"], "obs3.npy"),
    (["sample", "{root}/model", "--observation", "{root}/obs.npy", "-o", "{root}/results"], "must be a .npz file"),
    (["sample", "{root}/model", "--observation", "{root}/obs.npy", "-o", "{root}/a_file/s.npz"], "is a file"),
    (["sample", "{root}/no_model", "--observation", "{root}/obs.npy", "-o", "{root}/s.npz"], "config.json is missing"),
    (["sample", "{root}/wrong_type", "--observation", "{root}/obs.npy", "-o", "{root}/s.npz"], "wrong type"),
    (["run", "--observations", "0"], "--observations"),
    (["run", "--device", "cuda:7", "-o", "{root}/r"], "cuda:7"),
    (["calibrate", "{root}/model", "--budgets", "1e3,abc"], "--budgets"),
    (["calibrate", "{root}/model", "--alpha", "2"], "--alpha"),
    (["calibrate", "{root}/model", "-o", "{root}/c"], "records no simulator"),
    (["refine", "{root}/model", "--observation", "{root}/obs.npy", "-o", "{root}/r.npz"], "records no simulator"),
    (["refine", "{root}/model", "--observation", "{root}/obs.npy", "--min-efficiency", "0", "-o", "{root}/r.npz"],
     "--min-efficiency"),
    (["benchmark", "--jobs", "0"], "--jobs"),
    (["benchmark", "--budgets", "1e3,abc", "-o", "{root}/b"], "--budgets"),
    (["benchmark", "--task-options", "{oops", "-o", "{root}/b"], "--task-options"),
]


def _snapshot(root):
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _exit_status(argv) -> int:
    """``main(argv)``'s status; argparse refuses some arguments itself, by SystemExit with status 2."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(c[0][:3]) + f" [{i}]" for i, c in enumerate(CASES)])
def test_user_errors_exit_2_with_one_line(files, argv, named, capsys):
    before = _snapshot(files)
    assert _exit_status([part.replace("{root}", str(files)) for part in argv]) == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sbi-gen ") and ": error: " in last
    assert _snapshot(files) == before  # nothing already written is touched


def test_the_console_script_prints_no_traceback(files):
    """The same through a real process: stderr is one error line, exit status 2."""
    result = subprocess.run(
        [sys.executable, "-m", "sbi_gen.cli", "sample", str(files / "model"), "--observation",
         str(files / "dict.json"), "-o", str(files / "never.npz")], capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("sbi-gen sample: error: --observation") and "Traceback" not in result.stderr
    assert not (files / "never.npz").exists()
