"""Element kernels: pure numpy on quadrature-point arrays (c = cells, q = points, a = nodes).

Mandel conventions as in :mod:`hpcmsm.materials.base`."""
from __future__ import annotations

import numpy as np

from ..materials.base import SQ2, MANDEL_PAIRS


def strain_operator(dNdx: np.ndarray) -> np.ndarray:
    """Mandel strain–displacement matrix B (c, q, m, nen*d): ε = B u_e, u_e node-interleaved."""
    c, q, nen, d = dNdx.shape
    pairs = MANDEL_PAIRS[d]
    B = np.zeros((c, q, len(pairs), nen, d))
    for k, (i, j) in enumerate(pairs):
        if i == j:
            B[:, :, k, :, i] = dNdx[..., i]
        else:
            B[:, :, k, :, i] = dNdx[..., j] / SQ2
            B[:, :, k, :, j] = dNdx[..., i] / SQ2
    return B.reshape(c, q, len(pairs), nen * d)


def stiffness_small(B, D, wdet):
    """Σ_q Bᵀ D B w|J|  → (c, ndof, ndof); D (c, q, m, m)."""
    c, q, m, n = B.shape
    DB = np.matmul(D, B) * wdet[:, :, None, None]
    # one batched GEMM per cell over the stacked (q, m) index
    return np.matmul(B.reshape(c, q * m, n).transpose(0, 2, 1), DB.reshape(c, q * m, n))


def stiffness_isotropic(dNdx, lam: float, mu: float, wdet):
    """Isotropic linear elasticity without B matrices (the form UFL generates):
    K[a i, b j] = Σ_q w (λ ∂_i N_a ∂_j N_b + μ ∂_j N_a ∂_i N_b + μ δ_ij ∇N_a·∇N_b)."""
    c, q, nen, d = dNdx.shape
    G = dNdx.reshape(c, q, nen * d)
    Gw = G * wdet[:, :, None]
    M = np.matmul(G.transpose(0, 2, 1), Gw)                      # (c, nen*d, nen*d): Σ w g_ai g_bj
    M4 = M.reshape(c, nen, d, nen, d)
    L = np.matmul(dNdx.transpose(0, 2, 1, 3).reshape(c, nen, q * d),
                  (dNdx * wdet[:, :, None, None]).transpose(0, 2, 1, 3).reshape(c, nen, q * d).transpose(0, 2, 1))
    K = lam * M4 + mu * M4.transpose(0, 1, 4, 3, 2)
    muL = mu * L
    for i in range(d):                  # basic slicing (advanced indexing here was a hot spot)
        K[:, :, i, :, i] += muL
    return K.reshape(c, nen * d, nen * d)


def internal_force_small(B, sigma, wdet):
    """Σ_q Bᵀ σ w|J|  → (c, ndof)."""
    c, q, m, n = B.shape
    sw = (sigma * wdet[:, :, None]).reshape(c, 1, q * m)
    return np.matmul(sw, B.reshape(c, q * m, n))[:, 0]


def diffusion_matrix(dNdx, kappa, wdet):
    """Σ_q ∇N κ ∇Nᵀ w|J|; κ scalar, (c, q) or (c, q, d, d)."""
    kappa = np.asarray(kappa, dtype=float)
    if kappa.ndim <= 2:
        k = np.broadcast_to(kappa, wdet.shape) * wdet
        return np.einsum("cqai,cqbi,cq->cab", dNdx, dNdx, k, optimize=True)
    return np.einsum("cqai,cqij,cqbj,cq->cab", dNdx, kappa, dNdx, wdet, optimize=True)


def mass_matrix(N, coef, wdet):
    """Σ_q N Nᵀ ρ w|J| (scalar field)."""
    k = np.broadcast_to(np.asarray(coef, float), wdet.shape) * wdet
    return np.einsum("qa,qb,cq->cab", N, N, k, optimize=True)


def source_vector(N, f, wdet):
    """Σ_q N f w|J|; f (c, q) → (c, nen) or (c, q, d) → (c, nen*d)."""
    if f.ndim == 2:
        return np.einsum("qa,cq,cq->ca", N, f, wdet, optimize=True)
    c = f.shape[0]
    return np.einsum("qa,cqi,cq->cai", N, f, wdet, optimize=True).reshape(c, -1)


def deformation_gradient(dNdX, ue):
    """F = I + Σ_a u_a ⊗ ∇N_a  (c, q, d, d) from element displacements ue (c, nen, d)."""
    d = dNdX.shape[-1]
    return np.eye(d) + np.matmul(ue.transpose(0, 2, 1)[:, None], dNdX)


def internal_force_finite(dNdX, P, wdet):
    """Σ_q P ∇N w|J| → (c, nen*d) with P the first Piola–Kirchhoff stress (c, q, d, d)."""
    c = P.shape[0]
    return np.einsum("cqiJ,cqaJ,cq->cai", P, dNdX, wdet, optimize=True).reshape(c, -1)


def stiffness_finite(dNdX, A, wdet):
    """Σ_q ∇N_a A ∇N_b w|J| → (c, nen*d, nen*d), A = ∂P/∂F (c, q, d, d, d, d)."""
    c, q, nen, d = dNdX.shape
    # G[c,q,(iJ),(a i')] = dN_a/dX_J δ_ii' : K = Gᵀ A G summed over q
    Aw = (A * wdet[:, :, None, None, None, None]).reshape(c, q, d * d, d * d)
    G = np.zeros((c, q, d, d, nen, d))
    for i in range(d):
        G[:, :, i, :, :, i] = np.swapaxes(dNdX, -1, -2)
    G = G.reshape(c, q, d * d, nen * d)
    AG = np.matmul(Aw, G)
    return np.matmul(G.reshape(c, q * d * d, nen * d).transpose(0, 2, 1), AG.reshape(c, q * d * d, nen * d))
