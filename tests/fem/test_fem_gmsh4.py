"""Gmsh 4.1 ASCII: the block-wise (numpy) parser gives exactly what the former line-by-line parser
gave (kept here as the reference implementation) on files written by ``write_gmsh4`` (all cell
types, first and second order, several node blocks and regions) and on a hand-written file with
parametric nodes; 4.1 and 2.2 files of the same mesh read identically; malformed blocks are
InputErrors; a distributed solve from a 4.1 file equals the one from the 2.2 file at 1/2/3 ranks."""
import os

import numpy as np
import pytest

from hpcmsm.errors import InputError


def _sections(text):
    """The former line-by-line section splitter (reference; the parsers accept line lists too)."""
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


def _gmsh4_lines(sec):
    """The line-by-line 4.1 parser this release replaced (reference implementation)."""
    ent = sec.get("Entities", [])
    phys_of = {}
    if ent:
        counts = [int(c) for c in ent[0].split()]
        row = 1
        for dim, cnt in enumerate(counts):
            for _ in range(cnt):
                v = ent[row].split()
                row += 1
                k = 4 if dim == 0 else 7
                phys_of[(dim, int(v[0]))] = [int(t) for t in v[k + 1:k + 1 + int(v[k])]]
    nodes = sec["Nodes"]
    row, ids, xyz = 1, [], []
    for _ in range(int(nodes[0].split()[0])):
        cnt = int(nodes[row].split()[3])
        row += 1
        ids += [int(t) for t in nodes[row:row + cnt]]
        xyz += [[float(t) for t in line.split()[:3]] for line in nodes[row + cnt:row + 2 * cnt]]
        row += 2 * cnt
    els = sec["Elements"]
    row, blocks = 1, []
    for _ in range(int(els[0].split()[0])):
        edim, etag, et, cnt = (int(t) for t in els[row].split())
        row += 1
        conn = np.array([[int(t) for t in line.split()[1:]] for line in els[row:row + cnt]], dtype=np.int64)
        row += cnt
        for ph in phys_of.get((edim, etag), [0]):
            blocks.append((et, ph, conn))
    return np.array(ids, dtype=np.int64), np.array(xyz, dtype=float), blocks


def _same_parse(path):
    from hpcmsm.fem.mesh import _gmsh4, _split_sections

    text = open(path).read()
    sec = _sections(text)
    raw = _split_sections(text)
    assert set(raw) == set(sec)
    a, b, c = _gmsh4(sec), _gmsh4_lines(sec), _gmsh4(raw)        # lines, reference, text (read_gmsh's path)
    for x, y in zip(a[:2], c[:2]):
        assert np.array_equal(x, y)
    assert all(e1 == e2 and p1 == p2 and np.array_equal(c1, c2) for (e1, p1, c1), (e2, p2, c2) in zip(a[2], c[2]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])        # bit-identical coordinates
    assert len(a[2]) == len(b[2])
    for (e1, p1, c1), (e2, p2, c2) in zip(a[2], b[2]):
        assert e1 == e2 and p1 == p2 and c1.dtype == c2.dtype and np.array_equal(c1, c2)


def _same_mesh(g, h):
    assert g.cell == h.cell and g.degree == h.degree
    assert np.array_equal(g.cells, h.cells) and np.array_equal(g.points, h.points)
    assert np.array_equal(g.cell_tags, h.cell_tags) and g.region_names == h.region_names
    assert g.facet_names == h.facet_names
    for tag in g.facet_names.values():
        a, b = g.facets[g.facet_tags == tag], h.facets[h.facet_tags == tag]
        assert np.array_equal(np.sort(np.sort(a, 1), 0), np.sort(np.sort(b, 1), 0))


@pytest.mark.parametrize("cell,n", [("triangle", (5, 3)), ("quadrilateral", (4, 3)), ("tetrahedron", (3, 2, 2)),
                                    ("hexahedron", (3, 2, 2))])
@pytest.mark.parametrize("degree", [1, 2])
def test_gmsh41_write_read_matches_reference_and_22(tmp_path, cell, n, degree):
    from hpcmsm.fem.mesh import box_global, read_gmsh, write_gmsh2, write_gmsh4

    g = box_global(n, cell=cell, degree=degree)
    rng = np.random.default_rng(3)
    g.points = g.points + 1e-3 * rng.standard_normal(g.points.shape) * (degree == 1)   # full-precision coordinates
    g.cell_tags = np.where(np.arange(len(g.cells)) % 3 == 0, 7, 1).astype(np.int32)    # two regions
    g.region_names = {"domain": 1, "inclusion": 7}
    groups = {nm: (tag, g.facets[g.facet_tags == tag]) for nm, tag in g.facet_names.items()}
    p4, p2 = str(tmp_path / "m4.msh"), str(tmp_path / "m2.msh")
    write_gmsh4(p4, g, groups, node_blocks=5)
    write_gmsh2(p2, g, groups)
    assert open(p4).read().startswith("$MeshFormat\n4.1 0 8\n")
    _same_parse(p4)
    h4, h2 = read_gmsh(p4, degree=degree), read_gmsh(p2, degree=degree)
    _same_mesh(h4, h2)
    assert np.array_equal(h4.points, g.points)                       # %.17g round trip is exact
    assert sorted(h4.region_names.items()) == [("domain", 1), ("inclusion", 7)]
    # node blocks (5) cycle over the region entities: still one node per tag
    assert len(h4.points) == len(g.points)


HAND = """$MeshFormat
4.1 0 8
$EndMeshFormat
$PhysicalNames
2
1 5 "bottom"
2 9 "sq"
$EndPhysicalNames
$Entities
0 1 1 0
1 0 0 0 1 0 0 1 5 0
1 0 0 0 1 1 0 1 9 0
$EndEntities
$Nodes
2 5 1 5
1 1 1 3
1
5
2
0 0 0 0
0.5 0 0 0.5
1 0 0 1
2 1 0 2
3
4
1 1 0
0 1 0
$EndNodes
$Elements
2 3 1 3
1 1 8 1
1 1 2 5
2 1 2 2
2 1 2 3
3 1 3 4
$EndElements
"""


def test_gmsh41_parametric_nodes_and_second_order_facet(tmp_path):
    """Parametric node blocks carry u after x y z (curve: 4 numbers a line) and are read; a
    3-node line facet group on a first-order mesh is refused, a 2-node one matched to its cell."""
    from hpcmsm.fem.mesh import read_gmsh

    p = tmp_path / "hand.msh"
    p.write_text(HAND)
    _same_parse(str(p))
    with pytest.raises(InputError, match="wrong element type"):    # a P2 facet on a P1 mesh
        read_gmsh(str(p))
    p.write_text(HAND.replace("1 1 8 1\n1 1 2 5\n", "1 1 1 1\n1 1 2\n"))
    _same_parse(str(p))
    g = read_gmsh(str(p))
    assert g.cell == "triangle" and len(g.cells) == 2 and g.region_names == {"sq": 9}
    assert np.allclose(g.points[g.facets[g.facet_tags == 5]][..., 1], 0.0)
    x = g.points[g.cells]
    assert abs(0.5 * np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]).sum() - 1.0) < 1e-15


@pytest.mark.parametrize("edit,msg", [
    (lambda t: t.replace("0.5 0 0 0.5", "0.5 0 zero 0.5"), "does not parse"),            # non-numeric
    (lambda t: t.replace("2 1 2 2\n2 1 2 3\n3 1 3 4\n", "2 1 2 2\n2 1 2 3\n3 1 3\n"), "does not parse"),
    (lambda t: t.replace("2 1 2 2\n2 1 2 3\n3 1 3 4\n$EndElements", "2 1 2 3\n2 1 2 3\n3 1 3 4\n$EndElements"),
     "does not parse"),                                                                      # block too short
    (lambda t: t.replace("1 1 1 3\n1\n5\n2\n", "1 1 1 3\n1\n5\n"), "does not parse"),    # missing node tag
])
def test_gmsh41_malformed_blocks(tmp_path, edit, msg):
    from hpcmsm.fem.mesh import read_gmsh

    p = tmp_path / "bad.msh"
    p.write_text(edit(HAND.replace("1 1 8 1\n1 1 2 5\n", "1 1 1 1\n1 1 2\n")))
    with pytest.raises(InputError, match=msg):
        read_gmsh(str(p))


@pytest.mark.mpi
def test_gmsh41_distributed_solve_equals_22(comm, shared_tmp):
    """Curved Q2 quarter annulus written in both formats: the same discrete solution error (to
    solver tolerance) at 1/2/3 ranks."""
    from hpcmsm.fem import Dirichlet, error_norms, solve_diffusion
    from hpcmsm.fem.mesh import read_mesh, write_gmsh2, write_gmsh4
    from tests.fem.mms import diffusion_mms
    from tests.fem.test_fem_curved import annulus

    u, gu, f = diffusion_mms(2)
    paths = [os.path.join(shared_tmp, f"ann.{v}.msh") for v in ("22", "41")]
    if comm.rank == 0:
        g = annulus((6, 6), "quadrilateral", curved=True)
        groups = {"boundary": (1, g.facets)}
        write_gmsh2(paths[0], g, groups)
        write_gmsh4(paths[1], g, groups, node_blocks=3)
    comm.Barrier()
    errs = []
    for p in paths:
        res = solve_diffusion(read_mesh(comm, p, degree=2), 1.0, f, [Dirichlet("boundary", u)],
                              petsc_options={"ksp_rtol": "1e-13"})
        errs.append(error_norms(res.space, res.u_local, u, gu))
        res.u.destroy()
    assert np.allclose(errs[0], errs[1], rtol=1e-8, atol=0), errs
    assert errs[0][0] < 0.05                                  # a sane solution (L2 error 0.027 at 6x6)


def _gmsh2_lines(sec):
    """The former 2.2 element parser (token counts from splitting every line; reference)."""
    lines = sec["Elements"][1:]
    cnt = np.array([len(line.split()) for line in lines])
    flat = np.array(" ".join(lines).split(), dtype=np.int64)
    off = np.r_[0, np.cumsum(cnt)[:-1]]
    et, nt = flat[off + 1], flat[off + 2]
    phys = np.where(nt > 0, flat[np.minimum(off + 3, len(flat) - 1)], 0)
    keys = np.stack([et, phys, cnt - 3 - nt], axis=1)
    out = []
    for key in sorted({tuple(k) for k in keys.tolist()}):
        rows = np.flatnonzero(np.all(keys == key, axis=1))
        idx = (off[rows] + 3 + nt[rows])[:, None] + np.arange(key[2])
        out.append((key[0], key[1], flat[idx]))
    return out


def test_gmsh22_run_walk_matches_line_parser(tmp_path):
    """2.2 element lines are cut by runs of equal (type, number of tags): runs of points, lines
    with 2 and 3 tags, triangles alternating between two physical groups, and a run longer than
    the first 4096-row window — same blocks as the per-line reference, and read_gmsh agrees."""
    from hpcmsm.fem.mesh import _gmsh2, _split_sections, box_global, read_gmsh, write_gmsh2

    g = box_global((60, 40), cell="triangle")                     # 4800 triangles: > one window
    g.cell_tags = np.where(np.arange(len(g.cells)) % 2, 4, 3).astype(np.int32)
    g.region_names = {"a": 3, "b": 4}
    p = str(tmp_path / "m.msh")
    write_gmsh2(p, g, {nm: (t, g.facets[g.facet_tags == t]) for nm, t in g.facet_names.items()})
    text = open(p).read()
    head, rest = text.split("$Elements\n")
    n_el, body = rest.split("\n", 1)
    extra = ["15 2 9 9 1", "15 3 9 9 0 2", "1 3 7 7 0 1 2"]          # a point, a 3-tag point and line
    body = "\n".join(f"{i + 1} {e}" for i, e in enumerate(extra)) + "\n" + "\n".join(
        f"{int(l.split()[0]) + len(extra)} " + l.split(" ", 1)[1] for l in body.split("\n$EndElements")[0].split("\n"))
    text = head + "$Elements\n" + f"{int(n_el) + len(extra)}\n" + body + "\n$EndElements\n"
    open(p, "w").write(text)
    sec = _sections(text)
    raw = _split_sections(text)
    for s_ in (sec, raw):
        got = _gmsh2(s_)[2]
        ref = _gmsh2_lines(sec)
        assert [(e, p_) for e, p_, _ in got] == [(e, p_) for e, p_, _ in ref]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(got, ref))
    h = read_gmsh(p)
    for t in (3, 4):                                   # cells come grouped by region, in file order
        assert np.array_equal(h.cells[h.cell_tags == t], g.cells[g.cell_tags == t])
    assert "point9" in h.node_sets and h.facet_names["curve7"] == 7
    assert np.array_equal(np.sort(h.facets[h.facet_tags == 7][0]), [0, 1])
