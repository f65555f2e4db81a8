"""Serial reference implementation (scipy.sparse + direct solves) of the same discretisation.

Independent of PETSc, DMDA ghosting and the FFT preconditioner: it builds the cell-centred
Laplacian with Kronecker products and runs Newton with a sparse LU.  Tests use it as the
rank-count independent oracle for the distributed solvers.  Small grids only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .energies import FreeEnergy


def laplacian(shape: Sequence[int], h: Sequence[float], periodic: bool) -> sp.csr_matrix:
    """Cell-centred Laplacian on a natural-order (z, y, x) grid of ``shape`` cells."""
    ops = []
    for n, hh in zip(shape, h):
        e = np.ones(n)
        D = sp.diags([e[:-1], -2 * e, e[:-1]], [-1, 0, 1], shape=(n, n), format="lil")
        if periodic:
            D[0, n - 1] = 1
            D[n - 1, 0] = 1
        else:  # no-flux: the mirrored ghost equals the boundary cell
            D[0, 0] = -1
            D[n - 1, n - 1] = -1
        ops.append(sp.csr_matrix(D) / hh ** 2)
    L = None
    for a, D in enumerate(ops):
        term = None
        for b, n in enumerate(shape):
            f = D if a == b else sp.identity(n, format="csr")
            term = f if term is None else sp.kron(term, f, format="csr")
        L = term if L is None else L + term
    return L.tocsr()


def step_ch(c: np.ndarray, dt: float, lap: sp.csr_matrix, energy: FreeEnergy, kappa: float, M: float,
            split: bool, tol: float = 1e-12, max_it: int = 30) -> np.ndarray:
    """One backward-Euler/convex-splitting CH step of the flattened field ``c`` (constant M)."""
    n = c.size
    expl = energy.explicit(c, split)
    x = c.copy()
    mu = energy.dpsi(c) - kappa * (lap @ c)
    I = sp.identity(n, format="csr")
    for _ in range(max_it):
        dpsi, d2 = energy.implicit(x, split)
        r1 = x - c - dt * M * (lap @ mu)
        r2 = mu - dpsi - expl + kappa * (lap @ x)
        r = np.concatenate([r1, r2])
        if np.linalg.norm(r) < tol * np.sqrt(n):
            break
        J = sp.bmat([[I, -dt * M * lap], [sp.diags(-d2) + kappa * lap, I]], format="csc")
        d = spla.spsolve(J, -r)
        x = x + d[:n]
        mu = mu + d[n:]
    return x


def step_ac(phi: np.ndarray, dt: float, lap: sp.csr_matrix, energy: FreeEnergy, gamma: float, L: float,
            split: bool, tol: float = 1e-12, max_it: int = 30) -> np.ndarray:
    """One Allen–Cahn step of the flattened field ``phi``."""
    n = phi.size
    expl = energy.explicit(phi, split)
    x = phi.copy()
    I = sp.identity(n, format="csr")
    for _ in range(max_it):
        dpsi, d2 = energy.implicit(x, split)
        r = x - phi + dt * L * (dpsi + expl - gamma * (lap @ x))
        if np.linalg.norm(r) < tol * np.sqrt(n):
            break
        J = I + dt * L * (sp.diags(d2) - gamma * lap)
        x = x + spla.spsolve(J.tocsc(), -r)
    return x


def free_energy(c: np.ndarray, h: Sequence[float], periodic: bool, energy: FreeEnergy, kappa: float) -> float:
    """Discrete F of a natural-order array ``c`` (same definition as the solver)."""
    vol = float(np.prod(h))
    e = float(np.sum(energy.psi(c)))
    for a in range(c.ndim):
        if periodic:
            d = np.roll(c, -1, axis=a) - c
        else:
            d = np.diff(c, axis=a)
        e += 0.5 * kappa * float(np.sum(d * d)) / h[a] ** 2
    return e * vol
