"""Meshes: Gmsh reading (2.2 and 4.1 ASCII), bad input, partitioning and distribution."""
import os

import numpy as np
import pytest

from hpcmsm.errors import InputError

MSH41 = """$MeshFormat
4.1 0 8
$EndMeshFormat
$PhysicalNames
3
1 1 "left"
1 2 "right"
2 3 "plate"
$EndPhysicalNames
$Entities
4 4 1 0
1 0 0 0 0
2 1 0 0 0
3 1 1 0 0
4 0 1 0 0
1 0 0 0 1 0 0 0 2 1 -2
2 1 0 0 1 1 0 1 2 2 2 -3
3 0 1 0 1 1 0 0 2 3 -4
4 0 0 0 0 1 0 1 1 2 4 -1
1 0 0 0 1 1 0 1 3 4 1 2 3 4
$EndEntities
$Nodes
2 5 1 5
2 1 0 4
1
2
3
4
0 0 0
1 0 0
1 1 0
0 1 0
2 1 0 1
5
0.5 0.5 0
$EndNodes
$Elements
3 6 1 6
1 4 1 1
1 4 1
1 2 1 1
2 2 3
2 1 2 4
3 1 2 5
4 2 3 5
5 3 4 5
6 4 1 5
$EndElements
"""


def test_gmsh41_reader(tmp_path):
    from hpcmsm.fem.mesh import read_gmsh

    p = tmp_path / "sq.msh"
    p.write_text(MSH41)
    g = read_gmsh(str(p))
    assert g.cell == "triangle" and g.cells.shape == (4, 3)
    assert g.region_names == {"plate": 3}
    assert set(g.facet_names) == {"left", "right"}
    # facets matched to their cells, area of the mesh is 1
    x = g.points[g.cells]
    area = 0.5 * np.abs(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])).sum()
    assert abs(area - 1.0) < 1e-14
    left = g.facets[g.facet_tags == 1]
    assert np.allclose(g.points[left][..., 0], 0.0)


def test_gmsh22_roundtrip_and_elevation(tmp_path):
    from hpcmsm.fem.mesh import box_global, read_gmsh, write_gmsh2

    g = box_global((3, 2, 2), cell="hexahedron")
    groups = {nm: (tag, g.facets[g.facet_tags == tag]) for nm, tag in g.facet_names.items()}
    p = str(tmp_path / "box.msh")
    write_gmsh2(p, g, groups)
    h = read_gmsh(p)
    assert h.cell == "hexahedron" and np.array_equal(h.cells, g.cells)
    assert h.facet_names == g.facet_names
    h2 = read_gmsh(p, degree=2)
    assert h2.points.shape[0] == 7 * 5 * 5 and h2.facets.shape[1] == 9


@pytest.mark.parametrize("text,msg", [
    ("hello", "does not parse"),
    ("$MeshFormat\n2.2 1 8\n$EndMeshFormat\n", "binary"),
    ("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n3\n1 0 0 0\n2 1 0 0\n3 0 1 0\n$EndNodes\n"
     "$Elements\n1\n1 21 2 1 1 1 2 3 1 2 3 1 2 3 1\n$EndElements\n", "not supported"),
    ("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n3\n1 0 0 0\n2 1 0 0\n3 0 1 0\n$EndNodes\n"
     "$Elements\n1\n1 2 2 1 1 1 2 7\n$EndElements\n", "undefined nodes"),
])
def test_gmsh_bad_files(tmp_path, text, msg):
    from hpcmsm.fem.mesh import read_gmsh

    p = tmp_path / "bad.msh"
    p.write_text(text)
    with pytest.raises(InputError, match=msg):
        read_gmsh(str(p))


def test_missing_mesh_file():
    from hpcmsm.fem.mesh import read_gmsh

    with pytest.raises(InputError, match="does not exist"):
        read_gmsh("/nonexistent/mesh.msh")


def test_rcb_balanced_and_deterministic():
    from hpcmsm.fem.mesh import rcb_partition

    rng = np.random.default_rng(0)
    x = rng.random((1001, 3))
    for k in (2, 3, 5):
        p = rcb_partition(x, k)
        c = np.bincount(p, minlength=k)
        assert c.max() - c.min() <= 1
        assert np.array_equal(p, rcb_partition(x, k))


@pytest.mark.mpi
@pytest.mark.parametrize("cell,p", [("tetrahedron", 2), ("quadrilateral", 1)])
def test_distribution_consistent(comm, cell, p):
    from mpi4py import MPI

    from hpcmsm.fem.mesh import box_global, distribute

    d = 3 if cell == "tetrahedron" else 2
    g = box_global((3,) * d, cell=cell, degree=p)
    m = distribute(comm, g)
    # every cell on exactly one rank, every node owned by exactly one rank
    assert comm.allreduce(len(m.cells)) == len(g.cells)
    assert comm.allreduce(m.n_owned) == len(g.points)
    ids = np.concatenate(comm.allgather(m.node_ids[:m.n_owned]))
    assert np.array_equal(np.sort(ids), np.arange(len(g.points)))
    # local coordinates are the natural coordinates of the local nodes
    assert np.allclose(m.points, g.points[m.node_ids])
    assert np.array_equal(m.node_global[:m.n_owned], np.arange(m.node_start, m.node_start + m.n_owned))
    # facets: total over ranks equals the global count
    assert comm.allreduce(len(m.facets)) == len(g.facets)
    assert comm.allreduce(0, op=MPI.SUM) == 0


def test_unknown_regions():
    from mpi4py import MPI

    from hpcmsm.fem import create_box

    m = create_box(MPI.COMM_SELF, (2, 2))
    with pytest.raises(InputError, match="unknown boundary region 'top'"):
        m.boundary_nodes("top")
    with pytest.raises(InputError, match="unknown material region"):
        m.region_tag("steel")
    with pytest.raises(InputError, match="does not fit"):
        create_box(MPI.COMM_SELF, (2, 2), cell="hexahedron")
