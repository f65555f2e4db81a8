"""Meshes: structured boxes and Gmsh files, elevated to degree 2 on demand, partitioned and
distributed over a communicator.

Design: the coarse description (:class:`GlobalMesh`: points, cells, tagged facets and regions) is
built or read identically on every rank, partitioned by recursive coordinate bisection of the
cell centroids (deterministic, rank-count independent), and then cut down to what a rank needs
(:class:`Mesh`: its own cells, owned + ghost nodes, its boundary facets, the sparsity of its
owned rows).  After :func:`distribute` the global arrays are dropped.  Nodes are renumbered so
each rank owns a contiguous block of PETSc indices (node owner = lowest rank among its cells).
See docs/fem.md for why this is used instead of DMPlex.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .elements import CELL_DIM, SIMPLEX, SIMPLEX_EDGES, Element

BOX_SIDES = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")


@dataclass
class GlobalMesh:
    """Serial mesh description (same on every rank). ``cells`` use the element's node ordering."""

    cell: str
    degree: int
    points: np.ndarray                      # (N, dim)
    cells: np.ndarray                       # (ncell, nen)
    cell_tags: np.ndarray                   # (ncell,) region ids
    region_names: dict = field(default_factory=dict)    # name -> tag
    facets: np.ndarray | None = None        # (nf, nfen) node ids
    facet_cells: np.ndarray | None = None   # (nf,) cell containing the facet
    facet_tags: np.ndarray | None = None    # (nf,)
    facet_names: dict = field(default_factory=dict)     # name -> tag
    node_sets: dict = field(default_factory=dict)       # name -> node ids (any entity dimension)

    @property
    def dim(self) -> int:
        return CELL_DIM[self.cell]

    @property
    def element(self) -> Element:
        return Element(self.cell, self.degree)


# ---------------------------------------------------------------------------------------------
# structured boxes
# ---------------------------------------------------------------------------------------------

def _box_args(n, lower, upper, cell: str):
    """Checked box arguments of :func:`box_global` and :func:`box_block`: (n, d, lower, upper)."""
    n = [int(k) for k in n]
    d = len(n)
    if d not in (2, 3) or min(n) < 1:
        raise InputError(f"box mesh needs 2 or 3 positive cell counts, got {n}")
    if CELL_DIM.get(cell) != d:
        raise InputError(f"cell type {cell!r} does not fit a {d}D box")
    lower = np.zeros(d) if lower is None else np.asarray(lower, float)
    upper = np.ones(d) if upper is None else np.asarray(upper, float)
    if np.any(upper <= lower):
        raise InputError(f"box: upper corner {upper.tolist()} must exceed lower {lower.tolist()}")
    return n, d, lower, upper


def box_global(n, lower=None, upper=None, cell: str = "quadrilateral", degree: int = 1) -> GlobalMesh:
    """Structured box with ``n`` cells per axis; simplex cells split each box cell (2 triangles /
    6 tetrahedra).  Facet sets ``xmin, xmax, ymin, ymax[, zmin, zmax]``; region ``domain`` (tag 1)."""
    n, d, lower, upper = _box_args(n, lower, upper, cell)
    axes = [np.linspace(lower[k], upper[k], n[k] + 1) for k in range(d)]
    grids = np.meshgrid(*axes[::-1], indexing="ij")          # z slowest
    pts = np.stack([g.ravel() for g in grids[::-1]], axis=-1)
    strides = np.cumprod([1] + [m + 1 for m in n[:-1]])
    base = np.stack(np.meshgrid(*[np.arange(m) for m in n[::-1]], indexing="ij")[::-1], -1).reshape(-1, d)
    first = base @ strides                                  # lowest corner node of each box cell
    offs = np.array([np.array(c[::-1]) @ strides for c in np.ndindex(*([2] * d))])  # lex, x fastest
    hexes = first[:, None] + offs[None, :]
    if cell in ("quadrilateral", "hexahedron"):
        cells = hexes
    elif cell == "triangle":
        cells = np.concatenate([hexes[:, [0, 1, 3]], hexes[:, [0, 3, 2]]])
    else:   # Kuhn split of the cube into 6 tetrahedra sharing the 0-7 diagonal (conforming)
        paths = [(1, 3), (1, 5), (2, 3), (2, 6), (4, 5), (4, 6)]
        cells = np.concatenate([np.column_stack([hexes[:, 0], hexes[:, a], hexes[:, b], hexes[:, 7]])
                                for a, b in paths])
        cells = _orient_simplices(pts, cells)
    g = GlobalMesh(cell, 1, pts, cells.astype(np.int64), np.ones(len(cells), dtype=np.int32),
                   {"domain": 1})
    _box_facets(g, lower, upper)
    if degree == 2:
        g = elevate(g)
    elif degree != 1:
        raise InputError(f"element degree must be 1 or 2 (got {degree})")
    return g


def _orient_simplices(pts, cells, chunk: int = 65536):
    """Swap vertices 1 and 2 (and the P2 edge nodes accordingly) of negatively oriented simplices.
    Edge matrices in chunks of cells (all at once they were the Gmsh reader's memory peak, ~4x
    the connectivity)."""
    d = pts.shape[1]
    neg = np.zeros(len(cells), dtype=bool)
    for s in range(0, len(cells), chunk):
        c = cells[s:s + chunk]
        J = np.stack([pts[c[:, k + 1]] - pts[c[:, 0]] for k in range(d)], axis=-1)
        neg[s:s + chunk] = np.linalg.det(J) < 0
    sw = [0, 2, 1] + list(range(3, d + 1))
    if cells.shape[1] > d + 1:           # P2: edge (a, b) of the swapped cell = old edge (sw[a], sw[b])
        E = [frozenset(e) for e in SIMPLEX_EDGES[d]]
        sw = sw + [d + 1 + E.index(frozenset((sw[a], sw[b]))) for a, b in SIMPLEX_EDGES[d]]
    cells = cells.copy()
    cells[neg] = cells[neg][:, sw]
    return cells


def _box_facets(g: GlobalMesh, lower, upper) -> None:
    el = g.element
    fl = el.facet_local_nodes()
    tol = 1e-10 * np.max(upper - lower)
    F, FC, FT = [], [], []
    for loc in fl:
        X = g.points[g.cells[:, loc]]                # (ncell, nfen, dim)
        for k in range(g.dim):
            for s, bound in ((0, lower[k]), (1, upper[k])):
                on = np.all(np.abs(X[:, :, k] - bound) < tol, axis=1)
                if on.any():
                    F.append(g.cells[on][:, loc])
                    FC.append(np.flatnonzero(on))
                    FT.append(np.full(on.sum(), 2 * k + s + 1))
    g.facets, g.facet_cells, g.facet_tags = np.concatenate(F), np.concatenate(FC), np.concatenate(FT)
    g.facet_names = {BOX_SIDES[i]: i + 1 for i in range(2 * g.dim)}
    g.node_sets = {}


def plate_with_hole_global(size: float = 1.0, radius: float = 0.3, n_arc: int = 8, n_radial: int = 4,
                           cell: str = "quadrilateral", grading: float = 1.5, degree: int = 1) -> GlobalMesh:
    """Quarter of a square plate [0, size]² with a hole of ``radius`` at the origin (O-grid).

    Facet sets ``hole``, ``left`` (x = 0), ``bottom`` (y = 0), ``right`` (x = size), ``top``
    (y = size); region ``plate``.  ``n_arc`` must be even (the corner ray is a grid line)."""
    if not 0 < radius < size or n_arc < 2 or n_arc % 2 or n_radial < 1:
        raise InputError("plate with hole: need 0 < radius < size, an even n_arc >= 2 and n_radial >= 1")
    th = np.linspace(0, np.pi / 2, n_arc + 1)
    s = np.linspace(0, 1, n_radial + 1) ** grading
    inner = radius * np.column_stack([np.cos(th), np.sin(th)])
    outer = np.where((th <= np.pi / 4)[:, None],
                     np.column_stack([np.full_like(th, size), size * np.tan(np.minimum(th, np.pi / 4))]),
                     np.column_stack([size / np.tan(np.maximum(th, np.pi / 4)), np.full_like(th, size)]))
    outer[-1] = [0.0, size]
    pts = (inner[None, :, :] * (1 - s)[:, None, None] + outer[None, :, :] * s[:, None, None]).reshape(-1, 2)
    nid = lambda j, i: j * (n_arc + 1) + i  # noqa: E731  (j radial, i along the arc)
    J, I = np.meshgrid(np.arange(n_radial), np.arange(n_arc), indexing="ij")
    J, I = J.ravel(), I.ravel()
    quads = np.column_stack([nid(J, I), nid(J, I + 1), nid(J + 1, I), nid(J + 1, I + 1)])  # lexicographic
    # orientation: (arc, radial) must be right-handed: swap to (radial, arc) if not
    v1 = pts[quads[:, 1]] - pts[quads[:, 0]]
    v2 = pts[quads[:, 2]] - pts[quads[:, 0]]
    if np.cross(v1, v2)[0] < 0:
        quads = quads[:, [0, 2, 1, 3]]
    if cell == "quadrilateral":
        cells = quads
    elif cell == "triangle":
        cells = _orient_simplices(pts, np.concatenate([quads[:, [0, 1, 3]], quads[:, [0, 3, 2]]]))
    else:
        raise InputError(f"plate with hole: cell must be quadrilateral or triangle, got {cell!r}")
    g = GlobalMesh(cell, 1, pts, cells.astype(np.int64), np.ones(len(cells), dtype=np.int32), {"plate": 1})
    el = g.element
    F, FC, FT = [], [], []
    tol = 1e-9 * size
    tests = {1: lambda X: np.all(np.abs(np.linalg.norm(X, axis=-1) - radius) < tol, axis=1),
             2: lambda X: np.all(np.abs(X[..., 0]) < tol, axis=1),
             3: lambda X: np.all(np.abs(X[..., 1]) < tol, axis=1),
             4: lambda X: np.all(np.abs(X[..., 0] - size) < tol, axis=1),
             5: lambda X: np.all(np.abs(X[..., 1] - size) < tol, axis=1)}
    for loc in el.facet_local_nodes():
        X = g.points[g.cells[:, loc]]
        for tag, test in tests.items():
            on = test(X)
            if on.any():
                F.append(g.cells[on][:, loc])
                FC.append(np.flatnonzero(on))
                FT.append(np.full(on.sum(), tag))
    g.facets, g.facet_cells, g.facet_tags = np.concatenate(F), np.concatenate(FC), np.concatenate(FT)
    g.facet_names = {"hole": 1, "left": 2, "bottom": 3, "right": 4, "top": 5}
    return elevate(g) if degree == 2 else g


def elevate(g: GlobalMesh) -> GlobalMesh:
    """Degree 1 → 2: add edge (and for Q2 face and cell) nodes with straight sides."""
    if g.degree != 1:
        return g
    e1, e2 = Element(g.cell, 1), Element(g.cell, 2)
    X1, X2 = e1.nodes, e2.nodes
    N = len(g.points)
    new_cells = np.empty((len(g.cells), e2.nen), dtype=np.int64)
    pts = [g.points]
    # for each degree-2 node: the corners of the smallest sub-entity containing it
    groups: dict[int, list] = {}
    for a, x in enumerate(X2):
        if SIMPLEX[g.cell]:
            corners = [k for k in range(len(X1)) if np.allclose(x, X1[k])]
            if not corners:
                bary = np.concatenate([[1 - x.sum()], x])
                corners = [k for k in range(len(X1)) if bary[k] > 1e-12]
        else:
            corners = [k for k in range(len(X1)) if np.all((x == 0) | np.isclose(X1[k], x))]
        groups.setdefault(len(corners), []).append((a, corners))
    nxt = N
    for size, items in sorted(groups.items()):
        if size == 1:
            for a, c in items:
                new_cells[:, a] = g.cells[:, c[0]]
            continue
        keys = np.stack([np.sort(g.cells[:, c], axis=1) for a, c in items], axis=1)  # (ncell, nitem, size)
        flat = keys.reshape(-1, size)
        uniq, inv = np.unique(flat, axis=0, return_inverse=True)
        new_cells[:, [a for a, _ in items]] = (nxt + inv).reshape(len(g.cells), len(items))
        pts.append(g.points[uniq].mean(axis=1))
        nxt += len(uniq)
    out = GlobalMesh(g.cell, 2, np.concatenate(pts), new_cells, g.cell_tags, dict(g.region_names),
                     node_sets=dict(g.node_sets), facet_names=dict(g.facet_names))
    if g.facets is not None and len(g.facets):
        # facet nodes of degree 2 from the owning cell (match the corner set)
        fl1, fl2 = e1.facet_local_nodes(), e2.facet_local_nodes()
        cf = g.cells[g.facet_cells]                              # (nf, nen1)
        fac = np.empty((len(g.facets), len(fl2[0])), dtype=np.int64)
        fset = np.sort(g.facets[:, :len(fl1[0])], axis=1)
        done = np.zeros(len(g.facets), bool)
        for j, loc in enumerate(fl1):
            hit = ~done & np.all(np.sort(cf[:, loc], axis=1) == fset, axis=1)
            fac[hit] = new_cells[g.facet_cells[hit]][:, fl2[j]]
            done |= hit
        assert done.all()
        out.facets, out.facet_cells, out.facet_tags = fac, g.facet_cells, g.facet_tags
    return out


# ---------------------------------------------------------------------------------------------
# Gmsh
# ---------------------------------------------------------------------------------------------

_GMSH_TYPES = {1: ("interval", 2), 2: ("triangle", 3), 3: ("quadrilateral", 4), 4: ("tetrahedron", 4),
               5: ("hexahedron", 8), 15: ("point", 1),
               8: ("interval", 3), 9: ("triangle", 6), 10: ("quadrilateral", 9), 11: ("tetrahedron", 10),
               12: ("hexahedron", 27)}
_GMSH_DEGREE = {8: 2, 9: 2, 10: 2, 11: 2, 12: 2}
_GMSH_CODE = {(c, _GMSH_DEGREE.get(et, 1)): et for et, (c, _) in _GMSH_TYPES.items()}
# Gmsh reference vertices and its (high-order) node entities: edges, faces, interior, in Gmsh's order
# (MTriangle/MQuadrangle/MTetrahedron/MHexahedron edge and face tables)
_GMSH_REF = {
    "interval": ([[-1], [1]], [[0, 1]]),
    "triangle": ([[0, 0], [1, 0], [0, 1]], [[0, 1], [1, 2], [2, 0]]),
    "quadrilateral": ([[-1, -1], [1, -1], [1, 1], [-1, 1]], [[0, 1], [1, 2], [2, 3], [3, 0], [0, 1, 2, 3]]),
    "tetrahedron": ([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
                    [[0, 1], [1, 2], [2, 0], [3, 0], [3, 2], [3, 1]]),
    "hexahedron": ([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                    [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
                   [[0, 1], [0, 3], [0, 4], [1, 2], [1, 5], [2, 3], [2, 6], [3, 7], [4, 5], [4, 7], [5, 6],
                    [6, 7], [0, 3, 2, 1], [0, 1, 5, 4], [0, 4, 7, 3], [1, 2, 6, 5], [2, 3, 7, 6], [4, 5, 6, 7],
                    list(range(8))]),
}


def gmsh_permutation(cell: str, degree: int) -> np.ndarray:
    """``ours = gmsh[:, perm]``: our element node k sits at Gmsh node perm[k] (matched through the
    reference coordinates, Gmsh's high-order nodes being centroids of their edge/face/cell)."""
    V, ents = _GMSH_REF[cell]
    V = np.asarray(V, float)
    X = V if degree == 1 else np.vstack([V] + [V[e].mean(axis=0) for e in ents])
    ours = Element(cell, degree).nodes
    perm = np.array([int(np.argmin(np.linalg.norm(X - x, axis=1))) for x in ours])
    assert len(X) == len(ours) and np.allclose(X[perm], ours)
    return perm
_ENTITY_DIM = {"point": 0, "interval": 1, "triangle": 2, "quadrilateral": 2, "tetrahedron": 3, "hexahedron": 3}


def read_gmsh(path: str, degree: int = 1) -> GlobalMesh:
    """Read a Gmsh ``.msh`` file (ASCII, format 2.2 or 4.1) with physical groups: first-order
    cells (elevated with straight sides if ``degree = 2``) or second-order cells (6-node
    triangles, 9-node quadrangles, 10-node tetrahedra, 27-node hexahedra: read as P2/Q2 directly).

    Physical groups of the top dimension become regions; of dimension d-1 facet sets (usable for
    Dirichlet and Neumann conditions); lower dimensions node sets (Dirichlet only)."""
    if not os.path.exists(path):
        raise InputError(f"mesh file {path} does not exist")
    try:
        with open(path, "r") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"mesh file {path}: cannot read as ASCII Gmsh ({e})") from None
    try:
        sec = _split_sections(text)
        del text
        if "MeshFormat" not in sec:
            raise ValueError("no $MeshFormat section")
        head = sec["MeshFormat"][0].split()
        version, ftype = head[0], int(head[1])
        if ftype != 0:
            raise ValueError("binary .msh is not supported (save as ASCII)")
        names = {}
        for line in sec.get("PhysicalNames", [])[1:]:
            dim_s, tag_s, nm = line.split(maxsplit=2)
            names[(int(dim_s), int(tag_s))] = nm.strip().strip('"')
        if version.startswith("2"):
            ids, xyz, blocks = _gmsh2(sec)
        elif version.startswith("4"):
            ids, xyz, blocks = _gmsh4(sec)
        else:
            raise ValueError(f"unsupported .msh version {version}")
        del sec                               # free the text before the cell/facet tables are built
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"mesh file {path} does not parse as Gmsh ASCII: {e}") from None
    return _assemble_gmsh(path, ids, xyz, blocks, names, degree)


_SECTION = re.compile(r"^[ \t]*\$(\w+)[ \t]*\r?$", re.M)


def _raw_sections(text: str) -> dict:
    """Section name -> its text between ``$Name`` and ``$EndName``."""
    sec, cur, start = {}, None, 0
    for m in _SECTION.finditer(text):
        name = m.group(1)
        if name.startswith("End"):
            if cur is not None and name[3:] == cur:
                sec[cur] = text[start:m.start()]
            cur = None
        else:
            cur, start = name, m.end()
    return sec


def _lines(text: str) -> list:
    return [t for t in (line.strip() for line in text.splitlines()) if t]


def _split_sections(text: str) -> dict:
    """The sections as :func:`read_gmsh` parses them: small ones as lists of non-empty stripped
    lines; $Nodes/$Elements stay text (each parsed as one token stream: line lists of a large file
    cost ~6x the file on rank 0)."""
    return {k: v if k in ("Nodes", "Elements") else _lines(v) for k, v in _raw_sections(text).items()}


def _gmsh2(sec):
    """Nodes and element blocks of a format-2.2 file, parsed in bulk: each section (text or list
    of lines) is converted to one numpy token array in C; element lines are cut by walking runs of
    equal (type, number of tags) — a handful per file — so no Python work per element."""
    nt_ = _numbers(sec["Nodes"], float, "$Nodes")
    n = int(nt_[0]) if len(nt_) else -1
    if n < 0 or len(nt_) != 1 + 4 * n:
        raise ValueError(f"$Nodes announces {n} nodes, has {(len(nt_) - 1) / 4:g}")
    arr = nt_[1:].reshape(n, 4)
    ids, xyz = arr[:, 0].astype(np.int64), arr[:, 1:4]
    flat = _numbers(sec["Elements"], np.int64, "$Elements")
    ne = int(flat[0]) if len(flat) else -1
    if ne < 0:
        raise ValueError("$Elements without its count")
    offs, o, done, win = [], 1, 0, 4096
    while done < ne:
        if o + 3 > len(flat):
            raise ValueError(f"$Elements announces {ne} elements, has {done}")
        et0, nt0 = int(flat[o + 1]), int(flat[o + 2])
        if et0 not in _GMSH_TYPES:
            raise ValueError(f"Gmsh element type {et0} is not supported")
        w = 3 + nt0 + _GMSH_TYPES[et0][1]
        k = min(ne - done, (len(flat) - o) // w, win)
        if k == 0:
            raise ValueError(f"$Elements announces {ne} elements, has {done}")
        tab = flat[o:o + k * w].reshape(k, w)
        same = (tab[:, 1] == et0) & (tab[:, 2] == nt0)   # rows up to the first change are aligned
        m = k if same.all() else int(np.argmin(same))
        win = 2 * win if m == k else 4096
        offs.append(o + w * np.arange(m))
        o += w * m
        done += m
    if o != len(flat):
        raise ValueError(f"$Elements has more numbers than its {ne} elements")
    off = np.concatenate(offs) if offs else np.zeros(0, dtype=np.int64)
    cnt = np.diff(np.r_[off, o])
    et, nt = flat[off + 1], flat[off + 2]
    phys = np.where(nt > 0, flat[np.minimum(off + 3, len(flat) - 1)], 0)
    nn = cnt - 3 - nt
    if np.any(nn < 1):
        raise ValueError("element line without nodes")
    blocks = []   # (etype, phys_tag, conn)
    keys = np.stack([et, phys, nn], axis=1)
    o, gid = _row_groups(keys)
    for g_ in range(gid[-1] + 1 if len(gid) else 0):
        rows = np.sort(o[gid == g_])
        e_, p_, k_ = keys[rows[0]]
        idx = (off[rows] + 3 + nt[rows])[:, None] + np.arange(k_)
        blocks.append((int(e_), int(p_), flat[idx]))
    return ids, xyz, blocks


def _numbers(lines, dtype, what: str) -> np.ndarray:
    """All whitespace-separated numbers of ``lines`` as one flat array, converted in C
    (``np.fromstring``: ~5x faster than ``split`` + ``np.array`` for integers); a malformed token
    is a ValueError (numpy only warns and stops there)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(lines if isinstance(lines, str) else " ".join(lines), dtype=dtype, sep=" ")
        except DeprecationWarning:
            raise ValueError(f"{what}: not all entries are numbers") from None


def _gmsh4(sec):
    """Nodes and element blocks of a format-4.1 file: $Nodes and $Elements (text, or lists of
    lines) are each converted to one numpy token array in C, then walked entity block by entity
    block (a handful per physical entity) with the block sizes the format announces."""
    ent = sec.get("Entities", [])
    phys_of = {}
    if ent:
        counts = [int(c) for c in ent[0].split()]
        row = 1
        for dim, cnt in enumerate(counts):
            for _ in range(cnt):
                v = ent[row].split()
                row += 1
                tag = int(v[0])
                k = 4 if dim == 0 else 7
                nph = int(v[k])
                phys_of[(dim, tag)] = [int(t) for t in v[k + 1:k + 1 + nph]]
    # $Nodes: one float token stream (tags < 2^53 are exact), walked block by block
    nt = _numbers(sec["Nodes"], float, "$Nodes")
    if len(nt) < 4:
        raise ValueError("$Nodes without its header")
    o, ids, xyz = 4, [], []
    for _ in range(int(nt[0])):
        if o + 4 > len(nt):
            raise ValueError("$Nodes shorter than its blocks announce")
        edim, _, param, cnt = (int(v) for v in nt[o:o + 4])
        o += 4
        ncoord = 3 + (edim if param else 0)                  # parametric nodes add u[, v[, w]]
        e = o + cnt * (1 + ncoord)
        if e > len(nt):
            raise ValueError("$Nodes shorter than its blocks announce")
        ids.append(nt[o:o + cnt].astype(np.int64))
        xyz.append(nt[o + cnt:e].reshape(cnt, ncoord)[:, :3])
        o = e
    if o != len(nt):
        raise ValueError("$Nodes has more numbers than its blocks announce")
    del nt
    # $Elements: one int token stream; a block is cnt rows of (tag, nodes of its type)
    et_ = _numbers(sec["Elements"], np.int64, "$Elements")
    if len(et_) < 4:
        raise ValueError("$Elements without its header")
    o, blocks = 4, []
    for _ in range(int(et_[0])):
        if o + 4 > len(et_):
            raise ValueError("$Elements shorter than its blocks announce")
        edim, etag, et, cnt = (int(v) for v in et_[o:o + 4])
        o += 4
        if et not in _GMSH_TYPES:
            raise ValueError(f"Gmsh element type {et} is not supported")
        w = 1 + _GMSH_TYPES[et][1]
        e = o + cnt * w
        if e > len(et_):
            raise ValueError("$Elements shorter than its blocks announce")
        if cnt:
            conn = et_[o:e].reshape(cnt, w)[:, 1:]
            for ph in phys_of.get((edim, etag), [0]):
                blocks.append((et, ph, conn))
        o = e
    if o != len(et_):
        raise ValueError("$Elements has more numbers than its blocks announce")
    ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    xyz = np.concatenate(xyz) if xyz else np.zeros((0, 3))
    return ids, xyz, blocks


def _assemble_gmsh(path, ids, xyz, blocks, names, degree) -> GlobalMesh:
    for et, _, _ in blocks:
        if et not in _GMSH_TYPES:
            raise InputError(f"mesh file {path}: Gmsh element type {et} is not supported (lines, "
                             "triangles, quadrangles, tetrahedra, hexahedra of order 1, their 3-, 6-, 9-, "
                             "10- and 27-node second-order versions, and points)")
    dims = [_ENTITY_DIM[_GMSH_TYPES[et][0]] for et, _, _ in blocks]
    if not dims or max(dims) < 2:
        raise InputError(f"mesh file {path}: no 2D or 3D cells")
    d = max(dims)
    cell_types = {_GMSH_TYPES[et][0] for (et, _, _), k in zip(blocks, dims) if k == d}
    if len(cell_types) != 1:
        raise InputError(f"mesh file {path}: mixed cell types {sorted(cell_types)} are not supported")
    cell = cell_types.pop()
    orders = {_GMSH_DEGREE.get(et, 1) for (et, _, _), k in zip(blocks, dims) if k == d}
    if len(orders) != 1:
        raise InputError(f"mesh file {path}: cells of mixed order are not supported")
    order = orders.pop()
    if order == 2 and degree != 2:
        raise InputError(f"mesh file {path}: second-order cells need element degree = 2")
    cperm = gmsh_permutation(cell, order)
    g2l = np.full(ids.max() + 1, -1, dtype=np.int64)
    g2l[ids] = np.arange(len(ids))
    pts = xyz[:, :d].copy()
    if d == 2 and np.abs(xyz[:, 2]).max() > 0:
        raise InputError(f"mesh file {path}: 2D cells with non-zero z coordinates")
    cells, ctag = [], []
    lower = {}
    for (et, ph, conn), k in zip(blocks, dims):
        if conn.size and (conn.max() >= len(g2l) or conn.min() < 0):
            raise InputError(f"mesh file {path}: elements refer to undefined nodes")
        conn = g2l[conn]
        if np.any(conn < 0):
            raise InputError(f"mesh file {path}: elements refer to undefined nodes")
        if k == d:
            cells.append(conn[:, cperm])
            ctag.append(np.full(len(conn), ph))
        else:
            lower.setdefault((k, ph), []).append(conn)
    cells = cells[0] if len(cells) == 1 else np.concatenate(cells)
    ctag = np.concatenate(ctag).astype(np.int32)
    # the same cell may be listed under several physical groups (4.x): keep the first
    o, gid = _row_groups(cells)
    if len(gid) and gid[-1] + 1 < len(cells):              # (no copy when all rows are distinct)
        first = np.sort(o[np.r_[True, gid[1:] != gid[:-1]]])    # lowest index of each distinct row
        cells, ctag = cells[first], ctag[first]
    del o, gid
    if SIMPLEX[cell]:
        cells = _orient_simplices(pts, cells)
    if order == 2:
        bad = _folded_cells(cell, pts, cells)
        if bad.size:
            raise InputError(f"mesh file {path}: {bad.size} second-order cell(s) folded by their mid-edge/face "
                             f"nodes (det J <= 0 at one of their nodes; first: cell {int(bad[0])} of the "
                             f"top-dimensional elements, at {pts[cells[bad[0], 0]].tolist()})")
    regions = {names.get((d, t), f"region{t}"): int(t) for t in np.unique(ctag)}
    g = GlobalMesh(cell, order, pts, cells, ctag, regions)
    # facet sets: match (d-1)-dimensional elements to cell facets through their corner nodes
    fl = Element(cell, 1).facet_local_nodes()
    fl2 = np.array(g.element.facet_local_nodes())
    ncorner = len(fl[0])
    F, FC, FT = [], [], []
    fnames = {}
    queries = []                                        # (name, tag, sorted corner rows) per facet group
    for (k, ph), conns in lower.items():
        nm = names.get((k, ph), f"{['point', 'curve', 'surface'][k]}{ph}")
        nodes = np.unique(np.concatenate([c.ravel() for c in conns]))
        g.node_sets[nm] = nodes
        if k != d - 1:
            continue
        fc = np.concatenate(conns)
        if fc.shape[1] != len(fl2[0]):
            raise InputError(f"mesh file {path}: facet group {nm!r} has the wrong element type")
        fc = np.sort(fc[:, :ncorner], axis=1)          # Gmsh lists the vertices first
        if fc.shape[1] != ncorner:
            raise InputError(f"mesh file {path}: facet group {nm!r} has the wrong element type")
        queries.append((nm, ph, fc))
    # the table of cell facets that may match: only those whose corners are all facet-group nodes
    # (same row order as the full table, so the same owner is chosen for an interior facet; the
    # full table of nfl x ncell rows and its sort were the reader's memory peak, ~13x the mesh),
    # all groups matched in one sort (not one per group)
    allpos = None
    if queries:
        inq = np.zeros(len(pts), dtype=bool)
        for q in queries:
            inq[q[2]] = True
        corners = cells[:, corner_positions(cell, order)]
        allf, owner, which = [], [], []
        for j, loc in enumerate(fl):
            hit = np.flatnonzero(inq[corners[:, loc]].all(axis=1))
            allf.append(np.sort(corners[hit][:, loc], axis=1))
            owner.append(hit)
            which.append(np.full(len(hit), j))
        del corners, inq
        allf, owner, which = np.concatenate(allf), np.concatenate(owner), np.concatenate(which)
        allpos = _match_rows(allf, np.concatenate([q[2] for q in queries]))
    start = 0
    for nm, ph, fc in queries:
        pos = allpos[start:start + len(fc)]
        start += len(fc)
        if np.any(pos < 0):
            raise InputError(f"mesh file {path}: facet group {nm!r} has elements that are not cell facets")
        F.append(cells[owner[pos]][np.arange(len(pos))[:, None], fl2[which[pos]]])
        FC.append(owner[pos])
        FT.append(np.full(len(pos), ph))
        fnames[nm] = int(ph)
    if F:
        g.facets, g.facet_cells, g.facet_tags = np.concatenate(F), np.concatenate(FC), np.concatenate(FT)
    else:
        g.facets = np.zeros((0, fl2.shape[1]), dtype=np.int64)
        g.facet_cells = np.zeros(0, dtype=np.int64)
        g.facet_tags = np.zeros(0, dtype=np.int64)
    g.facet_names = fnames
    if degree == 2 and order == 1:
        g = elevate(g)
    elif degree not in (1, 2):
        raise InputError(f"element degree must be 1 or 2 (got {degree})")
    return g


def _folded_cells(cell: str, pts: np.ndarray, cells: np.ndarray, chunk: int = 32768) -> np.ndarray:
    """Indices of curved (second-order) cells whose isoparametric map has det J <= 0 at one of the
    element's own nodes.  The function space checks det J at its quadrature points only; a midside
    node pulled towards a vertex folds the cell next to that vertex, between the quadrature points
    of a Q2 cell (the corners alone still look fine), so the reader also checks the nodes."""
    el = Element(cell, 2)
    _, dN = el.tabulate(el.nodes)                                    # (nen, nen, d) at the nodes
    bad = []
    for s in range(0, len(cells), chunk):
        X = pts[cells[s:s + chunk]]                                  # (c, nen, d)
        J = np.einsum("cai,nak->cnik", X, dN)
        det = np.linalg.det(J) if J.shape[-1] == 3 else J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
        bad.append(s + np.flatnonzero(np.any(det <= 0, axis=1)))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def _match_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row index in ``table`` of each query row (-1 if absent); rows are small int tuples."""
    both = np.concatenate([table, queries])
    o, gid = _row_groups(both)
    is_t = o < len(table)
    tbl = np.full(gid[-1] + 1 if len(gid) else 0, -1, dtype=np.int64)
    tbl[gid[is_t]] = o[is_t]
    out = np.full(len(queries), -1, dtype=np.int64)
    out[o[~is_t] - len(table)] = tbl[gid[~is_t]]
    return out


def _row_groups(a: np.ndarray):
    """Stable lexicographic row order ``o`` of an int array and the group id (equal rows) of each
    sorted row — what ``np.unique(axis=0)`` gives, ~5x faster (no structured-dtype sort)."""
    o = np.lexsort(a.T[::-1])
    s = a[o]
    new = np.r_[True, np.any(s[1:] != s[:-1], axis=1)] if len(s) else np.zeros(0, bool)
    return o, np.cumsum(new) - 1


def write_gmsh2(path: str, g: GlobalMesh, facet_groups: dict | None = None) -> None:
    """Write a mesh as Gmsh 2.2 ASCII (first- or second-order cells, used to make example and test
    meshes).  ``facet_groups``: name -> (tag, facets (nf, nfen) node ids in our facet-element order,
    or their corners only for first-order meshes)."""
    d = g.dim
    etype = _GMSH_CODE[(g.cell, g.degree)]
    inv = np.argsort(gmsh_permutation(g.cell, g.degree))          # gmsh = ours[:, inv]
    fcell = Element(g.cell, 1).facet.cell
    lines = ["$MeshFormat", "2.2 0 8", "$EndMeshFormat", "$PhysicalNames"]
    groups = facet_groups or {}
    lines.append(str(len(groups) + len(g.region_names)))
    for nm, (tag, _) in groups.items():
        lines.append(f'{d - 1} {tag} "{nm}"')
    for nm, tag in g.region_names.items():
        lines.append(f'{d} {tag} "{nm}"')
    lines += ["$EndPhysicalNames", "$Nodes", str(len(g.points))]
    P = np.zeros((len(g.points), 3))
    P[:, :d] = g.points
    lines += [f"{i + 1} {x:.17g} {y:.17g} {z:.17g}" for i, (x, y, z) in enumerate(P)]
    lines += ["$EndNodes", "$Elements"]
    els = []
    for nm, (tag, fac) in groups.items():
        fac = np.asarray(fac)
        fdeg = 2 if fac.shape[1] > Element(fcell, 1).nen else 1
        fac = fac[:, np.argsort(gmsh_permutation(fcell, fdeg))]
        ftype = _GMSH_CODE[(fcell, fdeg)]
        for f in fac:
            els.append(f"{ftype} 2 {tag} {tag} " + " ".join(str(int(v) + 1) for v in f))
    for c, t in zip(g.cells[:, inv], g.cell_tags):
        els.append(f"{etype} 2 {t} {t} " + " ".join(str(int(v) + 1) for v in c))
    lines.append(str(len(els)))
    lines += [f"{i + 1} {e}" for i, e in enumerate(els)]
    lines.append("$EndElements")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def write_gmsh4(path: str, g: GlobalMesh, facet_groups: dict | None = None, node_blocks: int = 1) -> None:
    """Write a mesh as Gmsh 4.1 ASCII (used for test and benchmark meshes).  One model entity per
    region (dimension d, entity tag = region tag) and per facet group (dimension d-1), each carrying
    its physical group; ``facet_groups`` as in :func:`write_gmsh2`.  The nodes are written in
    ``node_blocks`` entity blocks (round-robin over the region entities) to exercise multi-block
    files; element blocks: one per facet group and per region."""
    d = g.dim
    etype = _GMSH_CODE[(g.cell, g.degree)]
    inv = np.argsort(gmsh_permutation(g.cell, g.degree))
    fcell = Element(g.cell, 1).facet.cell
    groups = facet_groups or {}
    regions = {nm: int(t) for nm, t in g.region_names.items() if np.any(g.cell_tags == t)}
    out = ["$MeshFormat", "4.1 0 8", "$EndMeshFormat", "$PhysicalNames", str(len(groups) + len(regions))]
    out += [f'{d - 1} {tag} "{nm}"' for nm, (tag, _) in groups.items()]
    out += [f'{d} {tag} "{nm}"' for nm, tag in regions.items()]
    out += ["$EndPhysicalNames", "$Entities"]
    counts = [0, 0, 0, 0]
    counts[d - 1], counts[d] = len(groups), len(regions)
    out.append(" ".join(map(str, counts)))
    lo, hi = np.zeros(3), np.zeros(3)
    lo[:d], hi[:d] = g.points.min(axis=0), g.points.max(axis=0)
    box = " ".join(f"{v:.17g}" for v in np.r_[lo, hi])
    for k in range(1, 4):                       # entity lines of dimension k (no bounding entities)
        tags = [t for _, (t, _) in groups.items()] if k == d - 1 else list(regions.values()) if k == d else []
        out += [f"{t} {box} 1 {t} 0" for t in tags]
    out.append("$EndEntities")
    P = np.zeros((len(g.points), 3))
    P[:, :d] = g.points
    ids = np.arange(1, len(P) + 1)
    rtags = list(regions.values()) or [1]
    nb = max(1, min(int(node_blocks), len(P)))
    out += ["$Nodes", f"{nb} {len(P)} 1 {len(P)}"]
    for b, sl in enumerate(np.array_split(np.arange(len(P)), nb)):
        out.append(f"{d} {rtags[b % len(rtags)]} 0 {len(sl)}")
        out += [str(int(i)) for i in ids[sl]]
        out += [f"{x:.17g} {y:.17g} {z:.17g}" for x, y, z in P[sl]]
    out.append("$EndNodes")
    blocks = []
    for nm, (tag, fac) in groups.items():
        fac = np.asarray(fac)
        fdeg = 2 if fac.shape[1] > Element(fcell, 1).nen else 1
        blocks.append((d - 1, tag, _GMSH_CODE[(fcell, fdeg)], fac[:, np.argsort(gmsh_permutation(fcell, fdeg))]))
    for t in regions.values():
        blocks.append((d, t, etype, g.cells[g.cell_tags == t][:, inv]))
    ne = sum(len(c) for *_, c in blocks)
    out += ["$Elements", f"{len(blocks)} {ne} 1 {ne}"]
    nxt = 1
    for k, t, et, conn in blocks:
        out.append(f"{k} {t} {et} {len(conn)}")
        tab = np.column_stack([np.arange(nxt, nxt + len(conn)), conn + 1])
        out += [" ".join(map(str, row)) for row in tab.tolist()]
        nxt += len(conn)
    out.append("$EndElements")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------------------------
# partitioning and distribution
# ---------------------------------------------------------------------------------------------

def rcb_partition(centroids: np.ndarray, nparts: int) -> np.ndarray:
    """Recursive coordinate bisection: part id per point, balanced to ±1, deterministic."""
    part = np.zeros(len(centroids), dtype=np.int32)

    def split(idx, p0, k):
        if k <= 1 or len(idx) == 0:
            part[idx] = p0
            return
        X = centroids[idx]
        ext = X.max(axis=0) - X.min(axis=0)
        axis = len(ext) - 1 - int(np.argmax(ext[::-1]))     # ties: the last axis (slabs in z)
        order = idx[np.lexsort((idx, X[:, axis]))]
        k1 = k // 2
        m = int(round(len(idx) * k1 / k))
        split(order[:m], p0, k1)
        split(order[m:], p0 + k1, k - k1)

    split(np.arange(len(centroids)), 0, nparts)
    return part


@dataclass
class Mesh:
    """This rank's part of a distributed mesh.

    Local node numbering: owned nodes first (PETSc indices ``node_start + i``), then ghosts.
    ``cells`` are this rank's cells in local node numbers; ``cell_ids`` their ids in the input
    (natural) numbering; ``node_ids`` the natural ids of the local nodes."""

    comm: object
    cell: str
    degree: int
    points: np.ndarray
    cells: np.ndarray
    cell_tags: np.ndarray
    cell_ids: np.ndarray
    node_global: np.ndarray     # PETSc index of each local node
    node_ids: np.ndarray        # natural (input) id of each local node
    n_owned: int
    node_start: int
    n_global: int
    n_cells_global: int
    region_names: dict
    facet_names: dict
    facets: np.ndarray          # (nf, nfen) local node ids, facets of local cells only
    facet_tags: np.ndarray
    facet_cells: np.ndarray     # local cell of each facet
    node_sets: dict             # name -> local node ids (owned and ghost)
    row_ptr: np.ndarray         # node-graph CSR of the owned rows (global column ids)
    row_cols: np.ndarray
    interface: np.ndarray       # bool per local cell: touches a node owned by another rank

    @property
    def dim(self) -> int:
        return CELL_DIM[self.cell]

    @property
    def element(self) -> Element:
        return Element(self.cell, self.degree)

    @property
    def boundary_names(self) -> list[str]:
        return sorted(set(self.facet_names) | set(self.node_sets))

    def boundary_nodes(self, name: str, owned_only: bool = False) -> np.ndarray:
        """Local nodes on a named facet set or node set (raises InputError if unknown, on all ranks)."""
        if name not in self.node_sets:
            raise InputError(f"unknown boundary region {name!r}; this mesh has: "
                             f"{', '.join(self.boundary_names) or '(none)'}")
        n = self.node_sets[name]
        return n[n < self.n_owned] if owned_only else n

    def region_tag(self, name: str) -> int:
        if name not in self.region_names:
            raise InputError(f"unknown material region {name!r}; this mesh has: "
                             f"{', '.join(sorted(self.region_names))}")
        return self.region_names[name]

    def hmax(self) -> float:
        X = self.points[self.cells[:, :]]
        h = np.linalg.norm(X.max(axis=1) - X.min(axis=1), axis=1).max(initial=0.0)
        return float(self.comm.allreduce(h, op=_mpi_max()))


def _mpi_max():
    from mpi4py import MPI

    return MPI.MAX


PARTITIONERS = ("rcb", "ptscotch", "parmetis")


def corner_positions(cell: str, degree: int) -> np.ndarray:
    """Positions of the degree-1 element's nodes among the degree-``degree`` element's nodes."""
    X1, X2 = Element(cell, 1).nodes, Element(cell, degree).nodes
    return np.array([int(np.argmin(np.linalg.norm(X2 - x, axis=1))) for x in X1])


def dual_graph(cell: str, degree: int, cells: np.ndarray):
    """Cell adjacency through shared facets as CSR (indptr, indices), no self loops."""
    import scipy.sparse as sp

    corners = cells[:, corner_positions(cell, degree)]
    fl = Element(cell, 1).facet_local_nodes()
    nc = len(cells)
    # facet keys filled in place, int32 when the node ids fit (rank 0's largest partitioning
    # transient: halved, and no list + concatenate copy)
    kt = np.int32 if corners.size == 0 or corners.max() < np.iinfo(np.int32).max else np.int64
    keys = np.empty((len(fl) * nc, len(fl[0])), dtype=kt)
    for j, loc in enumerate(fl):
        keys[j * nc:(j + 1) * nc] = np.sort(corners[:, loc], axis=1)
    del corners
    o = np.lexsort(keys.T)                           # equal facets become neighbours (faster than unique(axis=0))
    ks = keys[o]
    del keys
    same = np.all(ks[1:] == ks[:-1], axis=1)         # interior facets appear exactly twice
    del ks
    oc = o % nc                                      # the cell of each sorted facet row
    del o
    a, b = oc[:-1][same], oc[1:][same]
    A = sp.csr_matrix((np.ones(2 * len(a), dtype=np.int8), (np.r_[a, b], np.r_[b, a])), shape=(nc, nc))
    A.sum_duplicates()
    A.sort_indices()
    return A.indptr.astype(np.int64), A.indices.astype(np.int64)


def partition_quality(indptr: np.ndarray, indices: np.ndarray, part: np.ndarray, nparts: int) -> dict:
    """Edge cut (dual-graph edges between parts) and load imbalance (max/mean cells per part)."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    cut = int(np.sum(part[rows] != part[indices]) // 2)
    cnt = np.bincount(part, minlength=nparts)
    return {"edge_cut": cut, "edges": int(len(indices) // 2), "imbalance": float(cnt.max() / cnt.mean()),
            "cells_per_part": cnt.tolist()}


def graph_partition(comm, indptr: np.ndarray, indices: np.ndarray, n_global: int, kind: str = "ptscotch"):
    """Partition a distributed graph (this rank's block of rows, global column ids) into
    ``comm.size`` parts with PETSc's MatPartitioning (collective). Returns the part of each local row."""
    from petsc4py import PETSc

    from ..parallel import exscan_offset

    if kind not in ("ptscotch", "parmetis"):
        raise InputError(f"unknown graph partitioner {kind!r} (use one of {', '.join(PARTITIONERS)})")
    # Scotch 7 runs threads whose scheduling makes the partition vary from run to run; one
    # thread per rank (we are one MPI rank per core anyway) makes it reproducible
    os.environ.setdefault("SCOTCH_PTHREAD_NUMBER", "1")
    nloc = len(indptr) - 1
    off, tot = exscan_offset(comm, nloc)
    assert tot == n_global
    IT = PETSc.IntType
    adj = PETSc.Mat().createAIJ(((nloc, n_global), (nloc, n_global)),
                                csr=(indptr.astype(IT), indices.astype(IT), np.ones(len(indices))), comm=comm)
    mp = PETSc.MatPartitioning().create(comm=comm)
    try:
        mp.setAdjacency(adj)
        try:
            mp.setType(kind)
        except PETSc.Error:
            raise InputError(f"partitioner {kind!r} is not available in this PETSc build "
                             "(Debian's PETSc 3.18 has PT-Scotch: use 'ptscotch' or 'rcb')") from None
        is_ = PETSc.IS()
        mp.apply(is_)
        part = is_.getIndices().astype(np.int32).copy()
        is_.destroy()
    finally:
        mp.destroy()
        adj.destroy()
    return part


def _meta_bcast(comm, g: GlobalMesh | None) -> dict:
    meta = None
    if comm.rank == 0:
        meta = dict(cell=g.cell, degree=g.degree, ncell=len(g.cells), N=len(g.points),
                    region_names=dict(g.region_names), facet_names=dict(g.facet_names),
                    node_set_names=sorted(g.node_sets), has_facets=g.facets is not None and len(g.facets) > 0)
    return comm.bcast(meta, root=0)


def _centroids(g: GlobalMesh) -> np.ndarray:
    """Corner centroids (ncell, d), summed corner by corner: the same values (same summation
    order) as ``points[cells[:, corners]].mean(axis=1)`` without its (ncell, ncorner, d) gather."""
    corners = g.element.vtk_corners
    c = g.points[g.cells[:, corners[0]]]
    for k in corners[1:]:
        c += g.points[g.cells[:, k]]
    c /= len(corners)
    return c


def distribute(comm, g: GlobalMesh | None, partitioner: str = "rcb") -> Mesh:
    """Partition ``g`` over ``comm`` and send each rank only its part (collective).

    ``g`` is needed on rank 0 only (other ranks may pass ``None``).  ``partitioner``: ``"rcb"``
    (recursive coordinate bisection of the cell centroids, on rank 0) or a graph partitioner of
    the cell dual graph through PETSc's MatPartitioning (``"ptscotch"``; ``"parmetis"`` if the
    PETSc build has it), run in parallel on row blocks of the graph.  Rank 0 then computes node
    ownership and sends every rank its cells, owned + ghost nodes, the cells touching its owned
    nodes (for the sparsity), its boundary facets and node sets; ranks > 0 never hold O(N) data."""
    size, rank = comm.size, comm.rank
    if partitioner not in PARTITIONERS:
        raise InputError(f"unknown partitioner {partitioner!r} (use one of {', '.join(PARTITIONERS)})")
    meta = _meta_bcast(comm, g)
    ncell = meta["ncell"]
    if ncell < size:
        raise InputError(f"mesh has {ncell} cells, fewer than the {size} MPI ranks")
    # ---- partition
    if partitioner == "rcb":
        cpart = rcb_partition(_centroids(g), size) if rank == 0 else None
    else:
        from ..parallel import block_range

        if rank == 0:
            ip, ix = dual_graph(g.cell, g.degree, g.cells)
            for r in range(size - 1, -1, -1):
                s, e = block_range(ncell, size, r)
                blk = (ip[s:e + 1] - ip[s], ix[ip[s]:ip[e]])
                if r:
                    comm.send(blk, dest=r, tag=11)
            del ip, ix
        else:
            blk = comm.recv(source=0, tag=11)
        mine = graph_partition(comm, blk[0], blk[1], ncell, partitioner)
        parts = comm.gather(mine, root=0)
        cpart = np.concatenate(parts) if rank == 0 else None
        if rank == 0 and np.any(np.bincount(cpart, minlength=size) == 0):
            cpart = None                                       # an empty part: fall back to RCB
        if comm.bcast(cpart is None, root=0):
            cpart = rcb_partition(_centroids(g), size) \
                if rank == 0 else None
    # ---- ownership and per-rank packages (rank 0), sent one at a time
    if rank == 0:
        pkgs = _plan(g, cpart, size)
        mine = None
        for r, pkg in pkgs:
            if r == 0:
                mine = pkg
            else:
                comm.send(pkg, dest=r, tag=12)
    else:
        mine = comm.recv(source=0, tag=12)
    return _local_mesh(comm, meta, mine)


def _plan(g: GlobalMesh, cpart: np.ndarray, size: int):
    """Rank 0: node owners (lowest rank among the cells of a node), renumbering so each rank owns
    a contiguous block, and a generator of (rank, package) with what that rank needs."""
    N, nen = len(g.points), g.cells.shape[1]
    flat = g.cells.ravel()
    cp = np.repeat(cpart, nen)
    order = np.lexsort((cp, flat))
    fs = flat[order]
    startmask = np.r_[True, fs[1:] != fs[:-1]]
    owner = np.zeros(N, dtype=np.int32)                  # unused nodes: rank 0 (identity rows)
    owner[fs[startmask]] = cp[order][startmask]
    del flat, cp, order, fs, startmask                   # the generator keeps its locals alive
    perm = np.argsort(owner, kind="stable")              # new id -> natural id
    new_id = np.empty(N, dtype=np.int64)
    new_id[perm] = np.arange(N)
    counts = np.bincount(owner, minlength=size)
    starts = np.r_[0, np.cumsum(counts)]
    # cells touching each rank's owned nodes: unique (rank, cell) pairs, sorted by rank (one pass,
    # not one scan of all cells per rank)
    key = owner[g.cells].astype(np.int64)                 # in place: one (ncell, nen) int64 temporary
    key *= len(g.cells)
    key += np.arange(len(g.cells))[:, None]
    pairs = np.unique(key.ravel())
    del key
    tcut = np.searchsorted(pairs, np.arange(size + 1, dtype=np.int64) * len(g.cells))
    has_f = g.facets is not None and len(g.facets) > 0
    sets = {}
    if has_f:
        for nm, tag in g.facet_names.items():
            sets[nm] = np.unique(new_id[g.facets[g.facet_tags == tag]])
    for nm, nodes in g.node_sets.items():
        sets[nm] = np.union1d(sets.get(nm, np.zeros(0, np.int64)), new_id[np.asarray(nodes, dtype=np.int64)])
    if has_f:
        sets.setdefault("boundary", np.unique(new_id[g.facets]))
    by_rank = np.argsort(cpart, kind="stable")
    cstart = np.r_[0, np.cumsum(np.bincount(cpart, minlength=size))]

    def package(r):
        mycells = by_rank[cstart[r]:cstart[r + 1]]         # natural cell ids, ascending
        cn = new_id[g.cells[mycells]]                     # renumbered per package (no global copy)
        s0, n_owned = int(starts[r]), int(counts[r])
        used = np.unique(cn)
        ghosts = used[(used < s0) | (used >= s0 + n_owned)]
        lg = np.concatenate([np.arange(s0, s0 + n_owned), ghosts])
        touch = new_id[g.cells[pairs[tcut[r]:tcut[r + 1]] - r * len(g.cells)]]
        pkg = dict(start=s0, n_owned=n_owned, cells=cn, cell_ids=mycells, cell_tags=g.cell_tags[mycells],
                   touch=touch, local_global=lg, points=g.points[perm[lg]], node_ids=perm[lg])
        if has_f:
            fm = cpart[g.facet_cells] == r
            pkg.update(facets=new_id[g.facets[fm]], facet_tags=g.facet_tags[fm],
                       facet_cells=np.searchsorted(mycells, g.facet_cells[fm]))
        lgs = np.sort(lg)
        pkg["node_sets"] = {nm: v[np.isin(v, lgs, assume_unique=True)] for nm, v in sets.items()}
        return pkg

    for r in range(size - 1, -1, -1):                    # rank 0 last: its package is kept
        yield r, package(r)


def _local_mesh(comm, meta: dict, pkg: dict) -> Mesh:
    """Build this rank's :class:`Mesh` from its package (cells and facets in PETSc node numbers)."""

    N, s0, n_owned = meta["N"], pkg["start"], pkg["n_owned"]
    lg = np.asarray(pkg["local_global"], dtype=np.int64)
    order = np.argsort(lg, kind="stable")
    lgs = lg[order]

    def g2l(x):
        return order[np.searchsorted(lgs, x)]

    cn = pkg["cells"]
    nen = cn.shape[1] if cn.ndim == 2 else Element(meta["cell"], meta["degree"]).nen
    lcells = g2l(cn).reshape(-1, nen)
    interface = np.any((cn < s0) | (cn >= s0 + n_owned), axis=1) if len(cn) else np.zeros(0, bool)
    indptr, indices = _node_graph(pkg["touch"], s0, n_owned, N)
    el = Element(meta["cell"], meta["degree"])
    nfen = len(el.facet_local_nodes()[0])
    if "facets" in pkg and len(pkg["facets"]):
        facets = g2l(pkg["facets"]).reshape(-1, nfen)
        ftags, fcells = pkg["facet_tags"], np.asarray(pkg["facet_cells"], dtype=np.int64)
    else:
        facets = np.zeros((0, nfen), dtype=np.int64)
        ftags, fcells = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    node_sets = {nm: np.sort(g2l(v)) for nm, v in pkg["node_sets"].items()}
    for nm in list(meta["facet_names"]) + list(meta["node_set_names"]):
        node_sets.setdefault(nm, np.zeros(0, dtype=np.int64))
    if meta.get("has_facets"):
        node_sets.setdefault("boundary", np.zeros(0, dtype=np.int64))
    return Mesh(comm, meta["cell"], meta["degree"], np.asarray(pkg["points"], float), lcells,
                np.asarray(pkg["cell_tags"]), np.asarray(pkg["cell_ids"], dtype=np.int64), lg,
                np.asarray(pkg["node_ids"], dtype=np.int64), n_owned, s0, N, meta["ncell"],
                dict(meta["region_names"]), dict(meta["facet_names"]), facets, ftags, fcells, node_sets,
                indptr, indices, interface)


def _node_graph(tc: np.ndarray, s0: int, n_owned: int, N: int, chunk: int = 16384):
    """CSR (sorted columns) of the node graph of the owned rows ``s0 .. s0+n_owned`` from the cells
    ``tc`` (PETSc node ids) touching them.  Row/column pairs are packed into int64 keys and
    de-duplicated chunk by chunk (each node appears in ~2^d cells), so the peak is a few times
    the final nnz instead of nen² entries per cell (≈ 3x less memory than COO → CSR)."""
    parts = []
    for a in range(0, len(tc), chunk):
        t = tc[a:a + chunk]
        own = (t >= s0) & (t < s0 + n_owned)
        ci, ri = np.nonzero(own)                       # (cell, local row node) with an owned row
        if not len(ci):
            continue
        rows = t[ci, ri] - s0
        keys = (rows[:, None] * N + t[ci]).ravel()
        parts.append(np.unique(keys))
    keys = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    del parts
    keys.sort()                                        # in place: no copies of the nnz-sized array
    if len(keys):
        keep = np.empty(len(keys), dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
        del keep
    indptr = np.searchsorted(keys, np.arange(n_owned + 1, dtype=np.int64) * N)
    np.remainder(keys, N, out=keys)                    # keys become the column indices
    return indptr.astype(np.int64), keys


# ---------------------------------------------------------------------------------------------
# structured boxes generated in place (no global arrays)
# ---------------------------------------------------------------------------------------------

def _proc_grid(n, size):
    """Process grid (x fastest) for ``size`` ranks on ``n`` cells per axis: every block
    non-empty, smallest largest block, then smallest interface; None if impossible."""
    d = len(n)

    def facts(k, m):
        if m == 1:
            yield (k,)
            return
        for a in range(1, k + 1):
            if k % a == 0:
                for rest in facts(k // a, m - 1):
                    yield (a,) + rest

    best, key = None, None
    for P in facts(size, d):
        if any(p > m for p, m in zip(P, n)):
            continue
        big = int(np.prod([-(-m // p) for p, m in zip(P, n)]))
        iface = sum((P[a] - 1) * int(np.prod([n[b] for b in range(d) if b != a])) for a in range(d))
        k = (big, iface)
        if key is None or k < key:
            best, key = P, k
    return best


def box_block(comm, n, lower=None, upper=None, cell: str = "quadrilateral", degree: int = 1) -> Mesh | None:
    """Distributed structured box generated in place: each rank builds only its block of cells
    (a process grid like PETSc's DMDA), the cells touching its owned nodes, and its ghost nodes.

    Same geometry, cell numbering and facet/region names as :func:`box_global`; natural node ids
    are the lattice indices of the degree-``degree`` node lattice (x fastest).  Returns ``None``
    (on every rank) if no process grid gives every rank a cell."""
    n, d, lower, upper = _box_args(n, lower, upper, cell)
    if degree not in (1, 2):
        raise InputError(f"element degree must be 1 or 2 (got {degree})")
    P = _proc_grid(n, comm.size)
    if P is None:
        return None
    p, rank = degree, comm.rank
    from ..parallel import block_range

    cb = [np.array([block_range(n[a], P[a], i)[0] for i in range(P[a])] + [n[a]]) for a in range(d)]
    # owned node range per block and axis: (p*cb[i], p*cb[i+1]], the first block also owns 0
    lo = [np.where(np.arange(P[a]) == 0, 0, p * cb[a][:-1] + 1) for a in range(d)]
    cnt = [p * cb[a][1:] - lo[a] + 1 for a in range(d)]
    bstr = np.cumprod([1] + list(P[:-1]))
    allb = np.array([np.unravel_index(r, P[::-1])[::-1] for r in range(comm.size)])   # (size, d) x fastest
    nown = np.prod([cnt[a][allb[:, a]] for a in range(d)], axis=0)
    starts = np.r_[0, np.cumsum(nown)]
    M = [p * m + 1 for m in n]
    Mstr = np.cumprod([1] + M[:-1])
    N = int(np.prod(M))
    me = allb[rank]

    def new_id(L):                                      # lattice coords (k, d) -> PETSc ids
        b = np.stack([np.searchsorted(p * cb[a][1:], L[:, a], side="left") for a in range(d)], -1)
        off = L - np.stack([lo[a][b[:, a]] for a in range(d)], -1)
        c = np.stack([cnt[a][b[:, a]] for a in range(d)], -1)
        cstr = np.cumprod(np.c_[np.ones(len(L), np.int64), c[:, :-1]], axis=1)
        return starts[b @ bstr] + np.sum(off * cstr, axis=1)

    # element node offsets in the lattice (relative to the box cell's lowest lattice point)
    nbox = int(np.prod(n))
    if SIMPLEX[cell]:
        cor = np.array([c[::-1] for c in np.ndindex(*([2] * d))]) * p      # box corners, lex x fastest
        if d == 2:
            pieces = [[0, 1, 3], [0, 3, 2]]
        else:
            pieces = [[0, a, b, 7] for a, b in [(1, 3), (1, 5), (2, 3), (2, 6), (4, 5), (4, 6)]]
        offs = []
        for pc in pieces:
            v = cor[pc]
            J = (v[1:] - v[0]).T
            if np.linalg.det(J) < 0:                    # same orientation rule as _orient_simplices
                v = v[[0, 2, 1] + list(range(3, d + 1))]
            if p == 2:
                v = np.vstack([v] + [(v[a] + v[b]) // 2 for a, b in SIMPLEX_EDGES[d]])
            offs.append(v)
        offs = np.array(offs)                           # (npiece, nen, d)
    else:
        offs = np.array([c[::-1] for c in np.ndindex(*([p + 1] * d))])[None]   # (1, nen, d)

    # PETSc ids of the lattice nodes of my cells plus one cell layer above (the cells touching my
    # owned nodes), once; cells then index this small box (x fastest)
    c0 = np.array([cb[a][me[a]] for a in range(d)])
    c1 = np.array([cb[a][me[a] + 1] for a in range(d)])
    t1 = np.minimum(c1 + 1, n)
    elo, ehi = p * c0, p * t1
    E = ehi - elo + 1
    Estr = np.cumprod(np.r_[1, E[:-1]])
    grids = np.meshgrid(*[np.arange(elo[a], ehi[a] + 1) for a in range(d)][::-1], indexing="ij")
    Lbox = np.stack([g_.ravel() for g_ in grids[::-1]], -1)                    # (nbox_nodes, d)
    idbox = new_id(Lbox)
    grids = np.meshgrid(*[np.arange(c0[a], t1[a]) for a in range(d)][::-1], indexing="ij")
    B = np.stack([g_.ravel() for g_ in grids[::-1]], -1)                       # touch box cells (x fastest)
    base = (p * B - elo) @ Estr
    off = offs @ Estr                                                         # (npiece, nen)
    lex_t = (base[None, :, None] + off[:, None, :]).reshape(-1, off.shape[1])
    touch = idbox[lex_t]
    mine = np.all(B < c1, axis=1)
    bid = B[mine] @ np.cumprod([1] + n[:-1])
    cid = (np.arange(len(offs))[:, None] * nbox + bid[None, :]).ravel()
    lex_m = (base[mine][None, :, None] + off[:, None, :]).reshape(-1, off.shape[1])
    o = np.argsort(cid, kind="stable")
    cid, lex_m = cid[o], lex_m[o]
    cn = idbox[lex_m]
    del lex_t
    s0, n_owned = int(starts[rank]), int(nown[rank])
    # my nodes: the lattice box of my cells; owned first, then ghosts, each by PETSc id
    inb = np.all(Lbox <= p * c1, axis=1)
    uid, uL = idbox[inb], Lbox[inb]
    own = (uid >= s0) & (uid < s0 + n_owned)
    sel = np.r_[np.flatnonzero(own)[np.argsort(uid[own])], np.flatnonzero(~own)[np.argsort(uid[~own])]]
    lg, Lloc = uid[sel], uL[sel]
    nat = Lloc @ Mstr
    assert np.array_equal(lg[:n_owned], np.arange(s0, s0 + n_owned))
    step = (upper - lower) / np.array([p * m for m in n])
    pts = lower + Lloc * step
    last = Lloc == np.array(M) - 1
    pts[last] = np.broadcast_to(upper, pts.shape)[last]
    # facets of my cells on the box sides (lattice coordinate of every facet node on the side)
    el = Element(cell, degree)
    F, FT, FC = [], [], []
    Lax = [Lbox[:, a][lex_m] for a in range(d)]                                # (c, nen) per axis
    for loc in el.facet_local_nodes():
        for a in range(d):
            for s, bound in ((0, 0), (1, M[a] - 1)):
                on = np.all(Lax[a][:, loc] == bound, axis=1)
                if on.any():
                    F.append(cn[on][:, loc])
                    FT.append(np.full(int(on.sum()), 2 * a + s + 1))
                    FC.append(np.flatnonzero(on))
    nfen = len(el.facet_local_nodes()[0])
    node_sets = {}
    for a in range(d):
        for s, bound in ((0, 0), (1, M[a] - 1)):
            node_sets[BOX_SIDES[2 * a + s]] = lg[Lloc[:, a] == bound]
    node_sets["boundary"] = lg[np.any((Lloc == 0) | (Lloc == np.array(M) - 1), axis=1)]
    pkg = dict(start=s0, n_owned=n_owned, cells=cn, cell_ids=cid, cell_tags=np.ones(len(cn), dtype=np.int32),
               touch=touch, local_global=lg, points=pts, node_ids=nat,
               facets=np.concatenate(F) if F else np.zeros((0, nfen), np.int64),
               facet_tags=np.concatenate(FT) if FT else np.zeros(0, np.int64),
               facet_cells=np.concatenate(FC) if FC else np.zeros(0, np.int64), node_sets=node_sets)
    meta = dict(cell=cell, degree=degree, ncell=nbox * len(offs), N=N, region_names={"domain": 1},
                facet_names={BOX_SIDES[i]: i + 1 for i in range(2 * d)}, node_set_names=[], has_facets=True)
    del Lbox, idbox, B, base, lex_m, Lax, grids, uL, uid, own, sel, inb, Lloc, last   # before the graph
    return _local_mesh(comm, meta, pkg)


def create_box(comm, n, lower=None, upper=None, cell: str = "quadrilateral", degree: int = 1,
               partitioner: str = "block") -> Mesh:
    """Distributed structured box (geometry as :func:`box_global`).  ``partitioner = "block"``
    (default) generates each rank's block in place; ``"rcb"``/``"ptscotch"`` build the box on rank 0
    and distribute it (also the fallback when no process grid fits the rank count)."""
    if partitioner == "block":
        m = box_block(comm, n, lower, upper, cell, degree)
        if m is not None:
            return m
        partitioner = "rcb"
    g = box_global(n, lower, upper, cell, degree) if comm.rank == 0 else None
    return distribute(comm, g, partitioner)


def _on_root(comm, fn, *a, **kw):
    """Run ``fn`` on rank 0; an InputError there is raised identically on every rank."""
    out, err = None, None
    if comm.rank == 0:
        try:
            out = fn(*a, **kw)
        except InputError as e:
            err = str(e)
    err = comm.bcast(err, root=0)
    if err is not None:
        raise InputError(err)
    return out


def read_mesh(comm, path: str, degree: int = 1, partitioner: str = "ptscotch") -> Mesh:
    """Read a Gmsh file on rank 0 (errors raised identically everywhere) and distribute it."""
    if partitioner not in PARTITIONERS:
        raise InputError(f"unknown partitioner {partitioner!r} (use one of {', '.join(PARTITIONERS)})")
    return distribute(comm, _on_root(comm, read_gmsh, path, degree), partitioner)


def _by_block(ids: np.ndarray, n_global: int, size: int):
    """``ids`` grouped by the rank whose natural block ``block_range(n_global, size, r)`` holds
    them: the stable order and the group bounds (rank r's ids are ``ids[order[cuts[r]:cuts[r + 1]]]``)."""
    from ..parallel import block_range

    ends = np.array([block_range(n_global, size, r)[1] for r in range(size)])
    dest = np.searchsorted(ends, ids, side="right")
    return np.argsort(dest, kind="stable"), np.r_[0, np.cumsum(np.bincount(dest, minlength=size))]


def to_natural(comm, ids: np.ndarray, values: np.ndarray, n_global: int) -> np.ndarray:
    """Redistribute rows ``values`` labelled by natural ``ids`` (each id on exactly one rank) so
    rank r holds the natural block ``block_range(n_global, size, r)`` in order (collective).

    Used for output: the blocks stacked in rank order are the global array in natural order,
    whatever the partition, so field files written before and after a restart on another
    number of ranks refer to the same node/cell numbering."""
    from ..parallel import block_range

    size = comm.size
    values = np.asarray(values)
    s, e = block_range(n_global, size, comm.rank)
    if size == 1:
        out = np.empty((n_global,) + values.shape[1:], dtype=values.dtype)
        out[ids] = values
        return out
    order, cuts = _by_block(ids, n_global, size)
    ids_s, val_s = ids[order], values[order]
    got = comm.alltoall([(ids_s[cuts[r]:cuts[r + 1]], val_s[cuts[r]:cuts[r + 1]]) for r in range(size)])
    out = np.empty((e - s,) + values.shape[1:], dtype=values.dtype)
    for i, v in got:
        out[i - s] = v
    return out


def from_natural(comm, ids: np.ndarray, block: np.ndarray, n_global: int) -> np.ndarray:
    """Inverse of :func:`to_natural`: this rank holds the natural block ``block_range(n_global,
    size, rank)`` of an array; return its rows for the natural ``ids`` this rank wants (collective;
    two all-to-all exchanges, no rank holds more than its block + its rows)."""
    from ..parallel import block_range

    size = comm.size
    s, _ = block_range(n_global, size, comm.rank)
    block = np.asarray(block)
    if size == 1:
        return block[ids]
    order, cuts = _by_block(ids, n_global, size)
    ids_s = ids[order]
    asked = comm.alltoall([ids_s[cuts[r]:cuts[r + 1]] for r in range(size)])
    got = comm.alltoall([block[np.asarray(q, dtype=np.int64) - s] for q in asked])
    out = np.empty((len(ids),) + block.shape[1:], dtype=block.dtype)
    out[order] = np.concatenate(got)
    return out
