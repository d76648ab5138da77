"""Exact Boltzmann conformations of a united-atom n-alkane, with an exact likelihood.

Model. A united-atom n-alkane of ``n`` beads (default n-octane: 8 beads, 7
bonds, 6 angles, 5 backbone dihedrals) with bonded terms only, i.e. an ideal
chain without 1-5 or longer-range non-bonded interactions:

- bonds   ``U_b = k_b (b - b0)^2 / 2``,  ``b0 = 0.154 nm``, ``k_b = 224262.4 kJ/mol/nm^2``;
- angles  ``U_a = k_a (a - a0)^2 / 2``,  ``a0 = 114 deg``, ``k_a = 519.65 kJ/mol/rad^2``
  (TraPPE-UA, ``k_a / k_B = 62500 K/rad^2``);
- torsions (TraPPE / OPLS form, IUPAC convention, *trans* at 180 deg)
  ``U_t = c1 (1 + cos phi) + c2 (1 - cos 2 phi) + c3 (1 + cos 3 phi)``, TraPPE values
  ``c1, c2, c3 = 2.952, -0.567, 6.579 kJ/mol``

(Martin and Siepmann 1998, "Transferable potentials for phase equilibria. 1.
United-atom description of n-alkanes", J. Phys. Chem. B 102, 2569). In internal
coordinates the volume element ``prod b_i^2 sin a_i db da dphi`` does not depend
on the dihedrals, so the Boltzmann density at temperature ``T`` factorizes
exactly into independent 1-D densities of every bond, angle and dihedral. Each
is drawn exactly (:mod:`sbi_gen_simulators.alkane_forcefield`); Cartesian
coordinates are built with NeRF (:mod:`sbi_gen_simulators.alkane_geometry`;
Parsons et al. 2005, J. Comput. Chem. 26, 1063).

Parameters ``theta = (c1, c2, c3, T)`` with independent uniform priors
``c1 ~ U(0, 6)``, ``c2 ~ U(-2, 1)``, ``c3 ~ U(2, 10)`` kJ/mol, ``T ~ U(250, 500)`` K.

Two simulators:

- ``alkane``: ``x = [<cos phi>, <cos 2 phi>, <cos 3 phi>, rms(a - a0) in deg,
  rms(b - b0) in pm]`` of ``N = 50`` i.i.d. conformations, the averages running
  over all ``N (n - 3)`` dihedrals, ``N (n - 2)`` angles and ``N (n - 1)`` bonds.
  The model is an exponential family with natural parameters ``c / RT`` and
  ``1 / T``, and ``x`` holds its sufficient statistics, so ``p(theta | x)`` is
  the posterior given all ``N`` conformations. The conformations themselves are
  never built: the statistics are computed from the sampled internal
  coordinates, which equal those of the NeRF coordinates (tested to 1e-12).
- ``alkane_set``: ``x`` = the ``N = 20`` conformations ``[N, n, 3]`` in nm, in the
  canonical NeRF frame (``frame="canonical"``) or each centred and rotated
  uniformly at random (``frame="random"``); for a permutation-invariant
  embedding such as ``deepsets``.

``dihedrals_only=True`` freezes bonds at ``b0`` and angles at ``a0``: only the
torsions carry information, ``T`` enters only through ``c / RT``, and the
posterior is a near-degenerate ridge (``x`` of ``alkane`` is then the three
cosine averages).

Likelihood. With ``D = N (n - 3)``, ``A = N (n - 2)``, ``L = N (n - 1)``, ``RT = R T``
(``R = k_B N_A`` from astropy) and the statistics above (``ms_a``, ``ms_b`` the
squared rms values in rad^2 and nm^2)::

    log_likelihood = - D [ (c1 (1 + <cos phi>) + c2 (1 - <cos 2phi>) + c3 (1 + <cos 3phi>)) / RT
                           + log Z_t(c / RT) ]
                     - A [ k_a ms_a / 2RT + log Z_a(T) ] - L [ k_b ms_b / 2RT + log Z_b(T) ]

It equals ``log p(conformations | theta)`` (density in internal coordinates)
minus the theta-independent ``sum 2 log b_i + sum log sin a_i``, and so also
``log p(x | theta)`` minus a function of ``x`` alone: exact for posteriors,
likelihood ratios and importance weights, but not normalized over ``x``.
``Z_t`` is a periodic trapezoid sum, ``Z_a`` and ``Z_b`` are closed form (see
:mod:`sbi_gen_simulators.alkane_forcefield`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_gen.hookspecs import SimulatorSpec, hookimpl
from sbi_gen.prior import Parameter, UniformPrior
from sbi_gen.reference import MCMCPosterior
from sbi_gen.simulator import Simulator
from sbi_gen_simulators.alkane_forcefield import (
    GAS_CONSTANT,
    ForceField,
    sample_angles,
    sample_bonds,
    sample_dihedrals,
    torsion_log_normalizer,
)
from sbi_gen_simulators.alkane_geometry import internal_coordinates, nerf, random_frame

__all__ = ["Alkane", "AlkaneSet", "TRAPPE_TORSION"]

#: TraPPE-UA torsion coefficients c1, c2, c3 in kJ/mol (Martin and Siepmann 1998)
TRAPPE_TORSION = (2.952, -0.567, 6.579)
_PRIOR_LOW, _PRIOR_HIGH = (0.0, -2.0, 2.0, 250.0), (6.0, 1.0, 10.0, 500.0)
_PARAMETERS = (
    Parameter("c1", "kJ / mol", r"$c_1$"),
    Parameter("c2", "kJ / mol", r"$c_2$"),
    Parameter("c3", "kJ / mol", r"$c_3$"),
    Parameter("T", "K", r"$T$"),
)


class _AlkaneModel(Simulator):
    """What both variants share: prior, exact internal-coordinate sampler, statistics, likelihood."""

    def __init__(self, chain_length: int, num_conformations: int, dihedrals_only: bool) -> None:
        if chain_length < 4:
            raise ValueError(f"an alkane with dihedrals needs at least 4 beads, got chain_length={chain_length}")
        if num_conformations < 1:
            raise ValueError(f"num_conformations must be positive, got {num_conformations}")
        self.chain_length, self.num_conformations = int(chain_length), int(num_conformations)
        self.dihedrals_only = bool(dihedrals_only)
        self.forcefield = ForceField()
        self.prior = UniformPrior(_PRIOR_LOW, _PRIOR_HIGH, _PARAMETERS)
        n, m = self.chain_length, self.num_conformations
        self.counts = {"dihedrals": m * (n - 3), "angles": m * (n - 2), "bonds": m * (n - 1)}

    @property
    def num_statistics(self) -> int:
        """3 cosine averages, plus the angle and bond rms unless ``dihedrals_only``."""
        return 3 if self.dihedrals_only else 5

    @staticmethod
    def _split(theta: Tensor) -> tuple[Tensor, Tensor]:
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.shape[-1] != 4:
            raise ValueError(f"theta must have 4 columns (c1, c2, c3, T), got shape {list(theta.shape)}")
        return theta[..., :3], theta[..., 3]

    def sample_internal(
        self, theta: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Exact Boltzmann internal coordinates for ``theta [n, 4]``, ``num_conformations`` each.

        Returns bonds ``[n, N, n_beads - 1]`` (nm), angles ``[n, N, n_beads - 2]`` and
        dihedrals ``[n, N, n_beads - 3]`` (rad), float64.
        """
        c, temperature = self._split(theta)
        _check_temperature(temperature)
        rows, m, beads = len(c), self.num_conformations, self.chain_length
        dihedrals = sample_dihedrals(c, temperature, self.counts["dihedrals"], generator)
        if self.dihedrals_only:
            bonds = torch.full((rows, self.counts["bonds"]), self.forcefield.b0, dtype=torch.float64)
            angles = torch.full((rows, self.counts["angles"]), self.forcefield.a0, dtype=torch.float64)
        else:
            angles = sample_angles(self.forcefield, temperature, self.counts["angles"], generator)
            bonds = sample_bonds(self.forcefield, temperature, self.counts["bonds"], generator)
        return bonds.view(rows, m, beads - 1), angles.view(rows, m, beads - 2), dihedrals.view(rows, m, beads - 3)

    def statistics_from_internal(self, bonds: Tensor, angles: Tensor, dihedrals: Tensor) -> Tensor:
        """Summary ``[..., 5]`` (or ``[..., 3]``) of internal coordinates ``[..., N, k]`` (float64)."""
        cos1 = torch.cos(dihedrals.to(torch.float64)).flatten(-2)
        cos2 = 2 * cos1 * cos1 - 1
        stats = [cos1.mean(-1), cos2.mean(-1), ((2 * cos2 - 1) * cos1).mean(-1)]
        if not self.dihedrals_only:
            da = (angles.to(torch.float64) - self.forcefield.a0).flatten(-2)
            db = (bonds.to(torch.float64) - self.forcefield.b0).flatten(-2)
            stats += [torch.rad2deg(torch.sqrt((da * da).mean(-1))), 1000 * torch.sqrt((db * db).mean(-1))]
        return torch.stack(stats, -1)

    def statistics_from_coordinates(self, coordinates: Tensor) -> Tensor:
        """Summary ``[..., 5]`` (or ``[..., 3]``) of conformation sets ``[..., N, n_beads, 3]`` (nm)."""
        return self.statistics_from_internal(*internal_coordinates(torch.as_tensor(coordinates, dtype=torch.float64)))

    def log_likelihood_from_statistics(self, theta: Tensor, statistics: Tensor) -> Tensor:
        """Log-likelihood (module docstring) of ``theta [..., B, 4]`` given statistics ``[B, 5 or 3]``."""
        c, temperature = self._split(theta)
        s = torch.as_tensor(statistics, dtype=torch.float64)
        valid = temperature > 0
        temperature = torch.where(valid, temperature, torch.ones_like(temperature))
        rt = GAS_CONSTANT * temperature
        energy = c[..., 0] * (1 + s[..., 0]) + c[..., 1] * (1 - s[..., 1]) + c[..., 2] * (1 + s[..., 2])
        log_l = -self.counts["dihedrals"] * (energy / rt + torsion_log_normalizer(c / rt.unsqueeze(-1)))
        if not self.dihedrals_only:
            ff = self.forcefield
            ms_a, ms_b = torch.deg2rad(s[..., 3]) ** 2, (s[..., 4] / 1000) ** 2
            log_l = log_l - self.counts["angles"] * (ff.k_a * ms_a / (2 * rt) + ff.angle_log_normalizer(temperature))
            log_l = log_l - self.counts["bonds"] * (ff.k_b * ms_b / (2 * rt) + ff.bond_log_normalizer(temperature))
        return torch.where(valid, log_l, torch.full_like(log_l, -math.inf))

    def statistics(self, x: Tensor) -> Tensor:
        """Summary statistics ``[B, 5 or 3]`` (float64) of observations ``[B, *x_shape]``."""
        raise NotImplementedError

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log p(x | theta)`` up to a function of ``x`` alone (module docstring): ``[..., B]``."""
        return self.log_likelihood_from_statistics(theta, self.statistics(x))

    def reference_posterior(self, x: Tensor, **options) -> MCMCPosterior:
        """Posterior for ``x [B, *x_shape]`` by parallel adaptive random-walk Metropolis.

        ``log_prob`` of the result is the *unnormalized* log posterior; see
        :class:`~sbi_gen.reference.MCMCPosterior` for the
        sampler, its options and its convergence check.
        """
        statistics = self.statistics(x)
        return MCMCPosterior(lambda theta: self.log_likelihood_from_statistics(theta, statistics), self.prior,
                             len(statistics), **options)


def _check_temperature(temperature: Tensor) -> None:
    if not bool((temperature > 0).all()):
        raise ValueError(f"temperatures must be positive, got min T = {float(temperature.min()):.6g} K")


class Alkane(_AlkaneModel):
    """Sufficient statistics of ``num_conformations`` exact Boltzmann conformations (``x [5]``).

    Arguments:
        chain_length: number of united-atom beads (8: n-octane).
        num_conformations: ``N``, i.i.d. conformations summarized per simulation.
        dihedrals_only: freeze bonds and angles; ``x`` is then the 3 cosine averages.
        chunk_size: parameters simulated at once (bounds memory, keeps arrays in cache).
    """

    def __init__(
        self, chain_length: int = 8, num_conformations: int = 50, dihedrals_only: bool = False, chunk_size: int = 1000
    ) -> None:
        super().__init__(chain_length, num_conformations, dihedrals_only)
        self.options = {"chain_length": chain_length, "num_conformations": num_conformations,
                        "dihedrals_only": dihedrals_only}
        self.chunk_size = int(chunk_size)
        self.x_shape = (self.num_statistics,)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        c, temperature = self._split(theta)
        _check_temperature(temperature)
        ff, counts = self.forcefield, self.counts
        parts = []
        for start in range(0, len(c), self.chunk_size):
            ci, ti = c[start : start + self.chunk_size], temperature[start : start + self.chunk_size]
            stats = sample_dihedrals(ci, ti, counts["dihedrals"], generator, _cosines)
            if not self.dihedrals_only:
                ms_a = sample_angles(ff, ti, counts["angles"], generator, lambda a: [(a - ff.a0) * (a - ff.a0)])
                ms_b = sample_bonds(ff, ti, counts["bonds"], generator, lambda b: [(b - ff.b0) * (b - ff.b0)])
                stats = torch.cat([stats, torch.rad2deg(torch.sqrt(ms_a)), 1000 * torch.sqrt(ms_b)], -1)
            parts.append(stats)
        if not parts:
            return torch.empty(0, *self.x_shape)
        return torch.cat(parts).float()

    def statistics(self, x: Tensor) -> Tensor:
        return torch.as_tensor(x, dtype=torch.float64).reshape(-1, self.num_statistics)


class AlkaneSet(_AlkaneModel):
    """A set of ``num_conformations`` exact Boltzmann conformations, ``x [N, n_beads, 3]`` in nm.

    Arguments:
        chain_length: number of united-atom beads (8: n-octane).
        num_conformations: ``N``, the set size.
        dihedrals_only: freeze bonds at ``b0`` and angles at ``a0``.
        frame: ``"canonical"`` (NeRF frame) or ``"random"`` (each conformation centred
            on its centroid and rotated uniformly at random).
    """

    # a set of i.i.d. conformations: estimators should embed it permutation-invariantly
    suggested_estimator_options = {"embedding": "deepsets"}

    def __init__(
        self, chain_length: int = 8, num_conformations: int = 20, dihedrals_only: bool = False,
        frame: str = "canonical",
    ) -> None:
        if frame not in ("canonical", "random"):
            raise ValueError(f"frame must be 'canonical' or 'random', got {frame!r}")
        super().__init__(chain_length, num_conformations, dihedrals_only)
        self.options = {"chain_length": chain_length, "num_conformations": num_conformations,
                        "dihedrals_only": dihedrals_only, "frame": frame}
        self.frame = frame
        self.x_shape = (self.num_conformations, self.chain_length, 3)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        coordinates = nerf(*self.sample_internal(theta, generator))  # [n, N, beads, 3]
        if self.frame == "random":
            shape = coordinates.shape
            coordinates = random_frame(coordinates.reshape(-1, *shape[-2:]), generator).reshape(shape)
        return coordinates.float()

    def statistics(self, x: Tensor) -> Tensor:
        return self.statistics_from_coordinates(torch.as_tensor(x).reshape(-1, *self.x_shape))


def _cosines(phi: Tensor) -> list[Tensor]:
    cos1 = torch.cos(phi)
    cos2 = 2 * cos1 * cos1 - 1
    return [cos1, cos2, (2 * cos2 - 1) * cos1]


@hookimpl
def sbi_gen_simulators() -> list[SimulatorSpec]:
    return [
        SimulatorSpec(
            "alkane",
            "sufficient statistics of 50 exact Boltzmann n-octane conformations; theta = (c1, c2, c3, T)",
            Alkane,
        ),
        SimulatorSpec(
            "alkane_set",
            "a set of 20 exact Boltzmann n-octane conformations [20, 8, 3] in nm; theta = (c1, c2, c3, T)",
            AlkaneSet,
        ),
    ]
