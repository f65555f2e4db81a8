"""Q1 (bilinear quad / trilinear hex) elements with 2^d Gauss points, vectorised over elements.

Node order (reference cell [0,1]^d): 2D (0,0),(1,0),(1,1),(0,1); 3D the same square at z=0 then
at z=1.  Strain-displacement matrices ``B`` map element DOFs ``[u0x, u0y(, u0z), u1x, ...]`` to
Mandel strains ``[11, 22, √2·12]`` (2D) or ``[11, 22, 33, √2·23, √2·13, √2·12]`` (3D).
"""
from __future__ import annotations

import numpy as np

SQ2 = np.sqrt(2.0)
_CORNERS = {2: np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float),
            3: np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                         [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)}


def reference(dim: int):
    """Gauss points (nq, d), weights (nq,), shape functions N (nq, nn), gradients dN (nq, nn, d)."""
    g = np.array([0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0)])
    pts = np.array(np.meshgrid(*([g] * dim), indexing="ij")).reshape(dim, -1).T[:, ::-1] if dim == 2 else \
        np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T[:, ::-1]
    w = np.full(len(pts), 1.0 / len(pts))
    c = _CORNERS[dim]
    # N_a(ξ) = Π_k (c_ak ξ_k + (1 − c_ak)(1 − ξ_k))
    fac = c[None] * pts[:, None, :] + (1 - c[None]) * (1 - pts[:, None, :])      # (nq, nn, d)
    N = fac.prod(axis=2)
    dfac = 2 * c - 1                                                                # d fac/dξ_k
    dN = np.empty(fac.shape)
    for k in range(dim):
        others = np.delete(fac, k, axis=2).prod(axis=2)
        dN[:, :, k] = dfac[None, :, k] * others
    return pts, w, N, dN


def physical_gradients(xe: np.ndarray, dN: np.ndarray):
    """Element node coordinates (ne, nn, d) → gradients (ne, nq, nn, d) and det J (ne, nq)."""
    J = np.einsum("ead,qak->eqdk", xe, dN)            # dx_d/dξ_k
    det = np.linalg.det(J)
    Jinv = np.linalg.inv(J)
    G = np.einsum("qak,eqkd->eqad", dN, Jinv)
    return G, det


def mandel_B(G: np.ndarray) -> np.ndarray:
    """Gradients (..., nn, d) → B (..., m, nn·d)."""
    nn, d = G.shape[-2:]
    m = 3 if d == 2 else 6
    B = np.zeros(G.shape[:-2] + (m, nn * d))
    gx = lambda k: G[..., :, k]  # noqa: E731
    if d == 2:
        B[..., 0, 0::2] = gx(0)
        B[..., 1, 1::2] = gx(1)
        B[..., 2, 0::2] = gx(1) / SQ2
        B[..., 2, 1::2] = gx(0) / SQ2
    else:
        for i in range(3):
            B[..., i, i::3] = gx(i)
        for r, (i, j) in zip((3, 4, 5), ((1, 2), (0, 2), (0, 1))):
            B[..., r, i::3] = gx(j) / SQ2
            B[..., r, j::3] = gx(i) / SQ2
    return B
