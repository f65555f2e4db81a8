"""Crystal lattices (Bravais cell + basis), neighbour shells and bond lists to a cutoff.

Conventions: ``cell`` rows are the primitive lattice vectors (d, d); ``basis`` rows are the
Cartesian positions of the atoms of one primitive cell (nb, d).  Lengths are in the units of the
potential (σ for Lennard-Jones, Å for Stillinger–Weber).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

LATTICES = ("sc", "fcc", "bcc", "hcp", "diamond", "triangular", "square")


@dataclass(frozen=True)
class Lattice:
    """A crystal: primitive ``cell`` rows (d, d), ``basis`` (nb, d), conventional constant ``a``."""

    name: str
    cell: np.ndarray
    basis: np.ndarray
    a: float
    c_over_a: float = 1.0

    @property
    def dim(self) -> int:
        return self.cell.shape[0]

    @property
    def nbasis(self) -> int:
        return self.basis.shape[0]

    @property
    def volume(self) -> float:
        """Reference volume (area in 2D) of the primitive cell."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def atomic_volume(self) -> float:
        return self.volume / self.nbasis

    def scaled(self, s: float) -> "Lattice":
        """The same lattice homogeneously scaled by ``s``."""
        return Lattice(self.name, self.cell * s, self.basis * s, self.a * s, self.c_over_a)

    def nearest_neighbour_distance(self) -> float:
        d, _ = shells(self, 1)
        return float(d[0])


def make_lattice(name: str, a: float = 1.0, c_over_a: float | None = None) -> Lattice:
    """Build a lattice by name with conventional lattice constant ``a``.

    ``sc``, ``fcc``, ``bcc``, ``diamond``: cubic constant ``a`` (primitive cells, diamond = FCC +
    2-atom basis); ``hcp``: in-plane ``a`` and ``c = c_over_a·a`` (ideal √(8/3) by default);
    ``triangular`` / ``square`` (2D): nearest-neighbour distance / side ``a``.
    """
    name = name.lower()
    if name not in LATTICES:
        raise InputError(f"unknown lattice {name!r} (choose from {', '.join(LATTICES)})")
    if not (a > 0):
        raise InputError(f"lattice constant must be > 0 (got {a})")
    if name == "sc":
        cell, basis = np.eye(3) * a, np.zeros((1, 3))
    elif name == "fcc":
        cell, basis = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], float), np.zeros((1, 3))
    elif name == "bcc":
        cell, basis = 0.5 * a * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], float), np.zeros((1, 3))
    elif name == "diamond":
        cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], float)
        basis = np.array([[0, 0, 0], [0.25, 0.25, 0.25]]) * a
    elif name == "hcp":
        ca = np.sqrt(8.0 / 3.0) if c_over_a is None else float(c_over_a)
        if not (ca > 0):
            raise InputError(f"hcp c/a must be > 0 (got {ca})")
        cell = np.array([[a, 0, 0], [0.5 * a, 0.5 * np.sqrt(3) * a, 0], [0, 0, ca * a]])
        basis = np.vstack([np.zeros(3), np.array([1 / 3, 1 / 3, 0.5]) @ cell])
        return Lattice(name, cell, basis, float(a), ca)
    elif name == "triangular":
        cell, basis = a * np.array([[1.0, 0.0], [0.5, 0.5 * np.sqrt(3)]]), np.zeros((1, 2))
    else:  # square
        cell, basis = np.eye(2) * a, np.zeros((1, 2))
    return Lattice(name, cell, basis, float(a))


def _translations(cell: np.ndarray, rmax: float) -> np.ndarray:
    """All lattice translations n·cell that can reach within ``rmax`` of the cell (rows)."""
    inv = np.linalg.inv(cell)  # columns are reciprocal vectors b_j with a_i·b_j = δ_ij
    spacing = 1.0 / np.linalg.norm(inv, axis=0)  # distance between lattice planes
    diam = np.linalg.norm(cell, axis=1).sum()
    nmax = np.ceil((rmax + diam) / spacing).astype(int)
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in nmax], indexing="ij")
    ns = np.stack([g.ravel() for g in grids], axis=1)
    return ns @ cell


@dataclass(frozen=True)
class Bonds:
    """All bonds of one primitive cell to a radius: bond k goes from basis atom ``center[k]`` to a
    copy of basis atom ``neighbour[k]``; ``d[k]`` is the reference bond vector (nbond, d)."""

    d: np.ndarray
    center: np.ndarray
    neighbour: np.ndarray
    radius: float


def bonds(lattice: Lattice, radius: float) -> Bonds:
    """All bonds with 0 < |d| < radius from each basis atom of the primitive cell."""
    T = _translations(lattice.cell, radius)
    ds, cs, ns = [], [], []
    for a in range(lattice.nbasis):  # loop over the (1-2) basis atoms only, never over bonds
        for b in range(lattice.nbasis):
            d = T + lattice.basis[b] - lattice.basis[a]
            r = np.linalg.norm(d, axis=1)
            keep = (r > 1e-10 * lattice.a) & (r < radius)
            ds.append(d[keep])
            cs.append(np.full(keep.sum(), a))
            ns.append(np.full(keep.sum(), b))
    d = np.concatenate(ds)
    # deterministic order: by centre, then length, then components
    order = np.lexsort(tuple(d.T[::-1]) + (np.round(np.linalg.norm(d, axis=1), 10), np.concatenate(cs)))
    return Bonds(d[order], np.concatenate(cs)[order], np.concatenate(ns)[order], float(radius))


def shells(lattice: Lattice, nshells: int, atom: int = 0, rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Radii and multiplicities of the first ``nshells`` neighbour shells around basis ``atom``."""
    radius = lattice.a * (1.0 + nshells)
    while True:
        b = bonds(lattice, radius)
        rr = np.sort(np.linalg.norm(b.d[b.center == atom], axis=1))
        # group equal radii
        brk = np.flatnonzero(np.diff(rr) > rtol * lattice.a) + 1
        groups = np.split(rr, brk)
        if len(groups) > nshells:
            groups = groups[:nshells]
            return np.array([g[0] for g in groups]), np.array([len(g) for g in groups])
        radius *= 1.5
