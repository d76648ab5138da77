"""The gw_svd embedding: basis quality, standardized coordinates, shapes, errors, save / load through an estimator."""

import pytest
import torch

import sbi_gen
from sbi_gen.cli import main
from sbi_gen.nn import Standardize, loading_weights
from sbi_gen.registry import get_registry
from sbi_gen_plugins import svd_embedding
from sbi_gen_plugins.svd_embedding import SVDResidualEmbedding, gw_svd_embedding, waveform_basis


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gw():
    return sbi_gen.get_simulator("gw")


@pytest.fixture(scope="module")
def default_embedding():
    """The default configuration: 256 real basis vectors from 10^4 gw waveforms (~5 s on one core)."""
    torch.set_num_threads(1)
    return get_registry().embedding("gw_svd", (1, 2, 1889), 32)


def _real(h):
    """Complex ``[n, n_det, n_bins]`` -> real ``[n, n_det, 2 n_bins]`` in x's layout."""
    return torch.view_as_real(h).transpose(-1, -2).reshape(h.shape[0], h.shape[1], -1)


def _mismatch(h, basis):
    """``1 - <h, Ph> / (|h| |Ph|)`` in whitened units, ``P`` the projection on the basis columns."""
    reconstructed = (h @ basis) @ basis.T
    return 1 - (h * reconstructed).sum(-1) / (h.norm(dim=-1) * reconstructed.norm(dim=-1))


def test_registered_and_listed_by_the_cli(capsys):
    assert "gw_svd" in get_registry().names("embedding")
    assert get_registry().spec("embedding", "gw_svd").factory is gw_svd_embedding
    assert main(["plugins"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "gw_svd" in line]
    assert len(lines) == 1 and lines[0].split()[:2] == ["embedding", "gw_svd"]


def test_default_basis_reconstructs_held_out_waveforms(default_embedding, gw):
    """Held-out prior draws: mean mismatch 4.0e-4, median 3.3e-4, 95 % below 5.7e-4; the worst of 1000
    (heavy binaries whose ISCO cut falls in band) reaches 2.5e-2."""
    basis = default_embedding.basis[0].double()
    assert basis.shape == (2 * 1889, 256)
    torch.testing.assert_close(basis.T @ basis, torch.eye(256, dtype=torch.float64), atol=1e-6, rtol=0)
    theta = gw.prior.sample(1000, torch.Generator().manual_seed(123)).double()
    h = _real(gw.whitened_waveform(theta))[:, 0]
    mismatch = _mismatch(h, basis)
    assert float(mismatch.mean()) < 1e-3
    assert float(torch.quantile(mismatch, 0.95)) < 1e-3
    # the leading 64 vectors alone are far from enough: the criterion can fail
    assert float(torch.quantile(_mismatch(h, basis[:, :64]), 0.95)) > 1e-2
    # above the highest ISCO frequency of the prior (~191 Hz) no waveform has power, nor has the basis
    assert float(basis[gw.frequencies.numel() - 1].abs().max()) == 0.0
    values = default_embedding.singular_values[0]
    assert bool((values[1:] <= values[:-1] * (1 + 1e-5)).all()) and float(values[-1]) > 0


def test_projection_undoes_the_estimators_standardization(default_embedding, gw):
    """scale predicts the std an estimator fits, so project(standardized x) = V^T (x - mean)."""
    data = sbi_gen.simulate(gw, 3000, seed=5)
    standardize = Standardize(gw.x_shape).fit(data.x)
    assert float(standardize.std.max()) > 1.25  # loud signals: the z-scoring is not the identity
    ratio = default_embedding.scale / standardize.std
    assert float((ratio - 1).abs().median()) < 0.02 and float((ratio - 1).abs().max()) < 0.1
    basis = default_embedding.basis[0].double()
    with torch.no_grad():
        coefficients = default_embedding.project(standardize(data.x))[:, 0].double()
    target = (data.x - standardize.mean).reshape(len(data.x), -1).double() @ basis
    naive = standardize(data.x).reshape(len(data.x), -1).double() @ basis  # ignoring the standardization
    error = float((coefficients - target).norm() / target.norm())
    assert error < 0.02 < 0.1 < float((naive - target).norm() / target.norm())
    # whitened noise alone: unit-variance coefficients (orthonormal basis, undone z-scoring)
    noise = torch.randn(3000, *gw.x_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        variances = default_embedding.project(standardize(noise)).var(0)
    assert abs(float(variances.mean()) - 1) < 0.02


def test_output_shape_for_the_network_simulator():
    embedding = get_registry().embedding(
        "gw_svd", (2, 2, 1889), 12, simulator="gw_network", simulator_options={"f_max": 256.0},
        num_basis=40, num_waveforms=300, hidden_features=24, num_blocks=1,
    )
    x = torch.randn(5, 2, 2, 1889, generator=torch.Generator().manual_seed(0))
    assert embedding.project(x).shape == (5, 2, 40)
    out = embedding(x)
    assert out.shape == (5, 12) and bool(torch.isfinite(out).all())
    assert embedding.basis.shape == (2, 2 * 1889, 40) and embedding.scale.shape == (2, 2, 1889)
    assert not torch.equal(embedding.basis[0], embedding.basis[1])  # one basis per detector
    assert sum(p.numel() for p in embedding.parameters()) < 5000  # the frozen basis is not a parameter


def test_clear_errors():
    with pytest.raises(ValueError, match="makes x of shape \\(1, 2, 1889\\).*shape \\(1, 2, 100\\)"):
        gw_svd_embedding((1, 2, 100), 8, num_waveforms=50, num_basis=4)
    with pytest.raises(ValueError, match=r"x \[n_det, 2 \(real, imaginary\), n_bins\]"):
        gw_svd_embedding((3,), 8)
    with pytest.raises(ValueError, match="num_basis <= num_waveforms"):
        gw_svd_embedding((1, 2, 1889), 8, num_basis=64, num_waveforms=10)
    with pytest.raises(ValueError, match=r"needs basis \[1, 3778, num_basis\]"):
        SVDResidualEmbedding((1, 2, 1889), 8, torch.zeros(1, 100, 4), torch.ones(1, 2, 1889), torch.zeros(1, 4))
    with pytest.raises(TypeError, match="has no whitened_waveform"):
        waveform_basis(sbi_gen.get_simulator("toy_gaussian"), 2, 10, 0)


def test_loading_skips_the_svd(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the SVD must not run when weights are about to be loaded")

    monkeypatch.setattr(svd_embedding, "_compute_basis", refuse)
    monkeypatch.setattr(svd_embedding, "_BASES", type(svd_embedding._BASES)())
    with loading_weights():
        embedding = gw_svd_embedding((1, 2, 1889), 8, num_basis=16, simulator="no_such_simulator")  # none is built
    assert embedding.basis.shape == (1, 2 * 1889, 16) and float(embedding.basis.abs().max()) == 0.0
    with pytest.raises(AssertionError, match="must not run"):
        gw_svd_embedding((1, 2, 1889), 8, num_basis=16, num_waveforms=100, seed=3)


def test_module_is_handed_its_basis_and_never_looks_up_a_simulator(gw, monkeypatch):
    """The nn.Module takes the basis; the factory takes a built simulator; neither touches the registry."""
    import sbi_gen.registry

    basis, scale, values = waveform_basis(gw, 8, 100, 0)

    def refuse(*args, **kwargs):
        raise AssertionError("the registry must not be consulted")

    monkeypatch.setattr(sbi_gen.registry, "get_registry", refuse)
    monkeypatch.setattr(sbi_gen.registry.Registry, "simulator", refuse)
    module = SVDResidualEmbedding(gw.x_shape, 4, basis, scale, values, hidden_features=8, num_blocks=1)
    assert torch.equal(module.basis, basis) and torch.equal(module.scale, scale)
    built = gw_svd_embedding(gw.x_shape, 4, simulator=gw, num_basis=8, num_waveforms=100, hidden_features=8,
                             num_blocks=1)
    assert torch.equal(built.basis, basis)  # the same prior draws (seed 0), so the same basis, bit for bit


def test_registry_hands_itself_to_the_factory(monkeypatch):
    """A simulator named in the options is built by the registry that builds the embedding, not the global one."""
    import sbi_gen.registry

    registry = sbi_gen.registry.Registry()
    built = []
    original = sbi_gen.registry.Registry.simulator

    def recording(self, name, **options):
        built.append(self)
        return original(self, name, **options)

    monkeypatch.setattr(sbi_gen.registry.Registry, "simulator", recording)
    registry.embedding("gw_svd", (1, 2, 1889), 4, num_basis=4, num_waveforms=20, hidden_features=8, num_blocks=1)
    assert built == [registry]


@pytest.mark.parametrize("trainable", [False, True])
def test_save_load_round_trip_gives_identical_samples(gw, tmp_path, monkeypatch, trainable):
    data = sbi_gen.simulate(gw, 400, seed=1)
    options = {"num_basis": 24, "num_waveforms": 400, "hidden_features": 16, "num_blocks": 1, "trainable": trainable}
    estimator = sbi_gen.get_estimator(
        "flow", num_transforms=2, hidden_features=16, embedding="gw_svd", embedding_features=8,
        embedding_options=options,
    )
    initial = waveform_basis(gw, 24, 400, 0)[0]
    estimator.fit(data.theta, data.x, gw.prior, max_epochs=2, batch_size=64, progress=False)
    embedding = estimator.core.embedding
    assert isinstance(embedding.basis, torch.nn.Parameter) is trainable
    if trainable:
        assert not torch.equal(embedding.basis, initial)  # trained from the SVD initialization
    else:
        assert torch.equal(embedding.basis, initial)  # frozen
    estimator.save(tmp_path / "model")
    # loading must not recompute the basis: it comes from weights.safetensors
    monkeypatch.setattr(svd_embedding, "_compute_basis", lambda *a, **k: pytest.fail("SVD recomputed on load"))
    loaded = sbi_gen.load_estimator(tmp_path / "model")
    assert torch.equal(loaded.core.embedding.basis, embedding.basis)
    assert torch.equal(loaded.core.embedding.scale, embedding.scale)
    x_obs = data.x[:3]
    first = estimator.sample(x_obs, 50, torch.Generator().manual_seed(7))
    again = loaded.sample(x_obs, 50, torch.Generator().manual_seed(7))
    assert first.shape == (50, 3, 5) and torch.equal(first, again)
    log_q = loaded.log_prob(first[:5], x_obs)
    assert torch.equal(log_q, estimator.log_prob(first[:5], x_obs)) and bool(torch.isfinite(log_q).all())


def test_flow_with_gw_svd_on_the_network_simulator_stays_inside_the_prior():
    """The isotropic-angle prior (IndependentPrior) through the flow's support transform, with gw_svd."""
    simulator = sbi_gen.get_simulator("gw_network")
    data = sbi_gen.simulate(simulator, 300, seed=2)
    estimator = sbi_gen.get_estimator(
        "flow", num_transforms=2, hidden_features=16, embedding="gw_svd", embedding_features=8,
        embedding_options={"simulator": "gw_network", "num_basis": 16, "num_waveforms": 200, "hidden_features": 16,
                           "num_blocks": 1},
    )
    estimator.fit(data.theta, data.x, simulator.prior, max_epochs=1, batch_size=64, progress=False)
    samples = estimator.sample(data.x[:2], 200, torch.Generator().manual_seed(0))
    assert samples.shape == (200, 2, 9) and bool(simulator.prior.contains(samples).all())
    assert bool(torch.isfinite(simulator.prior.log_prob(samples)).all())
    assert bool(torch.isfinite(estimator.log_prob(samples[:3], data.x[:2])).all())
