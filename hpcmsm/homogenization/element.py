"""Q1 voxel elements: one bilinear (2D) / trilinear (3D) element per voxel, 2^d Gauss points.

Pure numpy.  Local node ``a = (a_x, a_y[, a_z]) ∈ {0,1}^d`` has local index
``a_x + 2 a_y + 4 a_z``.  Degrees of freedom are node-major: ``dof = a * ndof + c``.

Two field kinds share everything:

* ``"conductivity"``: one scalar potential per node, generalized strain = gradient (d comps),
  generalized stress = flux ``K ∇T`` (the minus sign of Fourier's law is dropped: it cancels in
  the effective tensor).
* ``"elasticity"``: d displacement components per node, strain in Mandel notation
  (2D ``[11, 22, √2·12]``, 3D ``[11, 22, 33, √2·23, √2·13, √2·12]``, see
  :mod:`hpcmsm.materials.base`).
"""
from __future__ import annotations

import itertools

import numpy as np

SQ2 = np.sqrt(2.0)
GAUSS = 1.0 / np.sqrt(3.0)


def local_nodes(dim: int) -> np.ndarray:
    """(2^d, d) array of local node offsets a, ordered ``a_x + 2 a_y + 4 a_z``."""
    return np.array([[(k >> i) & 1 for i in range(dim)] for k in range(2 ** dim)], dtype=int)


def quadrature(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss points (nq, d) in reference coords [-1, 1]^d and weights (nq,)."""
    pts = local_nodes(dim) * 2 - 1
    return pts * GAUSS, np.ones(len(pts))


def shape_gradients(dim: int, h) -> np.ndarray:
    """Physical shape-function gradients at the Gauss points: (nq, nen, d) for voxel size h."""
    h = np.broadcast_to(np.asarray(h, dtype=float), (dim,))
    xi, _ = quadrature(dim)
    sgn = local_nodes(dim) * 2 - 1                       # node sign (nen, d)
    nq, nen = len(xi), len(sgn)
    G = np.empty((nq, nen, dim))
    for i in range(dim):
        # dN/dxi_i = s_i/2 * prod_{j != i} (1 + s_j xi_j)/2 ; dxi/dx = 2/h
        f = np.ones((nq, nen))
        for j in range(dim):
            if j != i:
                f = f * (1 + sgn[None, :, j] * xi[:, None, j]) / 2
        G[:, :, i] = sgn[None, :, i] / 2 * f * (2.0 / h[i])
    return G


def strain_size(kind: str, dim: int) -> int:
    return dim if kind == "conductivity" else {2: 3, 3: 6}[dim]


def ndof_per_node(kind: str, dim: int) -> int:
    return 1 if kind == "conductivity" else dim


def b_matrices(kind: str, dim: int, h) -> np.ndarray:
    """Strain–displacement matrices (nq, m, nen*ndof) of a voxel of size h."""
    G = shape_gradients(dim, h)
    nq, nen, _ = G.shape
    if kind == "conductivity":
        return np.transpose(G, (0, 2, 1)).copy()
    m = strain_size(kind, dim)
    B = np.zeros((nq, m, nen, dim))
    # Mandel pairs: normal (i,i) then shear (i,j) scaled by 1/√2 * 2 * 1/2 = 1/√2 per gradient term
    pairs = [(0, 0), (1, 1), (0, 1)] if dim == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k, (i, j) in enumerate(pairs):
        if i == j:
            B[:, k, :, i] = G[:, :, i]
        else:
            # √2 ε_ij = (u_i,j + u_j,i)/√2
            B[:, k, :, i] += G[:, :, j] / SQ2
            B[:, k, :, j] += G[:, :, i] / SQ2
    return B.reshape(nq, m, nen * dim)


def quadrature_weights(dim: int, h) -> np.ndarray:
    """Physical weights (nq,) = |voxel| / 2^d."""
    h = np.broadcast_to(np.asarray(h, dtype=float), (dim,))
    return np.full(2 ** dim, np.prod(h) / 2 ** dim)


def element_matrices(B: np.ndarray, w: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Element matrices ``Σ_q w_q B_qᵀ D_q B_q``.

    ``D`` is (n, m, m) (one tangent per element, same at every point) or (n, nq, m, m).
    Returns (n, nen*ndof, nen*ndof).
    """
    if D.ndim == 3:
        BtB = np.einsum("q,qmi,qnj->mnij", w, B, B)          # (m, m, ne, ne)
        return np.einsum("emn,mnij->eij", D, BtB)
    return np.einsum("q,qmi,eqmn,qnj->eij", w, B, D, B, optimize=True)


def stencil_terms(dim: int) -> list[tuple[int, int, int]]:
    """All (offset index o, local node a, local node b) with b = a + o, o ∈ {-1,0,1}^d.

    Offsets are ordered ``o_x + 3 o_y + 9 o_z`` with o+1 digits, so column block o of a node row
    couples the node to its neighbour at offset o.  Used to assemble node rows from element
    matrices without a Python loop over elements.
    """
    nodes = local_nodes(dim)
    offsets = list(itertools.product(*([(-1, 0, 1)] * dim)))
    offsets = [tuple(reversed(o)) for o in offsets]       # x fastest
    out = []
    for oi, o in enumerate(offsets):
        for a_idx, a in enumerate(nodes):
            b = a + np.array(o)
            if np.all((b >= 0) & (b <= 1)):
                b_idx = int(sum(int(b[i]) << i for i in range(dim)))
                out.append((oi, a_idx, b_idx))
    return out


def stencil_offsets(dim: int) -> np.ndarray:
    """(3^d, d) neighbour offsets in the order used by :func:`stencil_terms`."""
    offsets = list(itertools.product(*([(-1, 0, 1)] * dim)))
    return np.array([tuple(reversed(o)) for o in offsets], dtype=int)
