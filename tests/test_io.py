"""Parallel HDF5 round trips, XDMF sidecars, atomic checkpoints and restart on another rank count."""
import os
import sys

import numpy as np
import pytest

from hpcmsm.io import Checkpoint, FieldWriter, PointCloud, StructuredGrid, UnstructuredMesh, open_h5, read_array, stamp, write_array
from hpcmsm.parallel import block_range

HERE = os.path.dirname(os.path.abspath(__file__))


def _global_data(n=37):
    rows = np.arange(n * 3, dtype=float).reshape(n, 3) ** 1.5
    grid = np.add.outer(np.arange(11.0), 100 * np.arange(13.0))  # (ny, nx) natural order
    return rows, grid


@pytest.mark.mpi
def test_hdf5_roundtrip_rows_and_boxes(comm, shared_tmp):
    rows, grid = _global_data()
    s, e = block_range(rows.shape[0], comm.size, comm.rank)
    ys, ye = block_range(grid.shape[0], comm.size, comm.rank)  # slab decomposition of a 2D grid
    path = os.path.join(shared_tmp, "rt.h5")
    with open_h5(path, "w", comm) as f:
        stamp(f, comm=comm, input_text="a = 1")
        write_array(f, "rows", rows[s:e], comm, unit="m", description="row block")
        write_array(f, "grid", grid[ys:ye, 2:], comm, start=(ys, 2), global_shape=grid.shape)
        # a rank with nothing to write still takes part
        write_array(f, "sparse", rows[:5] if comm.rank == 0 else rows[:0], comm)
    with open_h5(path, "r", comm) as f:
        assert np.array_equal(read_array(f, "rows"), rows)
        assert np.array_equal(read_array(f, "rows", s, e), rows[s:e])
        g = read_array(f, "grid")
        assert np.array_equal(g[:, 2:], grid[:, 2:]) and np.all(g[:, :2] == 0)
        assert np.array_equal(read_array(f, "sparse"), rows[:5])
        assert f["rows"].attrs["unit"] == "m" and f.attrs["creator"] == "hpcmsm"
        assert f.attrs["mpi_size"] == comm.size and f.attrs["input"] == "a = 1"


def _writer_script(path):
    return f"""
import numpy as np, sys
from mpi4py import MPI
sys.path.insert(0, {HERE!r})
from test_io import _global_data
from hpcmsm.io import open_h5, write_array
from hpcmsm.parallel import block_range
comm = MPI.COMM_WORLD
rows, grid = _global_data()
s, e = block_range(rows.shape[0], comm.size, comm.rank)
ys, ye = block_range(grid.shape[0], comm.size, comm.rank)
with open_h5({path!r}, "w", comm) as f:
    write_array(f, "rows", rows[s:e], comm)
    write_array(f, "grid", grid[ys:ye], comm, start=(ys, 0), global_shape=grid.shape)
"""


def test_hdf5_identical_content_at_1_2_3_ranks(tmp_path, mpirun):
    import h5py

    contents = []
    for n in (1, 2, 3):
        path = str(tmp_path / f"f{n}.h5")
        r = mpirun(n, ["-c", _writer_script(path)], timeout=120)
        assert r.returncode == 0, r.stderr
        with h5py.File(path, "r") as f:
            contents.append({k: f[k][...] for k in f})
    for c in contents[1:]:
        assert c.keys() == contents[0].keys()
        for k in c:
            assert np.array_equal(c[k], contents[0][k])


@pytest.mark.mpi
def test_field_writer_structured_unstructured_points(comm, shared_tmp):
    import h5py

    ny, nx = 6, 9
    ys, ye = block_range(ny, comm.size, comm.rank)
    grid = StructuredGrid((nx, ny), origin=(0, 0), spacing=(0.5, 0.25))
    w = FieldWriter(shared_tmp, comm, "pf", grid)
    for step in range(3):
        c = np.full((ye - ys, nx), float(step))
        assert w.write(step, 0.1 * step, {"c": (c, (ys, 0))})
    assert not w.write(2, 0.2, {"c": (np.zeros((ye - ys, nx)), (ys, 0))})  # never overwritten
    # unstructured: two triangles, nodes block-distributed
    pts = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    cells = np.array([[0, 1, 2], [0, 2, 3]])
    ps, pe = block_range(4, comm.size, comm.rank)
    cs, ce = block_range(2, comm.size, comm.rank)
    wm = FieldWriter(shared_tmp, comm, "mesh", UnstructuredMesh("triangle", pts[ps:pe], cells[cs:ce]))
    wm.write(0, 0.0, {"T": pts[ps:pe, 0], "q": dict(data=np.ones((ce - cs, 3)), center="Cell", unit="W/m2")})
    wp = FieldWriter(shared_tmp, comm, "atoms", PointCloud(2))
    wp.write(0, 0.0, {"e": pts[ps:pe, 1]}, points=pts[ps:pe])
    comm.Barrier()
    if comm.rank == 0:
        x = open(os.path.join(shared_tmp, "pf.xdmf")).read()
        assert x.count("<Time Value=") == 3 and "2DCoRectMesh" in x and 'Dimensions="6 9"' in x
        with h5py.File(os.path.join(shared_tmp, "pf_000002.h5")) as f:
            assert np.all(f["fields/c"][...] == 2.0) and f.attrs["time"] == pytest.approx(0.2)
        xm = open(os.path.join(shared_tmp, "mesh.xdmf")).read()
        assert 'TopologyType="Triangle"' in xm and 'Center="Cell"' in xm and 'AttributeType="Vector"' in xm
        assert "Polyvertex" in open(os.path.join(shared_tmp, "atoms.xdmf")).read()
        import xml.etree.ElementTree as ET

        for name in ("pf", "mesh", "atoms"):
            ET.parse(os.path.join(shared_tmp, f"{name}.xdmf"))   # well-formed XML


@pytest.mark.mpi
def test_checkpoint_atomic_and_rank_independent(comm, shared_tmp):
    n = 23
    s, e = block_range(n, comm.size, comm.rank)
    full = np.arange(n * 2.0).reshape(n, 2)
    ck = Checkpoint(os.path.join(shared_tmp, "c.h5"), comm)
    assert not ck.exists()
    ck.save(7, {"u": full[s:e]}, scalars={"t": 0.5}, meta={"k": [1, 2]})
    assert ck.exists() and not os.path.exists(ck.path + ".tmp")
    with ck.load() as d:
        assert d.step == 7 and d.scalars["t"] == 0.5 and d.meta == {"k": [1, 2]}
        # read back with a different decomposition (reverse order of ranks)
        r = comm.size - 1 - comm.rank
        s2, e2 = block_range(n, comm.size, r)
        assert np.array_equal(d.read("u", s2, e2), full[s2:e2])


def _run_loop(mpirun, n, outdir, *extra):
    r = mpirun(n, [os.path.join(HERE, "drivers", "ckpt_loop.py"), outdir, *extra], timeout=120)
    return r


def _snapshot(outdir):
    import h5py

    steps = {}
    for f in sorted(os.listdir(outdir)):
        if f.startswith("heat_") and f.endswith(".h5"):
            with h5py.File(os.path.join(outdir, f)) as h:
                steps[f] = h["fields/u"][...]
    hist = open(os.path.join(outdir, "history.csv")).read()
    return steps, hist


@pytest.mark.parametrize("n_first, n_restart", [(2, 2), (2, 3), (3, 1)])
def test_killed_run_restarts_identically(tmp_path, mpirun, n_first, n_restart):
    ref = str(tmp_path / "ref")
    r = _run_loop(mpirun, 2, ref)
    assert r.returncode == 0, r.stderr
    out = str(tmp_path / "killed")
    r = _run_loop(mpirun, n_first, out, "--kill-at", "8")
    assert r.returncode != 0  # killed at step 8; last checkpoint at step 6
    files_before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out) if f.startswith("heat_0")}
    assert "heat_000008.h5" in files_before and "heat_000012.h5" not in files_before
    r = _run_loop(mpirun, n_restart, out, "--restart")
    assert r.returncode == 0, r.stderr
    s_ref, h_ref = _snapshot(ref)
    s_out, h_out = _snapshot(out)
    assert s_ref.keys() == s_out.keys()
    for k in s_ref:
        np.testing.assert_allclose(s_out[k], s_ref[k], rtol=1e-13, atol=1e-15)
    if n_first == 2:  # rows up to the checkpoint are kept verbatim (same rank count: bitwise)
        assert h_out.splitlines()[:7] == h_ref.splitlines()[:7]
    np.testing.assert_allclose(np.loadtxt(h_out.splitlines()[1:], delimiter=","),
                               np.loadtxt(h_ref.splitlines()[1:], delimiter=","), rtol=1e-13)
    # (sums over ranks differ in the last bit between rank counts: compared to 1e-13)
    # earlier output is never overwritten
    for f, t in files_before.items():
        assert os.path.getmtime(os.path.join(out, f)) == t
