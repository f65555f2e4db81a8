"""Second-order Gmsh cells (6-node triangles, 9-node quadrangles, 10-node tetrahedra, 27-node
hexahedra) read as P2/Q2 directly: Gmsh's node order (checked on hand-written files), write/read
round trips, and a quadratic manufactured solution on distributed second-order Gmsh meshes with
orders 3/2 in L2/H1 (identical at 1, 2, 3 ranks)."""
import os

import numpy as np
import pytest

from hpcmsm.errors import InputError
from tests.fem.mms import diffusion_mms

HEAD = "$MeshFormat\n2.2 0 8\n$EndMeshFormat\n"


def _nodes(pts):
    return "$Nodes\n%d\n" % len(pts) + "".join(f"{i + 1} {x} {y} {z}\n" for i, (x, y, z) in enumerate(pts)) + \
        "$EndNodes\n"


def test_quad9_and_line3_in_gmsh_order(tmp_path):
    from hpcmsm.fem.mesh import read_gmsh

    # Gmsh quad9: corners counter-clockwise, edge nodes 01, 12, 23, 30, then the centre
    pts = [(0, 0, 0), (2, 0, 0), (2, 1, 0), (0, 1, 0), (1, 0, 0), (2, .5, 0), (1, 1, 0), (0, .5, 0), (1, .5, 0)]
    text = HEAD + '$PhysicalNames\n2\n1 7 "left"\n2 1 "domain"\n$EndPhysicalNames\n' + _nodes(pts) + \
        "$Elements\n2\n1 8 2 7 7 4 1 8\n2 10 2 1 1 1 2 3 4 5 6 7 8 9\n$EndElements\n"
    p = tmp_path / "q9.msh"
    p.write_text(text)
    g = read_gmsh(str(p), degree=2)
    assert g.cell == "quadrilateral" and g.degree == 2
    lex = np.array([(x, y) for y in (0, .5, 1) for x in (0, 1, 2)])            # our order: x fastest
    assert np.allclose(g.points[g.cells[0]], lex)
    left = g.points[g.facets[g.facet_tags == 7][0]]
    assert np.allclose(left[:, 0], 0) and np.allclose(sorted(left[:, 1]), [0, .5, 1])
    with pytest.raises(InputError, match="need element degree = 2"):
        read_gmsh(str(p), degree=1)


def test_tet10_in_gmsh_order(tmp_path):
    from hpcmsm.fem.elements import Element
    from hpcmsm.fem.mesh import read_gmsh

    # Gmsh tet10: vertices, then edge nodes 01, 12, 20, 30, 32, 31 (MTetrahedron's edge table)
    V = np.array([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], float)
    mids = [(V[a] + V[b]) / 2 for a, b in [(0, 1), (1, 2), (2, 0), (3, 0), (3, 2), (3, 1)]]
    pts = np.vstack([V, mids])
    text = HEAD + _nodes(pts) + "$Elements\n1\n1 11 2 1 1 " + " ".join(str(i) for i in range(1, 11)) + \
        "\n$EndElements\n"
    p = tmp_path / "t10.msh"
    p.write_text(text)
    g = read_gmsh(str(p), degree=2)
    assert g.cell == "tetrahedron" and g.degree == 2
    assert np.allclose(g.points[g.cells[0]], Element("tetrahedron", 2).nodes)  # reference tet = physical


@pytest.mark.parametrize("cell,n", [("triangle", (3, 2)), ("quadrilateral", (3, 2)), ("tetrahedron", (2, 1, 2)),
                                    ("hexahedron", (2, 2, 1))])
def test_second_order_roundtrip(tmp_path, cell, n):
    from hpcmsm.fem.mesh import box_global, read_gmsh, write_gmsh2

    g = box_global(n, cell=cell, degree=2)
    groups = {nm: (tag, g.facets[g.facet_tags == tag]) for nm, tag in g.facet_names.items()}
    p = str(tmp_path / "m.msh")
    write_gmsh2(p, g, groups)
    txt = open(p).read()
    code = {"triangle": " 9 2 ", "quadrilateral": " 10 2 ", "tetrahedron": " 11 2 ", "hexahedron": " 12 2 "}[cell]
    assert code in txt                                                        # really second-order cells
    h = read_gmsh(p, degree=2)
    assert h.degree == 2 and np.array_equal(h.cells, g.cells) and np.allclose(h.points, g.points)
    for nm, tag in g.facet_names.items():
        a, b = g.facets[g.facet_tags == tag], h.facets[h.facet_tags == tag]
        assert np.array_equal(np.sort(np.sort(a, 1), 0), np.sort(np.sort(b, 1), 0)), nm
        assert h.facet_cells[h.facet_tags == tag].size == a.shape[0]


def _distorted_p2(n, cell):
    """Second-order box mesh with smoothly moved vertices and straight sides (mid-nodes at edge
    midpoints), boundary unchanged."""
    from hpcmsm.fem.mesh import box_global, elevate

    g = box_global(n, cell=cell)
    x = g.points
    s = np.prod(np.sin(np.pi * x), axis=1)
    g.points = x + 0.05 * s[:, None] * np.cos(np.pi * x[:, ::-1])
    return elevate(g)


@pytest.mark.mpi
@pytest.mark.parametrize("cell,ns", [("triangle", (4, 8, 16)), ("tetrahedron", (2, 4, 8)),
                                     ("quadrilateral", (4, 8, 16)), ("hexahedron", (2, 4, 8))])
def test_quadratic_mms_on_second_order_gmsh(comm, shared_tmp, cell, ns):
    from hpcmsm.fem import Dirichlet, error_norms, observed_orders, solve_diffusion
    from hpcmsm.fem.mesh import read_mesh, write_gmsh2

    dim = 2 if cell in ("triangle", "quadrilateral") else 3
    kappa = np.array([[2.0, 0.5], [0.5, 1.0]]) if dim == 2 else np.diag([1.0, 2.0, 1.5])
    u, gu, f = diffusion_mms(dim, kappa)
    errs = []
    for n in ns:
        path = os.path.join(shared_tmp, f"{cell}{n}.msh")
        if comm.rank == 0:
            g = _distorted_p2((n,) * dim, cell)
            write_gmsh2(path, g, {"boundary": (1, g.facets)})
        comm.Barrier()
        mesh = read_mesh(comm, path, degree=2, partitioner="ptscotch")
        assert mesh.degree == 2
        res = solve_diffusion(mesh, kappa, f, [Dirichlet("boundary", u)], petsc_options={"ksp_rtol": "1e-12"})
        errs.append(error_norms(res.space, res.u_local, u, gu))
        res.u.destroy()
    errs = np.array(errs)
    h = 1.0 / np.array(ns)
    l2, h1 = observed_orders(h, errs[:, 0])[-1], observed_orders(h, errs[:, 1])[-1]
    assert abs(l2 - 3) <= 0.1, (l2, errs)
    assert abs(h1 - 2) <= 0.1, (h1, errs)
