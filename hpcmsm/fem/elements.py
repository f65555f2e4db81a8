"""Lagrange reference elements: P1/P2 on triangles and tetrahedra, Q1/Q2 on quadrilaterals and
hexahedra, plus their facet elements (for boundary integrals).

Node orderings
--------------
* simplices: vertices first, then (P2) edge midpoints in VTK order
  (triangle: 01, 12, 20; tetrahedron: 01, 12, 02, 03, 13, 23);
* tensor cells: lexicographic over the nodes {-1, 1}^d (Q1) or {-1, 0, 1}^d (Q2), x fastest.
  ``Element.vtk_corners`` gives the corner nodes in VTK/XDMF order for output.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

from ..errors import InputError
from .quadrature import gauss_simplex, gauss_tensor

CELL_DIM = {"interval": 1, "triangle": 2, "quadrilateral": 2, "tetrahedron": 3, "hexahedron": 3}
SIMPLEX = {"interval": False, "triangle": True, "tetrahedron": True, "quadrilateral": False, "hexahedron": False}
FACET = {"triangle": "interval", "quadrilateral": "interval", "tetrahedron": "triangle",
         "hexahedron": "quadrilateral"}
SIMPLEX_EDGES = {2: [(0, 1), (1, 2), (2, 0)], 3: [(0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)]}


@dataclass(frozen=True)
class Element:
    cell: str
    degree: int

    @property
    def dim(self) -> int:
        return CELL_DIM[self.cell]

    @property
    def name(self) -> str:
        return ("P" if SIMPLEX[self.cell] else "Q") + str(self.degree)

    @property
    def nodes(self) -> np.ndarray:
        """Reference coordinates of the element nodes (nen, dim)."""
        return _nodes(self.cell, self.degree)

    @property
    def nen(self) -> int:
        return len(self.nodes)

    @property
    def vtk_corners(self) -> list[int]:
        """Indices of the corner nodes, in VTK order (for linear visualisation)."""
        d, p = self.dim, self.degree
        if SIMPLEX[self.cell]:
            return list(range(d + 1))
        n = p + 1
        if d == 1:
            return [0, p]
        lex = lambda i, j, k=0: i + n * j + n * n * k  # noqa: E731
        q = [lex(0, 0), lex(p, 0), lex(p, p), lex(0, p)]
        if d == 2:
            return q
        return q + [lex(0, 0, p), lex(p, 0, p), lex(p, p, p), lex(0, p, p)]

    @property
    def corner_count(self) -> int:
        return len(self.vtk_corners)

    def tabulate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shape functions N (nx, nen) and gradients dN (nx, nen, dim) at reference points x (nx, dim)."""
        return _tabulate(self.cell, self.degree, np.asarray(x, dtype=float))

    def quadrature(self, degree: int) -> tuple[np.ndarray, np.ndarray]:
        if SIMPLEX[self.cell]:
            return gauss_simplex(self.dim, degree)
        return gauss_tensor(self.dim, degree)

    @property
    def facet(self) -> "Element":
        return Element(FACET[self.cell], self.degree)

    def facet_local_nodes(self) -> list[list[int]]:
        """Local node indices of each facet, ordered like the facet element's nodes."""
        return _facet_nodes(self.cell, self.degree)


def _nodes(cell: str, p: int) -> np.ndarray:
    d = CELL_DIM[cell]
    if p not in (1, 2):
        raise InputError(f"element degree must be 1 or 2 (got {p})")
    if SIMPLEX[cell]:
        v = np.vstack([np.zeros(d), np.eye(d)])
        if p == 1:
            return v
        return np.vstack([v] + [(v[a] + v[b]) / 2 for a, b in SIMPLEX_EDGES[d]])
    pts1 = np.linspace(-1, 1, p + 1)
    return np.array([c[::-1] for c in product(pts1, repeat=d)])  # x fastest


def _lagrange_1d(p: int, x: np.ndarray):
    """1D Lagrange basis on the equispaced nodes of [-1, 1]: values and derivatives (nx, p+1)."""
    xs = np.linspace(-1, 1, p + 1)
    V = np.ones((len(x), p + 1))
    D = np.zeros((len(x), p + 1))
    for a in range(p + 1):
        others = [b for b in range(p + 1) if b != a]
        den = np.prod([xs[a] - xs[b] for b in others])
        V[:, a] = np.prod([x - xs[b] for b in others], axis=0) / den if others else 1.0
        for c in others:
            D[:, a] += np.prod([x - xs[b] for b in others if b != c], axis=0) / den if len(others) > 1 else 1.0 / den
    return V, D


@lru_cache(maxsize=64)
def _tab_cached(cell, p, xbytes, shape):
    x = np.frombuffer(xbytes).reshape(shape)
    return _tabulate_impl(cell, p, x)


def _tabulate(cell, p, x):
    return _tab_cached(cell, p, x.tobytes(), x.shape)


def _tabulate_impl(cell: str, p: int, x: np.ndarray):
    d = CELL_DIM[cell]
    nx = len(x)
    if SIMPLEX[cell]:
        lam = np.column_stack([1 - x.sum(axis=1), x])           # (nx, d+1)
        dlam = np.vstack([-np.ones(d), np.eye(d)])               # (d+1, d)
        if p == 1:
            return lam.copy(), np.broadcast_to(dlam, (nx, d + 1, d)).copy()
        N = [lam[:, i] * (2 * lam[:, i] - 1) for i in range(d + 1)]
        dN = [(4 * lam[:, i] - 1)[:, None] * dlam[i] for i in range(d + 1)]
        for a, b in SIMPLEX_EDGES[d]:
            N.append(4 * lam[:, a] * lam[:, b])
            dN.append(4 * (lam[:, a][:, None] * dlam[b] + lam[:, b][:, None] * dlam[a]))
        return np.stack(N, axis=1), np.stack(dN, axis=1)
    V, D = zip(*[_lagrange_1d(p, x[:, k]) for k in range(d)])
    idx = list(product(range(p + 1), repeat=d))
    idx = [i[::-1] for i in idx]   # x fastest
    N = np.stack([np.prod([V[k][:, i[k]] for k in range(d)], axis=0) for i in idx], axis=1)
    dN = np.zeros((nx, len(idx), d))
    for a, i in enumerate(idx):
        for k in range(d):
            dN[:, a, k] = np.prod([(D if m == k else V)[m][:, i[m]] for m in range(d)], axis=0)
    return N, dN


@lru_cache(maxsize=None)
def _facet_nodes(cell: str, p: int) -> list[list[int]]:
    el = Element(cell, p)
    X = el.nodes
    fel = Element(FACET[cell], p)
    out = []
    if SIMPLEX[cell]:
        d = el.dim
        verts = np.vstack([np.zeros(d), np.eye(d)])
        for omit in range(d + 1):
            fv = [v for v in range(d + 1) if v != omit]
            # map facet reference nodes through the affine map of the facet vertices
            A = np.column_stack([verts[fv[k + 1]] - verts[fv[0]] for k in range(d - 1)])
            ref = (fel.nodes + 1) / 2 if fel.cell == "interval" else fel.nodes
            pts = verts[fv[0]] + ref @ A.T
            out.append([int(np.argmin(np.linalg.norm(X - q, axis=1))) for q in pts])
        return out
    d = el.dim
    for axis in range(d):
        for side in (-1.0, 1.0):
            free = [k for k in range(d) if k != axis]
            pts = np.zeros((fel.nen, d))
            pts[:, free] = fel.nodes
            pts[:, axis] = side
            out.append([int(np.argmin(np.linalg.norm(X - q, axis=1))) for q in pts])
    return out
