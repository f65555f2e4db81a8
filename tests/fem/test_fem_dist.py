"""Distributed meshes without replication: structured boxes generated per rank (process grid),
Gmsh files read on rank 0 and partitioned with PETSc's graph partitioner (PT-Scotch) or RCB.

Each rank holds only its share (cells ≈ N/size, no full coordinate array), every cell is owned
exactly once, boundary tags survive, and solves equal the serial solve (identical at 1, 2, 3 ranks)."""
import os

import numpy as np
import pytest
from mpi4py import MPI

from hpcmsm.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLATE = os.path.join(ROOT, "examples", "meshes", "plate_hole_tri.msh")


def _owned_once(comm, m, n_cells, n_nodes):
    ids = np.concatenate(comm.allgather(m.cell_ids))
    assert np.array_equal(np.sort(ids), np.arange(n_cells))                 # every cell exactly once
    nodes = np.concatenate(comm.allgather(m.node_ids[:m.n_owned]))
    assert np.array_equal(np.sort(nodes), np.arange(n_nodes))               # every node owned once
    assert np.array_equal(m.node_global[:m.n_owned], np.arange(m.node_start, m.node_start + m.n_owned))


@pytest.mark.mpi
@pytest.mark.parametrize("cell,p,n", [("quadrilateral", 1, (12, 9)), ("triangle", 2, (6, 5)),
                                      ("hexahedron", 2, (3, 4, 2)), ("tetrahedron", 1, (4, 3, 3))])
def test_box_generated_per_rank(comm, cell, p, n):
    from hpcmsm.fem.mesh import box_global, create_box

    m = create_box(comm, n, upper=[2.0, 1.0, 0.5][:len(n)], cell=cell, degree=p)
    g = box_global(n, upper=[2.0, 1.0, 0.5][:len(n)], cell=cell, degree=p)      # serial oracle
    N, C = len(g.points), len(g.cells)
    assert m.n_global == N and m.n_cells_global == C
    _owned_once(comm, m, C, N)
    # each rank holds only its block: cells within one box-cell layer of N/size, few ghost nodes
    nloc = len(m.cells)
    assert abs(nloc - C / comm.size) <= C / min(n) + 1, (nloc, C)
    if comm.size > 1:
        assert len(m.points) < 0.85 * N, (len(m.points), N)
    # geometry of every cell equals the replicated box (same cell ids)
    assert np.allclose(m.points[m.cells], g.points[g.cells[m.cell_ids]], atol=1e-14)
    # boundary facets and node sets
    for nm, tag in g.facet_names.items():
        assert comm.allreduce(int(np.sum(m.facet_tags == tag))) == int(np.sum(g.facet_tags == tag)), nm
        k = "xyz".index(nm[0])
        bound = 0.0 if nm.endswith("min") else [2.0, 1.0, 0.5][k]
        assert np.allclose(m.points[m.facets[m.facet_tags == tag]][..., k], bound)
        own = m.boundary_nodes(nm, owned_only=True)
        assert np.allclose(m.points[own][:, k], bound)
        assert comm.allreduce(len(own)) == int(np.sum(np.abs(g.points[:, k] - bound) < 1e-12))
    # sparsity: same number of nonzeros as the replicated distribution
    from hpcmsm.fem.mesh import distribute

    r = distribute(comm, g, "rcb")
    assert comm.allreduce(len(m.row_cols)) == comm.allreduce(len(r.row_cols))


@pytest.mark.mpi
def test_gmsh_ptscotch_distribution(comm):
    from hpcmsm.fem.mesh import read_gmsh, read_mesh

    g = read_gmsh(PLATE)                                                   # serial oracle
    N, C = len(g.points), len(g.cells)
    m = read_mesh(comm, PLATE, partitioner="ptscotch")
    _owned_once(comm, m, C, N)
    assert np.allclose(m.points, g.points[m.node_ids])
    assert np.array_equal(g.cells[m.cell_ids], m.node_ids[m.cells])
    counts = comm.allgather(len(m.cells))
    assert max(counts) <= 1.1 * C / comm.size, counts                      # PT-Scotch balance
    if comm.size > 1:
        assert len(m.points) < 0.8 * N, (len(m.points), N)                 # no full coordinate array
    # boundary tags: every tagged facet is on exactly one rank, with its tag and geometry
    for nm, tag in g.facet_names.items():
        assert comm.allreduce(int(np.sum(m.facet_tags == tag))) == int(np.sum(g.facet_tags == tag)), nm
        ref = np.unique(g.facets[g.facet_tags == tag])
        got = np.unique(np.concatenate(comm.allgather(m.node_ids[m.boundary_nodes(nm, owned_only=True)])))
        assert np.array_equal(got, ref), nm
    hole = m.points[m.facets[m.facet_tags == g.facet_names["hole"]]]
    assert np.allclose(np.linalg.norm(hole, axis=-1), 3.0)
    # facet cells point at the local cell containing the facet
    for f, c in zip(m.facets, m.facet_cells):
        assert set(f) <= set(m.cells[c])


@pytest.mark.mpi
def test_solve_on_distributed_gmsh_equals_serial(comm):
    from hpcmsm.fem import Dirichlet, solve_diffusion
    from hpcmsm.fem.mesh import read_mesh

    bcs = [Dirichlet("hole", 1.0), Dirichlet("right", lambda x: 0.1 * x[:, 1]), Dirichlet("top", 0.0)]
    opts = {"ksp_rtol": "1e-13", "ksp_atol": "1e-50"}
    kappa = np.array([[2.0, 0.3], [0.3, 1.0]])
    res = {}
    for part in ("ptscotch", "rcb"):
        m = read_mesh(comm, PLATE, degree=2, partitioner=part)
        r = solve_diffusion(m, kappa, 1.0, bcs, petsc_options=opts)
        res[part] = (m.node_ids[:m.n_owned], r.u.getArray(readonly=True).copy())
        r.u.destroy()
    ms = read_mesh(MPI.COMM_SELF, PLATE, degree=2)                        # serial reference on every rank
    rs = solve_diffusion(ms, kappa, 1.0, bcs, petsc_options=opts)
    ref = np.empty(ms.n_global)
    ref[ms.node_ids[:ms.n_owned]] = rs.u.getArray(readonly=True)
    rs.u.destroy()
    for part, (ids, u) in res.items():
        assert np.allclose(u, ref[ids], rtol=0, atol=1e-10 * np.abs(ref).max()), part


def test_dual_graph_and_quality_against_brute_force():
    from hpcmsm.fem.mesh import box_global, dual_graph, partition_quality, read_gmsh

    for g in (read_gmsh(PLATE), box_global((3, 2, 2), cell="tetrahedron", degree=2)):
        ip, ix = dual_graph(g.cell, g.degree, g.cells)
        # brute force: cells sharing d corner nodes (a facet) are neighbours
        corners = [set(c[:g.dim + 1]) if g.cell in ("triangle", "tetrahedron") else set(c) for c in g.cells]
        for i in range(len(g.cells)):
            nb = sorted(j for j in range(len(g.cells)) if j != i and len(corners[i] & corners[j]) == g.dim)
            assert list(ix[ip[i]:ip[i + 1]]) == nb
        part = (np.arange(len(g.cells)) % 2).astype(np.int32)
        q = partition_quality(ip, ix, part, 2)
        rows = np.repeat(np.arange(len(g.cells)), np.diff(ip))
        assert q["edge_cut"] == sum(1 for a, b in zip(rows, ix) if a < b and part[a] != part[b])


@pytest.mark.mpi
def test_graph_partition_beats_rcb_on_the_plate(comm):
    """Edge cut of PT-Scotch vs RCB on a finer plate-with-hole mesh (and both balanced)."""
    from hpcmsm.fem.mesh import dual_graph, graph_partition, partition_quality, plate_with_hole_global, rcb_partition
    from hpcmsm.parallel import block_range

    g = plate_with_hole_global(1.0, 0.3, 32, 16, "triangle")
    ip, ix = dual_graph(g.cell, g.degree, g.cells)
    s, e = block_range(len(g.cells), comm.size, comm.rank)
    part = np.concatenate(comm.allgather(graph_partition(comm, ip[s:e + 1] - ip[s], ix[ip[s]:ip[e]], len(g.cells))))
    rcb = rcb_partition(g.points[g.cells].mean(axis=1), comm.size)
    qg, qr = partition_quality(ip, ix, part, comm.size), partition_quality(ip, ix, rcb, comm.size)
    assert qg["imbalance"] <= 1.05 and qr["imbalance"] <= 1.01
    assert qg["edge_cut"] <= qr["edge_cut"], (qg, qr)


@pytest.mark.mpi
def test_parmetis_and_unknown_partitioners(comm):
    from hpcmsm.fem.mesh import read_mesh

    try:
        m = read_mesh(comm, PLATE, partitioner="parmetis")
        assert comm.allreduce(len(m.cells)) == m.n_cells_global             # a PETSc build with ParMETIS
    except InputError as e:
        assert "not available" in str(e)                                   # Debian's PETSc 3.18: no ParMETIS
    with pytest.raises(InputError, match="unknown partitioner"):
        read_mesh(comm, PLATE, partitioner="metis")
    with pytest.raises(InputError, match="does not exist"):
        read_mesh(comm, "/nonexistent.msh")


@pytest.mark.mpi
def test_natural_order_redistribution(comm):
    """to_natural stacks owned rows into natural blocks; from_natural gives every rank its rows back."""
    from hpcmsm.fem.mesh import from_natural, read_mesh, to_natural
    from hpcmsm.parallel import block_range

    m = read_mesh(comm, PLATE, partitioner="ptscotch")
    ids = m.node_ids[:m.n_owned]
    vals = np.column_stack([ids * 1.5, -ids.astype(float)])
    blk = to_natural(comm, ids, vals, m.n_global)
    s, e = block_range(m.n_global, comm.size, comm.rank)
    assert np.array_equal(blk[:, 0], np.arange(s, e) * 1.5)          # natural order, this rank's block
    assert np.array_equal(from_natural(comm, ids, blk, m.n_global), vals)
    # cells too
    cb = to_natural(comm, m.cell_ids, m.cell_ids * 2, m.n_cells_global)
    s, e = block_range(m.n_cells_global, comm.size, comm.rank)
    assert np.array_equal(cb, np.arange(s, e) * 2)
