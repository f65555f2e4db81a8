"""Compact P1/P2 finite elements on triangles with newest-vertex bisection (pure numpy).

Used by the DWR estimator (:mod:`hpcmsm.vv.dwr`) and by the code-verification suite of the
V&V module itself.  Every cell is stored with its *newest vertex first*: the refinement edge of
cell ``(v0, v1, v2)`` is ``(v1, v2)``.  Bisection creates the midpoint ``m`` of the refinement
edge and the children ``(m, v0, v1)`` and ``(m, v2, v0)``, which keeps the orientation and makes
the two old edges the children's refinement edges.  :func:`refine` marks the refinement edge of
every marked cell and closes the marking (a cell with any marked edge gets its refinement edge
marked) before bisecting, so the result is conforming without hanging nodes (the algorithm of
L. Chen's iFEM, vectorised over cells).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TriMesh:
    """Triangles ``cells`` (M, 3) into ``points`` (N, 2), newest vertex first, counter-clockwise."""

    points: np.ndarray
    cells: np.ndarray

    @property
    def ncells(self) -> int:
        return len(self.cells)

    @property
    def npoints(self) -> int:
        return len(self.points)

    def areas(self) -> np.ndarray:
        p = self.points[self.cells]
        d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        return 0.5 * (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])

    def h(self) -> np.ndarray:
        """Longest edge of each cell."""
        p = self.points[self.cells]
        return np.max([np.linalg.norm(p[:, (k + 1) % 3] - p[:, (k + 2) % 3], axis=1) for k in range(3)], axis=0)

    def edges(self) -> "EdgeInfo":
        return edge_info(self)


@dataclass
class EdgeInfo:
    edges: np.ndarray        # (E, 2) sorted vertex pairs
    cell_edges: np.ndarray   # (M, 3): edge opposite local vertex k, i.e. ((k+1)%3, (k+2)%3)
    boundary: np.ndarray     # (E,) bool: edge belongs to one cell only
    edge_cells: np.ndarray   # (E, 2) the (one or two) cells sharing the edge (−1 if none)


def _local_edge_vertices(cells: np.ndarray) -> np.ndarray:
    """(M, 3, 2): vertices of the edge opposite each local vertex."""
    return np.stack([cells[:, [1, 2]], cells[:, [2, 0]], cells[:, [0, 1]]], axis=1)


def edge_info(mesh: TriMesh) -> EdgeInfo:
    lv = np.sort(_local_edge_vertices(mesh.cells), axis=2)
    n = np.int64(mesh.npoints)
    keys = lv[..., 0].astype(np.int64) * n + lv[..., 1]
    uk, inv, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    edges = np.stack([uk // n, uk % n], axis=1)
    cell_edges = inv.reshape(-1, 3)
    ec = np.full((len(uk), 2), -1, dtype=np.int64)
    cid = np.repeat(np.arange(mesh.ncells), 3)
    flat = cell_edges.ravel()
    order = np.argsort(flat, kind="stable")
    f_sorted, c_sorted = flat[order], cid[order]
    first = np.r_[True, f_sorted[1:] != f_sorted[:-1]]
    ec[f_sorted[first], 0] = c_sorted[first]
    ec[f_sorted[~first], 1] = c_sorted[~first]
    return EdgeInfo(edges, cell_edges, counts == 1, ec)


def boundary_points(mesh: TriMesh, info: EdgeInfo | None = None) -> np.ndarray:
    info = info or edge_info(mesh)
    return np.unique(info.edges[info.boundary])


def refine(mesh: TriMesh, marked: np.ndarray) -> TriMesh:
    """Newest-vertex bisection of the cells ``marked`` (bool mask or indices), plus closure."""
    cells = mesh.cells.copy()
    points = mesh.points
    mark = np.zeros(mesh.ncells, bool)
    mark[marked] = True
    info = edge_info(mesh)
    emark = np.zeros(len(info.edges), bool)
    emark[info.cell_edges[mark, 0]] = True
    while True:  # closure: any marked edge forces the cell's refinement edge (local edge 0)
        need = emark[info.cell_edges].any(axis=1) & ~emark[info.cell_edges[:, 0]]
        if not need.any():
            break
        emark[info.cell_edges[need, 0]] = True
    # new midpoints for the marked edges
    me = np.flatnonzero(emark)
    mid = 0.5 * (points[info.edges[me, 0]] + points[info.edges[me, 1]])
    npts = len(points)
    points = np.vstack([points, mid])
    # encode with the new point count: cells gain midpoint indices >= mesh.npoints in the loop
    n = np.int64(len(points))
    mkeys = info.edges[me, 0].astype(np.int64) * n + info.edges[me, 1]  # sorted (np.unique order)
    while True:
        a = np.minimum(cells[:, 1], cells[:, 2]).astype(np.int64)
        b = np.maximum(cells[:, 1], cells[:, 2]).astype(np.int64)
        k = a * n + b
        pos = np.searchsorted(mkeys, k)
        pos[pos >= len(mkeys)] = 0
        hit = (mkeys[pos] == k) if len(mkeys) else np.zeros(len(cells), bool)
        if not hit.any():
            break
        m = npts + pos[hit]
        c = cells[hit]
        child1 = np.stack([m, c[:, 0], c[:, 1]], axis=1)
        child2 = np.stack([m, c[:, 2], c[:, 0]], axis=1)
        cells = np.vstack([cells[~hit], child1, child2])
    # keep a deterministic cell order (independent of the bisection history)
    order = np.lexsort((cells[:, 2], cells[:, 1], cells[:, 0]))
    return TriMesh(points, cells[order])


def uniform_refine(mesh: TriMesh, times: int = 1) -> TriMesh:
    """Bisect every cell twice per ``times`` (each cell → 4 similar children)."""
    for _ in range(2 * times):
        mesh = refine(mesh, np.ones(mesh.ncells, bool))
    return mesh


def square_mesh(n: int, x0: float = 0.0, x1: float = 1.0, y0: float = 0.0, y1: float = 1.0,
                hole: tuple[float, float, float, float] | None = None) -> TriMesh:
    """``n × n`` squares, each split into two triangles along the diagonal (refinement edge =
    the diagonal, so bisection produces shape-regular meshes). ``hole`` = (x0, x1, y0, y1): cells
    whose centre lies inside are removed (unused points too)."""
    xs, ys = np.linspace(x0, x1, n + 1), np.linspace(y0, y1, n + 1)
    P = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    i, j = i.ravel(), j.ravel()
    v00, v10, v01, v11 = i * (n + 1) + j, (i + 1) * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j + 1
    # newest vertex opposite the diagonal v00–v11; counter-clockwise
    c1 = np.stack([v10, v11, v00], axis=1)
    c2 = np.stack([v01, v00, v11], axis=1)
    cells = np.vstack([c1, c2])
    if hole is not None:
        cen = P[cells].mean(axis=1)
        inside = (cen[:, 0] > hole[0]) & (cen[:, 0] < hole[1]) & (cen[:, 1] > hole[2]) & (cen[:, 1] < hole[3])
        cells = cells[~inside]
    used = np.unique(cells)
    remap = np.full(len(P), -1)
    remap[used] = np.arange(len(used))
    return TriMesh(P[used], remap[cells])


# ---------------------------------------------------------------------------------------------
# P1 / P2 elements
# ---------------------------------------------------------------------------------------------

# Strang–Fix / Dunavant 7-point rule, exact for degree 5 (barycentric coords, weights sum to 1)
_A1, _B1, _W1 = 0.059715871789770, 0.470142064105115, 0.132394152788506
_A2, _B2, _W2 = 0.797426985353087, 0.101286507323456, 0.125939180544827
QUAD7_L = np.array([[1 / 3, 1 / 3, 1 / 3],
                    [_A1, _B1, _B1], [_B1, _A1, _B1], [_B1, _B1, _A1],
                    [_A2, _B2, _B2], [_B2, _A2, _B2], [_B2, _B2, _A2]])
QUAD7_W = np.array([0.225, _W1, _W1, _W1, _W2, _W2, _W2])


def bary_gradients(mesh: TriMesh) -> tuple[np.ndarray, np.ndarray]:
    """(M, 3, 2) gradients of the barycentric coordinates and (M,) areas."""
    p = mesh.points[mesh.cells]
    J = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)  # columns: edge vectors
    Jinv = np.linalg.inv(J)  # rows: ∇λ1, ∇λ2
    g12 = Jinv
    g0 = -g12.sum(axis=1, keepdims=True)
    return np.concatenate([g0, g12], axis=1), 0.5 * np.abs(np.linalg.det(J))


def shape(order: int, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basis values (nq, nloc) and derivatives w.r.t. barycentrics (nq, nloc, 3)."""
    nq = len(lam)
    if order == 1:
        return lam.copy(), np.broadcast_to(np.eye(3), (nq, 3, 3)).copy()
    N = np.zeros((nq, 6))
    D = np.zeros((nq, 6, 3))
    for i in range(3):
        N[:, i] = lam[:, i] * (2 * lam[:, i] - 1)
        D[:, i, i] = 4 * lam[:, i] - 1
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        N[:, 3 + k] = 4 * lam[:, a] * lam[:, b]
        D[:, 3 + k, a] = 4 * lam[:, b]
        D[:, 3 + k, b] = 4 * lam[:, a]
    return N, D


@dataclass
class Space:
    """A P1 or P2 Lagrange space on a mesh: ``cell_dofs`` (M, 3|6), ``ndofs``, ``dof_points``."""

    mesh: TriMesh
    order: int
    cell_dofs: np.ndarray
    ndofs: int
    dof_points: np.ndarray
    boundary_dofs: np.ndarray
    info: EdgeInfo


def space(mesh: TriMesh, order: int, info: EdgeInfo | None = None) -> Space:
    info = info or edge_info(mesh)
    bpts = np.unique(info.edges[info.boundary])
    if order == 1:
        return Space(mesh, 1, mesh.cells, mesh.npoints, mesh.points, bpts, info)
    if order != 2:
        raise ValueError("order must be 1 or 2")
    N = mesh.npoints
    dofs = np.hstack([mesh.cells, N + info.cell_edges])
    mids = 0.5 * (mesh.points[info.edges[:, 0]] + mesh.points[info.edges[:, 1]])
    bd = np.concatenate([bpts, N + np.flatnonzero(info.boundary)])
    return Space(mesh, 2, dofs, N + len(info.edges), np.vstack([mesh.points, mids]), bd, info)


def element_matrices(V: Space, conductivity=None, source=None, cells: np.ndarray | None = None):
    """Element stiffness ``∫_K k ∇φ_a·∇φ_b`` (m, nloc, nloc) and load ``∫_K f φ_a`` (m, nloc) of
    the cells ``cells`` (default all); ``k``, ``f`` callables of points (n, 2) or numbers
    (``source=None``: zero load). 7-point quadrature (exact for P2 with k constant)."""
    cl = V.mesh.cells if cells is None else V.mesh.cells[cells]
    G, area = bary_gradients(TriMesh(V.mesh.points, cl))
    Nq, D = shape(V.order, QUAD7_L)
    grads = np.einsum("qai,mid->mqad", D, G)  # (m, nq, nloc, 2)
    xq = np.einsum("qi,mid->mqd", QUAD7_L, V.mesh.points[cl])  # (m, nq, 2)
    wq = area[:, None] * QUAD7_W[None, :]
    M = len(cl)
    if conductivity is None or np.isscalar(conductivity):
        k = np.full((M, len(QUAD7_W)), 1.0 if conductivity is None else float(conductivity))
    else:
        k = conductivity(xq.reshape(-1, 2)).reshape(M, -1)
    Ke = np.einsum("mq,mqad,mqbd->mab", wq * k, grads, grads)
    if source is None:
        be = np.zeros((M, Nq.shape[1]))
    else:
        f = np.full(xq.shape[:2], float(source)) if np.isscalar(source) else source(xq.reshape(-1, 2)).reshape(M, -1)
        be = np.einsum("mq,qa->ma", wq * f, Nq)
    return Ke, be


def assemble(V: Space, conductivity=None, source=None):
    """Stiffness ``∫ k ∇φ_a·∇φ_b`` (scipy CSR) and load ``∫ f φ_a``; ``k``, ``f`` callables of
    points (n, 2) (or numbers). 7-point quadrature (exact for P2 with k constant)."""
    import scipy.sparse as sps

    Ke, be = element_matrices(V, conductivity, source)
    nloc = V.cell_dofs.shape[1]
    rows = np.repeat(V.cell_dofs, nloc, axis=1).ravel()
    cols = np.tile(V.cell_dofs, (1, nloc)).ravel()
    A = sps.csr_matrix((Ke.ravel(), (rows, cols)), shape=(V.ndofs, V.ndofs))
    b = np.zeros(V.ndofs)
    if source is not None:
        np.add.at(b, V.cell_dofs.ravel(), be.ravel())
    return A, b


def locate(mesh: TriMesh, x: np.ndarray, tol: float = 1e-12) -> tuple[int, np.ndarray]:
    """First cell containing point ``x`` (2,) and the barycentric coordinates there."""
    p = mesh.points[mesh.cells]
    J = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)
    l12 = np.linalg.solve(J, (np.asarray(x, float) - p[:, 0])[..., None])[..., 0]
    lam = np.column_stack([1 - l12.sum(1), l12])
    inside = np.flatnonzero((lam >= -tol).all(axis=1))
    if not len(inside):
        raise ValueError(f"point {x} is outside the mesh")
    c = inside[0]
    return int(c), lam[c]


def point_functional(V: Space, x: np.ndarray) -> np.ndarray:
    """Vector ``j`` with ``j·u = u_h(x)`` (point evaluation)."""
    c, lam = locate(V.mesh, x)
    N, _ = shape(V.order, lam[None, :])
    j = np.zeros(V.ndofs)
    j[V.cell_dofs[c]] = N[0]
    return j


def l2_h1_errors(V: Space, u: np.ndarray, exact, exact_grad) -> tuple[float, float]:
    """‖u − u_h‖_L2 and |u − u_h|_H1 by 7-point quadrature."""
    G, area = bary_gradients(V.mesh)
    Nq, D = shape(V.order, QUAD7_L)
    grads = np.einsum("qai,mid->mqad", D, G)
    xq = np.einsum("qi,mid->mqd", QUAD7_L, V.mesh.points[V.mesh.cells]).reshape(-1, 2)
    ul = u[V.cell_dofs]
    uq = np.einsum("ma,qa->mq", ul, Nq).ravel()
    gq = np.einsum("ma,mqad->mqd", ul, grads).reshape(-1, 2)
    w = (area[:, None] * QUAD7_W[None, :]).ravel()
    e0 = np.sqrt(np.sum(w * (uq - exact(xq)) ** 2))
    e1 = np.sqrt(np.sum(w * np.sum((gq - exact_grad(xq)) ** 2, axis=1)))
    return float(e0), float(e1)
