"""Gauss quadrature on reference cells (vectorised tables, no per-element work).

Reference cells: interval [-1, 1]; quadrilateral/hexahedron [-1, 1]^d (tensor Gauss–Legendre);
triangle/tetrahedron the unit simplex (collapsed Gauss–Jacobi / Duffy rules, exact to the
requested degree).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import roots_jacobi


def _npts(degree: int) -> int:
    return max(1, (degree + 2) // 2)


@lru_cache(maxsize=None)
def gauss_tensor(dim: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (nq, dim) and weights (nq,) on [-1, 1]^dim, exact for polynomials of ``degree`` per axis."""
    x, w = np.polynomial.legendre.leggauss(_npts(degree))
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    wg = np.meshgrid(*([w] * dim), indexing="ij")
    # x fastest, like the node ordering of the tensor elements
    pts = np.stack([g.transpose().ravel() for g in grids], axis=-1)[:, ::-1] if dim > 1 else x[:, None]
    wts = np.prod(np.stack([g.transpose().ravel() for g in wg], axis=-1), axis=-1) if dim > 1 else w
    return pts.copy(), wts.copy()


@lru_cache(maxsize=None)
def gauss_simplex(dim: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed Gauss–Jacobi rule on the unit simplex, exact for total degree ``degree``."""
    n = _npts(degree)   # Jacobi weights absorb the collapse factor
    if dim == 1:
        x, w = np.polynomial.legendre.leggauss(n)
        return ((x + 1) / 2)[:, None], w / 2
    a0, w0 = np.polynomial.legendre.leggauss(n)
    a1, w1 = roots_jacobi(n, 1.0, 0.0)   # weight (1 - t)
    a0, a1 = (a0 + 1) / 2, (a1 + 1) / 2
    w0, w1 = w0 / 2, w1 / 4
    if dim == 2:
        s, t = np.meshgrid(a0, a1, indexing="ij")
        ws, wt = np.meshgrid(w0, w1, indexing="ij")
        x = s * (1 - t)
        y = t
        return np.stack([x.ravel(), y.ravel()], -1), (ws * wt).ravel()
    a2, w2 = roots_jacobi(n, 2.0, 0.0)   # weight (1 - t)^2
    a2, w2 = (a2 + 1) / 2, w2 / 8
    r, s, t = np.meshgrid(a0, a1, a2, indexing="ij")
    wr, ws, wt = np.meshgrid(w0, w1, w2, indexing="ij")
    z = t
    y = s * (1 - t)
    x = r * (1 - s) * (1 - t)
    return np.stack([x.ravel(), y.ravel(), z.ravel()], -1), (wr * ws * wt).ravel()
