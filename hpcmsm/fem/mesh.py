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
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .elements import CELL_DIM, SIMPLEX, Element

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

def box_global(n, lower=None, upper=None, cell: str = "quadrilateral", degree: int = 1) -> GlobalMesh:
    """Structured box with ``n`` cells per axis; simplex cells split each box cell (2 triangles /
    6 tetrahedra).  Facet sets ``xmin, xmax, ymin, ymax[, zmin, zmax]``; region ``domain`` (tag 1)."""
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


def _orient_simplices(pts, cells):
    d = cells.shape[1] - 1
    J = np.stack([pts[cells[:, k + 1]] - pts[cells[:, 0]] for k in range(d)], axis=-1)
    neg = np.linalg.det(J) < 0
    cells = cells.copy()
    cells[neg, 1], cells[neg, 2] = cells[neg, 2].copy(), cells[neg, 1].copy()
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
               5: ("hexahedron", 8), 15: ("point", 1)}
# Gmsh (counter-clockwise) → our lexicographic ordering for tensor cells
_GMSH_TO_LEX = {"quadrilateral": [0, 1, 3, 2], "hexahedron": [0, 1, 3, 2, 4, 5, 7, 6]}
_ENTITY_DIM = {"point": 0, "interval": 1, "triangle": 2, "quadrilateral": 2, "tetrahedron": 3, "hexahedron": 3}


def read_gmsh(path: str, degree: int = 1) -> GlobalMesh:
    """Read a first-order Gmsh ``.msh`` file (ASCII, format 2.2 or 4.1) with physical groups.

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
        sec = _sections(text)
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
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"mesh file {path} does not parse as Gmsh ASCII: {e}") from None
    return _assemble_gmsh(path, ids, xyz, blocks, names, degree)


def _sections(text: str) -> dict:
    sec, cur, buf = {}, None, []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("$End"):
            sec[cur] = buf
            cur, buf = None, []
        elif s.startswith("$"):
            cur, buf = s[1:], []
        elif cur is not None and s:
            buf.append(s)
    return sec


def _gmsh2(sec):
    nodes = sec["Nodes"]
    n = int(nodes[0])
    arr = np.array([l.split() for l in nodes[1:n + 1]], dtype=float)
    ids, xyz = arr[:, 0].astype(np.int64), arr[:, 1:4]
    blocks = []   # (etype, phys_tag, conn)
    els = sec["Elements"]
    by = {}
    for l in els[1:int(els[0]) + 1]:
        v = [int(t) for t in l.split()]
        et, nt = v[1], v[2]
        phys = v[3] if nt > 0 else 0
        by.setdefault((et, phys), []).append(v[3 + nt:])
    for (et, phys), conn in by.items():
        blocks.append((et, phys, np.array(conn, dtype=np.int64)))
    return ids, xyz, blocks


def _gmsh4(sec):
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
    nodes = sec["Nodes"]
    nb = int(nodes[0].split()[0])
    row, ids, xyz = 1, [], []
    for _ in range(nb):
        _, _, _, cnt = (int(t) for t in nodes[row].split())
        row += 1
        ids += [int(t) for t in nodes[row:row + cnt]]
        xyz += [[float(t) for t in l.split()[:3]] for l in nodes[row + cnt:row + 2 * cnt]]
        row += 2 * cnt
    els = sec["Elements"]
    nb = int(els[0].split()[0])
    row, blocks = 1, []
    for _ in range(nb):
        edim, etag, et, cnt = (int(t) for t in els[row].split())
        row += 1
        conn = np.array([[int(t) for t in l.split()[1:]] for l in els[row:row + cnt]], dtype=np.int64)
        row += cnt
        for ph in phys_of.get((edim, etag), [0]):
            blocks.append((et, ph, conn))
    return np.array(ids, dtype=np.int64), np.array(xyz, dtype=float), blocks


def _assemble_gmsh(path, ids, xyz, blocks, names, degree) -> GlobalMesh:
    for et, _, _ in blocks:
        if et not in _GMSH_TYPES:
            raise InputError(f"mesh file {path}: Gmsh element type {et} is not supported (first-order "
                             "lines, triangles, quadrangles, tetrahedra, hexahedra and points only; "
                             "use element degree = 2 to elevate a first-order mesh)")
    dims = [_ENTITY_DIM[_GMSH_TYPES[et][0]] for et, _, _ in blocks]
    if not dims or max(dims) < 2:
        raise InputError(f"mesh file {path}: no 2D or 3D cells")
    d = max(dims)
    cell_types = {_GMSH_TYPES[et][0] for (et, _, _), k in zip(blocks, dims) if k == d}
    if len(cell_types) != 1:
        raise InputError(f"mesh file {path}: mixed cell types {sorted(cell_types)} are not supported")
    cell = cell_types.pop()
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
            if cell in _GMSH_TO_LEX:
                conn = conn[:, _GMSH_TO_LEX[cell]]
            cells.append(conn)
            ctag.append(np.full(len(conn), ph))
        else:
            lower.setdefault((k, ph), []).append(conn)
    cells = np.concatenate(cells)
    ctag = np.concatenate(ctag).astype(np.int32)
    # the same cell may be listed under several physical groups (4.x): keep the first
    _, first = np.unique(cells, axis=0, return_index=True)
    first = np.sort(first)
    cells, ctag = cells[first], ctag[first]
    if SIMPLEX[cell]:
        cells = _orient_simplices(pts, cells)
    regions = {names.get((d, t), f"region{t}"): int(t) for t in np.unique(ctag)}
    g = GlobalMesh(cell, 1, pts, cells, ctag, regions)
    # facet sets: match (d-1)-dimensional elements to cell facets
    el = g.element
    fl = el.facet_local_nodes()
    ncorner = len(fl[0])
    allf = np.concatenate([np.sort(cells[:, loc], axis=1) for loc in fl])      # (nfl*ncell, nc)
    owner = np.tile(np.arange(len(cells)), len(fl))
    which = np.repeat(np.arange(len(fl)), len(cells))
    F, FC, FT = [], [], []
    fnames = {}
    for (k, ph), conns in lower.items():
        nm = names.get((k, ph), f"{['point', 'curve', 'surface'][k]}{ph}")
        nodes = np.unique(np.concatenate([c.ravel() for c in conns]))
        g.node_sets[nm] = nodes
        if k != d - 1:
            continue
        fc = np.sort(np.concatenate(conns), axis=1)
        if fc.shape[1] != ncorner:
            raise InputError(f"mesh file {path}: facet group {nm!r} has the wrong element type")
        pos = _match_rows(allf, fc)
        if np.any(pos < 0):
            raise InputError(f"mesh file {path}: facet group {nm!r} has elements that are not cell facets")
        F.append(cells[owner[pos]][np.arange(len(pos))[:, None], np.array(fl)[which[pos]]])
        FC.append(owner[pos])
        FT.append(np.full(len(pos), ph))
        fnames[nm] = int(ph)
    if F:
        g.facets, g.facet_cells, g.facet_tags = np.concatenate(F), np.concatenate(FC), np.concatenate(FT)
    else:
        g.facets = np.zeros((0, ncorner), dtype=np.int64)
        g.facet_cells = np.zeros(0, dtype=np.int64)
        g.facet_tags = np.zeros(0, dtype=np.int64)
    g.facet_names = fnames
    if degree == 2:
        g = elevate(g)
    elif degree != 1:
        raise InputError(f"element degree must be 1 or 2 (got {degree})")
    return g


def _match_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row index in ``table`` of each query row (-1 if absent); rows are small int tuples."""
    both = np.concatenate([table, queries])
    _, inv = np.unique(both, axis=0, return_inverse=True)
    inv = inv.ravel()
    lookup = np.full(inv.max() + 1, -1, dtype=np.int64)
    lookup[inv[:len(table)]] = np.arange(len(table))
    return lookup[inv[len(table):]]


def write_gmsh2(path: str, g: GlobalMesh, facet_groups: dict | None = None) -> None:
    """Write a first-order mesh as Gmsh 2.2 ASCII (used to make the example meshes).
    ``facet_groups``: name -> (tag, facets (nf, ncorner) node ids)."""
    etype = {"triangle": 2, "quadrilateral": 3, "tetrahedron": 4, "hexahedron": 5}[g.cell]
    ftype = {"triangle": 1, "quadrilateral": 1, "tetrahedron": 2, "hexahedron": 3}[g.cell]
    inv = {"quadrilateral": [0, 1, 3, 2], "hexahedron": [0, 1, 3, 2, 4, 5, 7, 6]}.get(g.cell)
    d = g.dim
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
        if g.cell == "hexahedron":
            fac = fac[:, [0, 1, 3, 2]] if fac.shape[1] == 4 else fac
        for f in fac:
            els.append(f"{ftype} 2 {tag} {tag} " + " ".join(str(int(v) + 1) for v in f))
    for c, t in zip(g.cells, g.cell_tags):
        cc = c[inv] if inv else c
        els.append(f"{etype} 2 {t} {t} " + " ".join(str(int(v) + 1) for v in cc))
    lines.append(str(len(els)))
    lines += [f"{i + 1} {e}" for i, e in enumerate(els)]
    lines.append("$EndElements")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


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


def distribute(comm, g: GlobalMesh) -> Mesh:
    """Partition ``g`` over ``comm`` and build this rank's :class:`Mesh` (collective, no data
    exchange needed: every rank holds ``g``)."""
    size, rank = comm.size, comm.rank
    ncell, N = len(g.cells), len(g.points)
    if ncell < size:
        raise InputError(f"mesh has {ncell} cells, fewer than the {size} MPI ranks")
    corners = g.element.vtk_corners
    cent = g.points[g.cells[:, corners]].mean(axis=1)
    cpart = rcb_partition(cent, size)
    # node owner: lowest rank among the cells that contain it
    nen = g.cells.shape[1]
    flat = g.cells.ravel()
    cp = np.repeat(cpart, nen)
    order = np.lexsort((cp, flat))
    fs = flat[order]
    startmask = np.r_[True, fs[1:] != fs[:-1]]
    owner = np.full(N, size, dtype=np.int32)
    owner[fs[startmask]] = cp[order][startmask]
    if np.any(owner == size):
        # nodes not used by any cell: give them to rank 0 (they get an identity row)
        owner[owner == size] = 0
    perm = np.argsort(owner, kind="stable")          # new id -> natural id
    new_id = np.empty(N, dtype=np.int64)
    new_id[perm] = np.arange(N)
    counts = np.bincount(owner, minlength=size)
    start = int(counts[:rank].sum())
    n_owned = int(counts[rank])
    mycells = np.flatnonzero(cpart == rank)
    cells_new = new_id[g.cells[mycells]]
    used = np.unique(cells_new)
    ghosts = used[(used < start) | (used >= start + n_owned)]
    local_global = np.concatenate([np.arange(start, start + n_owned), ghosts])
    g2l = np.full(N, -1, dtype=np.int64)
    g2l[local_global] = np.arange(len(local_global))
    lcells = g2l[cells_new]
    natural = perm[local_global]
    pts = g.points[natural]
    interface = np.any((cells_new < start) | (cells_new >= start + n_owned), axis=1)
    # node graph of the owned rows, from every cell touching an owned node
    touch = np.flatnonzero(np.any((new_id[g.cells] >= start) & (new_id[g.cells] < start + n_owned), axis=1))
    tc = new_id[g.cells[touch]]
    r = np.repeat(tc, nen, axis=1).ravel()
    c = np.tile(tc, (1, nen)).ravel()
    keep = (r >= start) & (r < start + n_owned)
    import scipy.sparse as sp

    A = sp.csr_matrix((np.ones(keep.sum(), dtype=np.int8), (r[keep] - start, c[keep])), shape=(n_owned, N))
    A.sum_duplicates()
    A.sort_indices()
    # facets of my cells
    fmask = cpart[g.facet_cells] == rank if g.facets is not None and len(g.facets) else np.zeros(0, bool)
    cell_local = np.full(ncell, -1, dtype=np.int64)
    cell_local[mycells] = np.arange(len(mycells))
    facets = g2l[new_id[g.facets[fmask]]] if fmask.size else np.zeros((0, 1), dtype=np.int64)
    ftags = g.facet_tags[fmask] if fmask.size else np.zeros(0, dtype=np.int64)
    fcells = cell_local[g.facet_cells[fmask]] if fmask.size else np.zeros(0, dtype=np.int64)
    # node sets: from facet groups (all facets, not only mine) and from lower-dimensional groups
    node_sets = {}
    for nm, tag in g.facet_names.items():
        nodes = np.unique(g.facets[g.facet_tags == tag])
        loc = g2l[new_id[nodes]]
        node_sets[nm] = np.sort(loc[loc >= 0])
    for nm, nodes in g.node_sets.items():
        loc = g2l[new_id[np.asarray(nodes)]]
        extra = np.sort(loc[loc >= 0])
        node_sets[nm] = np.union1d(node_sets.get(nm, np.zeros(0, np.int64)), extra)
    if g.facets is not None and len(g.facets):
        loc = g2l[new_id[np.unique(g.facets)]]
        node_sets.setdefault("boundary", np.sort(loc[loc >= 0]))
    return Mesh(comm, g.cell, g.degree, pts, lcells, g.cell_tags[mycells], mycells, local_global, natural,
                n_owned, start, N, ncell, dict(g.region_names), dict(g.facet_names), facets, ftags, fcells,
                node_sets, A.indptr.astype(np.int64), A.indices.astype(np.int64), interface)


def create_box(comm, n, lower=None, upper=None, cell: str = "quadrilateral", degree: int = 1) -> Mesh:
    """Distributed structured box (see :func:`box_global`)."""
    return distribute(comm, box_global(n, lower, upper, cell, degree))


def read_mesh(comm, path: str, degree: int = 1) -> Mesh:
    """Read a Gmsh file on every rank (errors raised identically everywhere) and distribute it."""
    return distribute(comm, read_gmsh(path, degree))
