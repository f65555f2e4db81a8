"""Phonon stability of a homogeneously deformed Bravais lattice with a pair potential.

For the lattice deformed by F (bonds r_k = F d_k, all directions), unit masses, the dynamical matrix

    D(q) = Σ_k H_k (1 − cos q·r_k),    H_k = φ″ r̂_k r̂_k + φ′/r_k (I − r̂_k r̂_k),

has eigenvalues ω²(q).  The lattice is phonon-stable when ω² ≥ 0 on the whole Brillouin zone;
a negative ω² at some q is a soft mode (the homogeneous state can lower its energy by a periodic
modulation of wave vector q).  As q → 0, D(q) → ½ Σ_k H_k (q·r_k)² = V₀ A_iJkL (Fᵀq)_J (Fᵀq)_L, the
Cauchy–Born acoustic tensor: phonon stability contains strong ellipticity and adds the
finite-wavelength modes Cauchy–Born cannot see.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import InputError
from .lattices import Lattice, bonds


def _bond_hessians(lattice: Lattice, potential, F: np.ndarray):
    if lattice.nbasis != 1 or potential.three_body or getattr(potential, "eam", False):
        raise InputError("phonons: Bravais lattices (one atom per cell) with a pair potential only")
    smin = np.linalg.svd(F, compute_uv=False)[-1]
    d = bonds(lattice, 1.01 * potential.rc / smin).d
    r = d @ F.T
    rn = np.linalg.norm(r, axis=1)
    f, f1, f2 = potential.pair(rn)
    keep = rn < potential.rc
    r, rn, f1, f2 = r[keep], rn[keep], f1[keep], f2[keep]
    u = r / rn[:, None]
    uu = np.einsum("ki,kj->kij", u, u)
    H = f2[:, None, None] * uu + (f1 / rn)[:, None, None] * (np.eye(lattice.dim) - uu)
    return r, H


def dynamical_matrix(lattice: Lattice, potential, q: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
    """D(q) (nq, d, d) for wave vectors ``q`` (nq, d) in the deformed configuration (unit masses;
    eigenvalues ω² in energy/length²)."""
    from .cauchy_born import check_deformation

    d = lattice.dim
    F = np.eye(d) if F is None else check_deformation(F, d)[0]
    r, H = _bond_hessians(lattice, potential, F)
    q = np.atleast_2d(np.asarray(q, float))
    return np.einsum("qk,kij->qij", 1.0 - np.cos(q @ r.T), H)


def phonon_stability(lattice: Lattice, potential, F: np.ndarray | None = None, n: int = 8,
                     rtol: float = 1e-8) -> dict:
    """Smallest ω² over an n^d grid of the deformed Brillouin zone (Γ excluded) and the wave vector
    where it occurs; ``stable`` when ω²_min ≥ −rtol·max ω²."""
    from .cauchy_born import check_deformation

    d = lattice.dim
    F = np.eye(d) if F is None else check_deformation(F, d)[0]
    A = lattice.cell @ F.T                       # deformed primitive vectors (rows)
    B = 2 * np.pi * np.linalg.inv(A).T           # reciprocal vectors (rows): A Bᵀ = 2π I
    m = np.array(list(itertools.product(range(n), repeat=d)), float)[1:] / n
    m = np.where(m > 0.5, m - 1.0, m)            # centre the grid on Γ (same set of q modulo B)
    q = m @ B
    w2 = np.linalg.eigvalsh(dynamical_matrix(lattice, potential, q, F))
    k = int(np.argmin(w2.min(axis=1)))
    wmin, wmax = float(w2.min()), float(w2.max())
    return {"omega2_min": wmin, "omega2_max": wmax, "q_min": q[k].tolist(),
            "q_min_reduced": m[k].tolist(), "grid": n, "stable": bool(wmin >= -rtol * abs(wmax))}
