"""Compiled (numba) assembly kernels against the pure-numpy path (HPCMSM_NUMBA=0).

Oracle: the numpy path (np.bincount scatter, forms.stiffness_* kernels), which
tests/fem/test_fem_assembly.py checks against an independent matrix–vector product.  Both paths run
on the same partition in the same process; at 1, 2 and 3 ranks (interface rows go through
PETSc's stash in both)."""
import numpy as np
import pytest

from hpcmsm.fem import FunctionSpace, _kernels, create_box
from hpcmsm.fem.space import ElasticBlock

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(not _kernels.HAVE_NUMBA, reason="numba not installed")]


def _assemble(sp, items_fn, monkeypatch, numba: bool):
    monkeypatch.setenv("HPCMSM_NUMBA", "1" if numba else "0")
    assert _kernels.enabled() is numba
    A = sp.create_matrix()
    sp.assemble_matrix(A, items_fn())
    return A


def _rel_diff(A, B):
    C = A.copy()
    C.axpy(-1.0, B)
    d, n = C.norm(), B.norm()
    C.destroy()
    return d / n


def _distort(mesh):
    X = mesh.points
    X[:, 0] += 0.04 * np.sin(3 * X[:, 1] + 1) * (np.cos(2 * X[:, -1]) if X.shape[1] == 3 else 1.0)
    X[:, 1] += 0.03 * np.sin(2 * X[:, 0])


def _element_matrices(sp):
    """Deterministic non-symmetric element matrices keyed by the natural cell id."""
    cid = sp.mesh.cell_ids.astype(float)
    k = np.arange(sp.ndofe, dtype=float)
    return np.sin(cid[:, None, None] * 0.37 + k[None, :, None] * 1.3 + k[None, None, :] ** 1.5 * 0.7)


@pytest.mark.parametrize("cell,deg,n,bs", [
    ("triangle", 1, (5, 4), 1), ("triangle", 2, (3, 3), 2),
    ("tetrahedron", 1, (3, 2, 2), 3), ("tetrahedron", 2, (2, 2, 1), 1),
    ("quadrilateral", 1, (5, 4), 2), ("quadrilateral", 2, (3, 3), 1),
    ("hexahedron", 1, (3, 3, 2), 3), ("hexahedron", 2, (2, 1, 2), 2)])
def test_scatter_matches_numpy(comm, monkeypatch, cell, deg, n, bs):
    mesh = create_box(comm, n, cell=cell, degree=deg)
    sp = FunctionSpace(mesh, bs, chunk=7)               # several chunks, also index-array blocks
    Ke = _element_matrices(sp)
    idx = np.arange(sp.ncells)[::-1].copy()
    half = len(idx) // 2

    def items():
        yield from ((sl, Ke[sl]) for sl in sp.chunks())
        yield idx[:half], 0.5 * Ke[idx[:half]]          # index-array blocks, any order
        yield idx[half:], 0.5 * Ke[idx[half:]]
    A0 = _assemble(sp, items, monkeypatch, False)
    A1 = _assemble(sp, items, monkeypatch, True)
    assert A0.norm() > 0
    assert _rel_diff(A1, A0) <= 1e-12
    A0.destroy(), A1.destroy()


@pytest.mark.parametrize("cell,deg,n", [("triangle", 1, (5, 4)), ("triangle", 2, (3, 3)),
                                        ("tetrahedron", 1, (3, 2, 2)), ("tetrahedron", 2, (2, 2, 1)),
                                        ("quadrilateral", 1, (5, 4)), ("quadrilateral", 2, (3, 2)),
                                        ("hexahedron", 1, (3, 3, 2)), ("hexahedron", 2, (2, 1, 2))])
def test_fused_elasticity_matches_numpy(comm, monkeypatch, cell, deg, n):
    """Fused geometry + element matrix + scatter (isotropic and per-point tangent) on a distorted
    mesh equals geometry + forms.stiffness_isotropic / stiffness_small + bincount scatter."""
    from hpcmsm.materials.base import isotropic_stiffness

    mesh = create_box(comm, n, cell=cell, degree=deg)
    _distort(mesh)
    d = mesh.dim
    sp = FunctionSpace(mesh, d, chunk=5)
    m = 3 if d == 2 else 6
    C = isotropic_stiffness(d, E=2.0, nu=0.3)
    lam, mu = 2.0 * 0.3 / (1.3 * (1 - 2 * 0.3)), 2.0 / 2.6
    # a varying, symmetric positive tangent per point (keyed by natural cell id: rank independent)
    cid = mesh.cell_ids.astype(float)
    R = np.sin(cid[:, None, None, None] + np.arange(sp.nq)[None, :, None, None] * 0.7
               + np.arange(m)[None, None, :, None] * 1.1 + np.arange(m)[None, None, None, :] * 0.3)
    D = C + 0.1 * np.matmul(R, np.swapaxes(R, -1, -2))
    cells = np.arange(sp.ncells)
    odd = cells[1::2]

    def items():
        yield ElasticBlock(cells[::2], lam=lam, mu=mu)
        yield ElasticBlock(odd, D=D[odd])

    A0 = _assemble(sp, items, monkeypatch, False)
    A1 = _assemble(sp, items, monkeypatch, True)
    assert A0.norm() > 0
    assert _rel_diff(A1, A0) <= 1e-12
    # isotropic λ, μ and the full isotropic tangent are the same operator
    Ci = np.broadcast_to(C, (sp.ncells, sp.nq, m, m))
    A2 = _assemble(sp, lambda: [ElasticBlock(cells, lam=lam, mu=mu)], monkeypatch, True)
    A3 = _assemble(sp, lambda: [ElasticBlock(cells, D=Ci)], monkeypatch, True)
    assert _rel_diff(A3, A2) <= 1e-12
    for A in (A0, A1, A2, A3):
        A.destroy()


def test_problem_matrix_same_with_and_without_numba(comm, monkeypatch):
    """ElasticityProblem (general path, distorted mesh) assembles the same tangent either way."""
    from hpcmsm.fem import ElasticityProblem
    from hpcmsm.materials import LinearElastic

    mats = []
    for flag in ("0", "1"):
        monkeypatch.setenv("HPCMSM_NUMBA", flag)
        mesh = create_box(comm, (3, 2, 3), cell="hexahedron")
        _distort(mesh)
        prob = ElasticityProblem(mesh, LinearElastic.isotropic(3, E=2.0, nu=0.3))
        prob.evaluate(prob.space.local_array(prob.u), want_matrix=True)
        mats.append(prob.A.copy())
        prob.destroy()
    assert mats[0].norm() > 0
    assert _rel_diff(mats[1], mats[0]) <= 1e-12
    for A in mats:
        A.destroy()


@pytest.mark.parametrize("cell,deg,n,bs", [("triangle", 2, (4, 3), 2), ("tetrahedron", 1, (3, 2, 2), 3),
                                           ("quadrilateral", 1, (5, 4), 1), ("hexahedron", 2, (2, 2, 1), 3)])
def test_structure_matches_numpy(comm, monkeypatch, cell, deg, n, bs):
    """Compiled sparsity build (row-local binary search) gives the numpy build's arrays exactly."""
    mesh = create_box(comm, n, cell=cell, degree=deg)
    st = []
    for flag in ("0", "1"):
        monkeypatch.setenv("HPCMSM_NUMBA", flag)
        st.append(FunctionSpace(mesh, bs)._structure())
    a, b = st
    for k in ("cb", "own", "sd", "so", "dpos"):
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    for k in ("diag", "off"):
        for x, y in zip(a[k], b[k]):
            assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert (a["nnz_d"], a["nnz"], a["VT"]) == (b["nnz_d"], b["nnz"], b["VT"])
