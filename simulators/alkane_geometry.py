"""Chain geometry: internal coordinates <-> Cartesian coordinates (NeRF), and rigid-body frames.

A linear chain of ``n`` beads has ``n - 1`` bond lengths ``b_i = |r_{i+1} - r_i|``,
``n - 2`` bond angles ``a_i`` (at bead ``i + 1``, between the bonds to its two
neighbours) and ``n - 3`` dihedrals ``phi_i`` (of beads ``i .. i + 3``) in the
IUPAC convention: ``phi`` is the angle between the planes ``(r_i, r_{i+1},
r_{i+2})`` and ``(r_{i+1}, r_{i+2}, r_{i+3})``, ``180`` degrees for *trans*, in
``(-pi, pi]``, positive for a clockwise turn of the far bond seen along the
central bond (IUPAC 1996, "Basic terminology of stereochemistry", Pure Appl.
Chem. 68, 2193).

Cartesian coordinates are built with the Natural Extension Reference Frame
(NeRF) method: each new bead is placed from the three before it with one
rotation matrix and one matrix-vector product (Parsons, Holmes, Rojas, Tsai and
Strauss 2005, "Practical conversion from torsion space to Cartesian space for
in silico protein synthesis", J. Comput. Chem. 26, 1063). The canonical frame
puts bead 0 at the origin, bead 1 on the ``+x`` axis and bead 2 in the ``xy``
plane with ``y > 0``.

All functions are batched over leading dimensions and work in the dtype they
are given (use float64 for round trips at ``1e-12``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["nerf", "internal_coordinates", "random_rotations", "random_frame"]


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def nerf(bonds: Tensor, angles: Tensor, dihedrals: Tensor) -> Tensor:
    """Cartesian coordinates ``[..., n, 3]`` of a chain in the canonical frame.

    Arguments:
        bonds: ``[..., n - 1]`` bond lengths.
        angles: ``[..., n - 2]`` bond angles in radians, in ``(0, pi)``.
        dihedrals: ``[..., n - 3]`` IUPAC dihedrals in radians.
    """
    n = bonds.shape[-1] + 1
    if angles.shape[-1] != n - 2 or dihedrals.shape[-1] != n - 3 or n < 3:
        raise ValueError(
            f"a chain of {n} beads needs {n - 2} angles and {n - 3} dihedrals, "
            f"got {angles.shape[-1]} and {dihedrals.shape[-1]}"
        )
    batch = bonds.shape[:-1]
    zero = bonds.new_zeros(batch)
    r0 = torch.stack([zero, zero, zero], -1)
    r1 = torch.stack([bonds[..., 0], zero, zero], -1)
    a, b = angles[..., 0], bonds[..., 1]
    r2 = r1 + torch.stack([-b * torch.cos(a), b * torch.sin(a), zero], -1)
    positions = [r0, r1, r2]
    for i in range(3, n):
        ra, rb, rc = positions[i - 3], positions[i - 2], positions[i - 1]
        bond, angle, dihedral = bonds[..., i - 1], angles[..., i - 2], dihedrals[..., i - 3]
        bc = _unit(rc - rb)
        normal = _unit(torch.linalg.cross(rb - ra, bc))
        # local position of the new bead in the frame (bc, normal x bc, normal)
        local = torch.stack(
            [
                -bond * torch.cos(angle),
                bond * torch.sin(angle) * torch.cos(dihedral),
                bond * torch.sin(angle) * torch.sin(dihedral),
            ],
            -1,
        )
        frame = torch.stack([bc, torch.linalg.cross(normal, bc), normal], -1)
        positions.append(rc + (frame @ local.unsqueeze(-1)).squeeze(-1))
    return torch.stack(positions, -2)


def internal_coordinates(coordinates: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bond lengths ``[..., n - 1]``, angles ``[..., n - 2]`` and IUPAC dihedrals ``[..., n - 3]``.

    Arguments:
        coordinates: ``[..., n, 3]`` bead positions.

    Angles use ``atan2(|u x v|, u . v)`` and dihedrals the ``atan2`` form of
    Blondel and Karplus (1996, J. Comput. Chem. 17, 1132), both accurate to
    rounding for every geometry.
    """
    bond_vectors = coordinates[..., 1:, :] - coordinates[..., :-1, :]
    bonds = torch.linalg.vector_norm(bond_vectors, dim=-1)
    u, v = -bond_vectors[..., :-1, :], bond_vectors[..., 1:, :]
    angles = torch.atan2(torch.linalg.vector_norm(torch.linalg.cross(u, v), dim=-1), (u * v).sum(-1))
    b1, b2, b3 = bond_vectors[..., :-2, :], bond_vectors[..., 1:-1, :], bond_vectors[..., 2:, :]
    n1, n2 = torch.linalg.cross(b1, b2), torch.linalg.cross(b2, b3)
    y = torch.linalg.vector_norm(b2, dim=-1) * (b1 * n2).sum(-1)
    dihedrals = torch.atan2(y, (n1 * n2).sum(-1))
    return bonds, angles, dihedrals


def random_rotations(n: int, generator: torch.Generator | None = None, dtype=torch.float64) -> Tensor:
    """``n`` rotation matrices ``[n, 3, 3]`` drawn uniformly (Haar) from SO(3).

    A normalized standard-normal 4-vector is a uniform unit quaternion
    (Shoemake 1992, "Uniform random rotations", Graphics Gems III, 124).
    """
    q = _unit(torch.randn(n, 4, generator=generator, dtype=dtype))
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(n, 3, 3)


def random_frame(coordinates: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Move each chain of ``coordinates [m, n, 3]`` to its centroid and rotate it uniformly at random."""
    centred = coordinates - coordinates.mean(-2, keepdim=True)
    rotations = random_rotations(coordinates.shape[0], generator, coordinates.dtype)
    return centred @ rotations.transpose(-1, -2)
