"""One-pass assembly of matrix + right-hand side + symmetric Dirichlet conditions
(FunctionSpace.assemble_system, ElasticBlock with a body force).

Oracle: the unconstrained assembly (matrix by FunctionSpace.assemble_matrix, load vector by
forms.source_vector + assemble_vector, i.e. the numpy kernels) followed by PETSc's
MatZeroRowsColumns(rows, diag, x = g, b), which applies the same elimination independently
(b_free -= A[free, bc] g, b_bc = diag g).  Matrix, right-hand side and solution must agree to
1e-12, with the compiled kernels and with the numpy fallback, on a distorted mesh (general
geometry), for the isotropic and the per-point-tangent element matrices, at 1, 2 and 3 ranks;
the eliminated matrix must be symmetric."""
import numpy as np
import pytest

from hpcmsm.fem import FunctionSpace, _kernels, create_box, forms
from hpcmsm.fem.bcs import Dirichlet, dirichlet_dofs
from hpcmsm.fem.space import ElasticBlock

pytestmark = pytest.mark.mpi

FLAGS = ["0", "1"] if _kernels.HAVE_NUMBA else ["0"]


def _distort(mesh):
    X = mesh.points
    X[:, 0] += 0.04 * np.sin(3 * X[:, 1] + 1) * (np.cos(2 * X[:, -1]) if X.shape[1] == 3 else 1.0)
    X[:, 1] += 0.03 * np.sin(2 * X[:, 0])


def _rel(A, B):
    C = A.copy()
    C.axpy(-1.0, B)
    r = C.norm() / B.norm()
    C.destroy()
    return r


def _vrel(a, b):
    c = a.copy()
    c.axpy(-1.0, b)
    r = c.norm() / b.norm()
    c.destroy()
    return r


def _solve(comm, A, b):
    from hpcmsm.fem.solvers import make_ksp

    ksp = make_ksp(comm, A, "test_sys_", {"ksp_type": "cg", "pc_type": "jacobi", "ksp_rtol": "1e-15",
                                          "ksp_atol": "1e-300", "ksp_max_it": "5000"})
    x = b.duplicate()
    ksp.solve(b, x)
    ksp.destroy()
    return x


def _case(comm, cell, n, kind, force):
    mesh = create_box(comm, n, cell=cell)
    _distort(mesh)
    d = mesh.dim
    sp = FunctionSpace(mesh, d, chunk=5)
    m = 3 if d == 2 else 6
    lam, mu = 1.2, 0.7
    # g varies in space, so the lifting b -= A[:, bc] g is exercised; two conditions overlap on an edge
    def g(x):
        return np.stack([0.1 * x[:, 1], -0.05 * x[:, 1] ** 2] + ([0.02 * x[:, 2]] if d == 3 else []), 1)
    bcs = [Dirichlet("xmin", g), Dirichlet("ymax", 0.03, components=[1])]
    dofs, vals = dirichlet_dofs(sp, bcs)
    if kind == "iso":
        blk = dict(lam=lam, mu=mu)
    else:   # a varying symmetric positive tangent per point, keyed by the natural cell id
        from hpcmsm.materials.base import isotropic_stiffness
        cid = mesh.cell_ids.astype(float)
        R = np.sin(cid[:, None, None, None] + np.arange(sp.nq)[None, :, None, None] * 0.7
                   + np.arange(m)[None, None, :, None] * 1.1 + np.arange(m)[None, None, None, :] * 0.3)
        blk = dict(D=isotropic_stiffness(d, lam=lam, mu=mu) + 0.1 * np.matmul(R, np.swapaxes(R, -1, -2)))
    if force == "const":
        f = np.array([0.3, -1.0, 0.5][:d])
    else:   # per point: a smooth function of the quadrature-point position
        xq = sp.quadrature_points()
        f = np.stack([np.sin(2 * xq[..., k] + k) for k in range(d)], -1)
    return mesh, sp, dofs, vals, blk, f


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("cell,n,kind,force", [
    ("hexahedron", (3, 4, 3), "iso", "const"),         # the Q1 hexahedron kernel
    ("hexahedron", (3, 2, 3), "tangent", "point"),
    ("tetrahedron", (2, 3, 2), "iso", "point"),         # generic isotropic kernel
    ("quadrilateral", (5, 4), "iso", "const"),
    ("triangle", (4, 5), "tangent", "const")])
def test_system_equals_zero_rows_columns(comm, monkeypatch, flag, cell, n, kind, force):
    monkeypatch.setenv("HPCMSM_NUMBA", flag)
    mesh, sp, dofs, g, blk, f = _case(comm, cell, n, kind, force)
    cells = np.arange(sp.ncells)
    half = len(cells) // 2
    diag = 2.5

    def blocks(with_f):
        # two blocks (any split of the cells works; the tangent must follow its cells)
        out = []
        for c in (cells[:half], cells[half:]):
            kw = dict(blk) if "lam" in blk else dict(D=blk["D"][c])
            if with_f:
                kw["f"] = f if f.ndim == 1 else f[c]
            out.append(ElasticBlock(c, **kw))
        return out

    # one pass
    A1, b1 = sp.create_matrix(), sp.create_vec()
    sp.assemble_system(A1, b1, blocks(True), bc_dofs=dofs, bc_values=g, diag=diag)
    # reference: unconstrained matrix, numpy load vector, then PETSc's elimination
    A0, b0 = sp.create_matrix(), sp.create_vec()
    sp.assemble_matrix(A0, blocks(False))

    def fblocks():
        for sl in sp.chunks():
            x, dNdx, w = sp.geometry(sl)
            ff = np.broadcast_to(f if f.ndim == 1 else f[sl], x.shape[:2] + (mesh.dim,))
            yield sl, forms.source_vector(sp.N, np.ascontiguousarray(ff), w)
    sp.assemble_vector(b0, fblocks())
    x = sp.create_vec()
    x.getArray()[dofs] = g
    A0.zeroRowsColumns(sp.owned_global_rows(dofs), diag, x, b0)
    assert comm.allreduce(len(dofs)) > 0 and A0.norm() > 0 and b0.norm() > 0
    assert _rel(A1, A0) <= 1e-12
    assert _vrel(b1, b0) <= 1e-12
    assert A1.isSymmetric(1e-12 * A1.norm())
    # ghost values of b are up to date (forward scatter done)
    loc = sp.local_array(b1)
    with b1.localForm() as lf:
        assert np.array_equal(lf.getArray(readonly=True), loc)
    u1, u0 = _solve(comm, A1, b1), _solve(comm, A0, b0)
    assert _vrel(u1, u0) <= 1e-12
    # the constrained values are reproduced exactly by the solve (A row = diag e_r, b = diag g)
    assert np.allclose(u1.getArray(readonly=True)[dofs], g, rtol=0, atol=1e-12)
    # re-assembly into the same objects gives the same system (buffers zeroed first)
    sp.assemble_system(A1, b1, blocks(True), bc_dofs=dofs, bc_values=g, diag=diag)
    assert _rel(A1, A0) <= 1e-12 and _vrel(b1, b0) <= 1e-12
    for o in (A0, A1, b0, b1, x, u0, u1):
        o.destroy()


@pytest.mark.parametrize("flag", FLAGS)
def test_generic_blocks_with_bcs(comm, monkeypatch, flag):
    """(cells, Ke, Fe) blocks (any element matrices, here non-symmetric) with Dirichlet conditions
    equal MatZeroRowsColumns on the unconstrained assembly (same matrix and lifted vector)."""
    monkeypatch.setenv("HPCMSM_NUMBA", flag)
    mesh = create_box(comm, (3, 3, 2), cell="hexahedron")
    sp = FunctionSpace(mesh, 3, chunk=4)
    cid = mesh.cell_ids.astype(float)
    k = np.arange(sp.ndofe, dtype=float)
    Ke = np.sin(cid[:, None, None] * 0.37 + k[None, :, None] * 1.3 + k[None, None, :] ** 1.5 * 0.7)
    Ke += 30 * np.eye(sp.ndofe)
    Fe = np.cos(cid[:, None] + k[None, :])
    dofs, g = dirichlet_dofs(sp, [Dirichlet("zmin", lambda x: np.stack([x[:, 0], x[:, 1], 1 + 0 * x[:, 0]], 1))])
    A1, b1 = sp.create_matrix(), sp.create_vec()
    sp.assemble_system(A1, b1, [(sl, Ke[sl], Fe[sl]) for sl in sp.chunks()], bc_dofs=dofs, bc_values=g)
    A0, b0 = sp.create_matrix(), sp.create_vec()
    sp.assemble_matrix(A0, Ke)
    sp.assemble_vector(b0, Fe)
    x = sp.create_vec()
    x.getArray()[dofs] = g
    A0.zeroRowsColumns(sp.owned_global_rows(dofs), 1.0, x, b0)
    assert _rel(A1, A0) <= 1e-12 and _vrel(b1, b0) <= 1e-12
    for o in (A0, A1, b0, b1, x):
        o.destroy()


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("aniso", [False, True])
def test_problem_tangent_has_bcs_eliminated(comm, monkeypatch, flag, aniso):
    """ElasticityProblem eliminates its Dirichlet rows/columns inside the assembly pass: its matrix
    equals the unconstrained assembly of the same tangent followed by zeroRowsColumns(rows, 1)."""
    from hpcmsm.fem import ElasticityProblem
    from hpcmsm.materials import LinearElastic
    from hpcmsm.materials.base import isotropic_stiffness

    monkeypatch.setenv("HPCMSM_NUMBA", flag)
    mesh = create_box(comm, (3, 4, 2), cell="hexahedron")
    _distort(mesh)
    C = isotropic_stiffness(3, E=2.0, nu=0.3)
    if aniso:                                   # not isotropic: the per-point tangent kernel
        C = C + 0.2 * np.outer(np.arange(1, 7), np.arange(1, 7)) / 36
    prob = ElasticityProblem(mesh, LinearElastic(C), dirichlet=[Dirichlet("xmin", 0.0),
                                                                Dirichlet("ymax", 0.1, components=[1])])
    prob.evaluate(prob.space.local_array(prob.u), want_matrix=True)
    sp = prob.space
    A = sp.create_matrix()
    sp.assemble_matrix(A, [ElasticBlock(np.arange(sp.ncells), D=np.broadcast_to(C, (sp.ncells, sp.nq, 6, 6)))])
    A.zeroRowsColumns(prob.rows, 1.0)
    assert comm.allreduce(len(prob.rows)) > 0
    assert _rel(prob.A, A) <= 1e-12
    A.destroy()
    prob.destroy()


@pytest.mark.skipif(not _kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("cell,n", [("hexahedron", (3, 2, 3)), ("tetrahedron", (2, 2, 2)), ("triangle", (4, 3))])
@pytest.mark.parametrize("symmetric", [True, False])
def test_tangent_kernel_any_symmetry(comm, monkeypatch, cell, n, symmetric):
    """Per-point tangent kernels (Q1-hex and generic) equal forms.stiffness_small (numpy) for
    symmetric tangents (upper-triangle shortcut) and non-symmetric ones (full element matrix)."""
    mesh = create_box(comm, n, cell=cell)
    _distort(mesh)
    d = mesh.dim
    sp = FunctionSpace(mesh, d, chunk=6)
    m = 3 if d == 2 else 6
    cid = mesh.cell_ids.astype(float)
    R = np.sin(cid[:, None, None, None] * 0.9 + np.arange(sp.nq)[None, :, None, None] * 0.7
               + np.arange(m)[None, None, :, None] * 1.1 + np.arange(m)[None, None, None, :] ** 1.3 * 0.3)
    D = 2 * np.eye(m) + 0.3 * (R + np.swapaxes(R, -1, -2) if symmetric else R)
    mats = []
    for flag in ("0", "1"):
        monkeypatch.setenv("HPCMSM_NUMBA", flag)
        A = sp.create_matrix()
        sp.assemble_matrix(A, [ElasticBlock(np.arange(sp.ncells), D=D)])
        mats.append(A)
    assert mats[0].norm() > 0
    assert _rel(mats[1], mats[0]) <= 1e-12
    assert bool(mats[1].isSymmetric(1e-12 * mats[1].norm())) is symmetric
    for A in mats:
        A.destroy()
