"""Matrix assembly straight into PETSc's AIJ storage (FunctionSpace.create_matrix/assemble_matrix).

Oracle: the matrix–vector product A x against Σ_e P_eᵀ K_e P_e x summed through the (independent)
vector assembly, with element matrices and x defined from natural ids/coordinates so that the
answer is the same at 1, 2 and 3 ranks."""
import numpy as np
import pytest

from hpcmsm.fem import FunctionSpace, create_box

pytestmark = pytest.mark.mpi


def _element_matrices(sp):
    """Deterministic, non-symmetric element matrices keyed by the natural cell id."""
    cid = sp.mesh.cell_ids.astype(float)
    k = np.arange(sp.ndofe, dtype=float)
    return np.sin(cid[:, None, None] * 0.37 + k[None, :, None] * 1.3 + k[None, None, :] ** 1.5 * 0.7)


def _x(sp):
    def f(X):
        return np.stack([np.cos(3 * X[:, 0] + i) * (1 + X[:, 1] ** 2) + X[:, -1] * i for i in range(sp.bs)], 1)
    return sp.interpolate(f)


def _reference(sp, Ke, x):
    xl = sp.local_array(x)
    y = sp.create_vec()
    return sp.assemble_vector(y, np.einsum("cab,cb->ca", Ke, xl[sp.cell_dofs]))


@pytest.mark.parametrize("cell,n,bs", [("hexahedron", (4, 3, 5), 3), ("triangle", (6, 5), 1),
                                       ("tetrahedron", (3, 2, 3), 3), ("quadrilateral", (5, 4), 2)])
def test_matvec_against_vector_assembly(comm, cell, n, bs):
    mesh = create_box(comm, n, cell=cell)
    sp = FunctionSpace(mesh, bs)
    Ke = _element_matrices(sp)
    A = sp.create_matrix()
    assert A.getBlockSize() == bs
    assert A.getAttr("_hpcmsm_values") is not None          # the zero-copy path is active
    sp.assemble_matrix(A, Ke)
    x = _x(sp)
    y, yref = x.duplicate(), _reference(sp, Ke, x)
    A.mult(x, y)
    y.axpy(-1.0, yref)
    assert y.norm() <= 1e-12 * yref.norm()
    # a matrix not created by the space (no shared buffer) goes through MatSetValuesCSR: same result
    B = A.duplicate()
    assert B.getAttr("_hpcmsm_values") is None
    sp.assemble_matrix(B, [(sl, Ke[sl]) for sl in sp.chunks()])
    B.axpy(-1.0, A)
    assert B.norm() <= 1e-13 * A.norm()
    for o in (A, B, x, y, yref):
        o.destroy()


def test_reassembly_is_seen_by_the_solver(comm):
    """Values written into the shared buffer must zero the old ones and bump the matrix state, so a
    KSP reusing the operator rebuilds its preconditioner (u halves when K doubles)."""
    from hpcmsm.fem import forms
    from hpcmsm.fem.solvers import make_ksp

    mesh = create_box(comm, (6, 5), cell="quadrilateral")
    sp = FunctionSpace(mesh, 1)
    K = np.concatenate([forms.diffusion_matrix(g[1], 1.0, g[2]) + forms.mass_matrix(sp.N, 1.0, g[2])
                        for g in (sp.geometry(sl) for sl in sp.chunks())])
    A = sp.create_matrix()
    ksp = make_ksp(comm, A, "test_asm_", {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": "1e-12"})
    b = _x(sp)
    u1, u2 = b.duplicate(), b.duplicate()
    sp.assemble_matrix(A, K)
    ksp.solve(b, u1)
    sp.assemble_matrix(A, 2.0 * K)
    ksp.solve(b, u2)
    u2.scale(2.0)
    u2.axpy(-1.0, u1)
    assert u2.norm() <= 1e-9 * u1.norm()
    for o in (ksp, A, b, u1, u2):
        o.destroy()


@pytest.mark.parametrize("distort", [False, True])
def test_identical_cell_fast_path_matches_general(comm, distort):
    """ElasticityProblem computes one element matrix when all cells are translates (structured box)
    and the material is isotropic LinearElastic; the matrix must equal the general per-cell path
    (forms.stiffness_small with the full tangent per point); a distorted mesh must not be detected."""
    from hpcmsm.fem import ElasticityProblem, forms
    from hpcmsm.materials.base import isotropic_stiffness
    from hpcmsm.materials import LinearElastic

    mesh = create_box(comm, (4, 3, 3), cell="hexahedron")
    if distort:
        X = mesh.points
        X[:, 0] += 0.05 * np.sin(3 * X[:, 1]) * np.sin(2 * X[:, 2])
    prob = ElasticityProblem(mesh, LinearElastic.isotropic(3, E=2.0, nu=0.3))
    sp = prob.space
    assert sp.identical_cells() is (not distort)
    prob.evaluate(sp.local_array(prob.u), want_matrix=True)
    C = isotropic_stiffness(3, E=2.0, nu=0.3)
    A = sp.create_matrix()

    def general():
        for sl in sp.chunks():
            _, dNdx, w = sp.geometry(sl)
            yield sl, forms.stiffness_small(forms.strain_operator(dNdx), np.broadcast_to(C, w.shape + C.shape), w)
    sp.assemble_matrix(A, general())
    A.axpy(-1.0, prob.A)
    assert A.norm() <= 1e-12 * prob.A.norm()
    A.destroy()
    prob.destroy()
