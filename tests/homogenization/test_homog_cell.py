"""Cell problems: analytical solutions (homogeneous, laminates), ordering of the boundary
conditions, bounds, checkerboard/Keller, correctors and the Newton/condensation path.

Every test runs at 1, 2 and 3 ranks (``./run test``) and compares with rank-independent oracles
(closed forms, or the same problem solved on ``COMM_SELF``)."""
import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.homogenization import bounds as bd
from hpcmsm.homogenization import microstructure as ms
from hpcmsm.homogenization.phases import LinearConductor, cubic_stiffness, random_rotations, rotate_tensor
from hpcmsm.homogenization.rve import RVEProblem
from hpcmsm.materials.base import LinearElastic, isotropic_stiffness

pytestmark = pytest.mark.mpi
BCS = ("periodic", "kubc", "tubc")


def _petsc():
    from hpcmsm.parallel import init_petsc

    init_petsc()


def phases_for(kind, dim, tensors):
    return [LinearConductor(T) if kind == "conductivity" else LinearElastic(T) for T in tensors]


def effective(micro, tensors, bc, comm, kind, **kw):
    _petsc()
    p = RVEProblem(micro, phases_for(kind, dim := micro.dim, tensors), bc, comm, kind=kind, **kw)
    C, info = p.effective_tensor()
    p.destroy()
    return C, info


def two_tensors(kind, dim, contrast=10.0):
    if kind == "conductivity":
        return [np.eye(dim), contrast * np.eye(dim)]
    return [isotropic_stiffness(dim, 1.0, 0.3), isotropic_stiffness(dim, contrast, 0.2)]


def assert_spd(C, tol=1e-8):
    assert np.allclose(C, C.T, rtol=0, atol=tol * np.abs(C).max()), C
    assert np.linalg.eigvalsh(0.5 * (C + C.T)).min() > 0


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind", ["conductivity", "elasticity"])
def test_homogeneous_cell_returns_input_tensor(comm, dim, kind):
    # anisotropic input (rotated cubic crystal / rotated orthotropic conductor) for every BC
    R = random_rotations(np.random.default_rng(3), 1, dim)[0]
    if kind == "conductivity":
        T = rotate_tensor(np.diag([1.0, 2.5, 4.0][:dim]), R, kind)
    elif dim == 3:
        T = rotate_tensor(cubic_stiffness(170.0, 124.0, 75.0), R, kind)
    else:
        T = rotate_tensor(isotropic_stiffness(2, 2.0, 0.3) + np.diag([1.0, 0, 0]), R, kind)
    shape = (5, 4) if dim == 2 else (4, 3, 3)
    for bc in BCS:
        C, info = effective(ms.homogeneous(shape), [T], bc, comm, kind)
        assert np.allclose(C, T, rtol=1e-8, atol=1e-9 * np.abs(T).max()), (bc, C - T)
        assert max(info.hill_mandel) <= 1e-10


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind", ["conductivity", "elasticity"])
def test_laminate_periodic_exact_and_bracketed(comm, dim, kind):
    axis = 1
    shape = (6, 8) if dim == 2 else (4, 8, 4)
    micro = ms.laminate(shape, [0.25, 0.75], axis=axis)
    rng = np.random.default_rng(7)
    T = two_tensors(kind, dim)
    if kind == "elasticity" and dim == 3:   # anisotropic layers: a rotated cubic crystal
        T[1] = rotate_tensor(cubic_stiffness(17.0, 12.4, 7.5), random_rotations(rng, 1, 3)[0], kind)
    exact = bd.laminate_exact(T, [0.25, 0.75], axis, kind, dim)
    res = {bc: effective(micro, T, bc, comm, kind) for bc in BCS}
    Cp, info = res["periodic"]
    assert np.allclose(Cp, exact, rtol=1e-8, atol=1e-9 * np.abs(exact).max()), Cp - exact
    if kind == "conductivity":   # the textbook means
        n = axis
        t = [i for i in range(dim) if i != n]
        assert Cp[n, n] == pytest.approx(1.0 / (0.25 / 1.0 + 0.75 / 10.0), rel=1e-9)
        assert np.allclose(np.diag(Cp)[t], 0.25 * 1.0 + 0.75 * 10.0, rtol=1e-9)
    for bc, (C, inf) in res.items():
        assert max(inf.hill_mandel) <= 1e-10, bc
        assert_spd(C)
    assert bd.loewner_gap(res["tubc"][0], exact) > -1e-9
    assert bd.loewner_gap(exact, res["kubc"][0]) > -1e-9


@pytest.mark.parametrize("dim,kind", [(2, "conductivity"), (2, "elasticity"), (3, "elasticity")])
def test_bc_ordering_on_random_microstructure(comm, dim, kind):
    """Reuss ≤ TUBC ≤ PBC ≤ KUBC ≤ Voigt in the matrix order (differences PSD)."""
    if dim == 2:
        micro = ms.random_inclusions((20, 20), 0.3, 2.6, seed=4, index=0)
    else:
        micro = ms.random_inclusions((8, 8, 8), 0.15, 1.6, seed=4, index=1, min_gap=0.5)
    T = two_tensors(kind, dim, contrast=20.0)
    f = micro.volume_fractions(2)
    C = {bc: effective(micro, T, bc, comm, kind)[0] for bc in BCS}
    chain = [bd.reuss(T, f), C["tubc"], C["periodic"], C["kubc"], bd.voigt(T, f)]
    for lo, hi in zip(chain[:-1], chain[1:]):
        assert bd.loewner_gap(lo, hi) > -1e-9
    # the gaps are real, not round-off: KUBC - TUBC is clearly positive for a 20x contrast SVE
    assert np.trace(C["kubc"] - C["tubc"]) > 1e-2 * np.trace(C["periodic"])
    for c in C.values():
        assert_spd(c)


@pytest.mark.parametrize("dim", [2, 3])
def test_hashin_shtrikman_contain_isotropic_results(comm, dim):
    """Square/cubic arrays make a 2nd-order tensor isotropic: HS bounds must contain it; the
    Maxwell/MT estimate for dilute circles/spheres is close to it."""
    shape, vf = ((24, 24), 0.2) if dim == 2 else ((12, 12, 12), 0.15)
    micro = ms.inclusion_array(shape, vf, count=1)
    f = micro.volume_fractions(2)
    for contrast in (10.0, 0.1):
        T = [np.eye(dim), contrast * np.eye(dim)]
        C, _ = effective(micro, T, "periodic", comm, "conductivity")
        assert np.allclose(C, C[0, 0] * np.eye(dim), rtol=1e-7)
        pl = bd.placement(C, "conductivity", dim, T, f)
        p = pl["moduli"]["k"]
        assert p["within_hs"] and p["hs_lower"] < p["value"] < p["hs_upper"]
        assert p["value"] == pytest.approx(p["mori_tanaka"], rel=0.05)


def test_checkerboard_converges_to_geometric_mean_and_keller(comm):
    """2D checkerboard: k_eff → √(k1 k2) (Dykhne) under refinement, at an observed order;
    Keller: k_xx(k1, k2) · k_yy(k2, k1) = k1 k2."""
    k1, k2 = 10.0, 1.0
    errs, kel = [], []
    ns = (8, 16, 32)
    for n in ns:
        micro = ms.checkerboard((n, n))
        C12, _ = effective(micro, [k1 * np.eye(2), k2 * np.eye(2)], "periodic", comm, "conductivity")
        C21, _ = effective(micro, [k2 * np.eye(2), k1 * np.eye(2)], "periodic", comm, "conductivity")
        errs.append(C12[0, 0] / np.sqrt(k1 * k2) - 1)
        kel.append(C12[0, 0] * C21[1, 1] / (k1 * k2) - 1)
    errs, kel = np.array(errs), np.array(kel)
    assert np.all(errs > 0) and np.all(np.diff(errs) < 0)        # conforming FE: from above
    order = np.log(errs[:-1] / errs[1:]) / np.log(2)
    assert np.all(order > 0.6), order                              # observed ≈ 0.8 (corner singularity)
    assert errs[-1] < 0.06
    assert np.all(np.diff(kel) < 0) and kel[-1] < 0.11


def test_keller_reciprocity_random_2d_under_refinement(comm):
    k1, k2 = 10.0, 1.0
    base = ms.random_inclusions((12, 12), 0.3, 2.0, seed=11)
    dev = []
    for f in (1, 2, 4):
        micro = ms.refine(base, f)
        A, _ = effective(micro, [k1 * np.eye(2), k2 * np.eye(2)], "periodic", comm, "conductivity")
        B, _ = effective(micro, [k2 * np.eye(2), k1 * np.eye(2)], "periodic", comm, "conductivity")
        dev.append(abs(A[0, 0] * B[1, 1] / (k1 * k2) - 1))
    assert dev[0] > dev[1] > dev[2] and dev[2] < 0.01, dev


def test_correctors_give_c_hom_both_ways(comm):
    """PBC fluctuations are the correctors χ; <C(I+∇χ)> equals the energetic
    <(e_i+∇χ_i)·C(e_j+∇χ_j)>, and the correctors are periodic with zero-mean gradient."""
    _petsc()
    micro = ms.random_inclusions((16, 12), 0.25, 2.2, seed=2)
    T = two_tensors("elasticity", 2)
    p = RVEProblem(micro, phases_for("elasticity", 2, T), "periodic", comm)
    C, info = p.effective_tensor(keep_correctors=True)
    assert np.allclose(p.C_energy, C, rtol=1e-9, atol=1e-10 * np.abs(C).max())
    assert np.allclose(p.avg_strain, np.eye(3), atol=1e-12)
    assert len(p.correctors) == 3 and p.correctors[0].shape == (p.nown, 2)
    p.destroy()


def test_rank_independent_against_comm_self(comm):
    """The parallel answer equals the serial answer on COMM_SELF (the oracle) to solver tolerance."""
    from mpi4py import MPI

    micro = ms.voronoi((6, 5, 4), 3, seed=5)
    R = random_rotations(ms.rng_for(5, 99), micro.nlabels, 3)
    T = list(rotate_tensor(cubic_stiffness(170.0, 124.0, 75.0), R, "elasticity"))
    for bc in BCS:
        Cpar, _ = effective(micro, T, bc, comm, "elasticity")
        Cser, _ = effective(micro, T, bc, MPI.COMM_SELF, "elasticity")
        assert np.allclose(Cpar, Cser, rtol=1e-8, atol=1e-9 * np.abs(Cser).max()), bc
        assert_spd(Cpar, tol=1e-7)


class CubicHardening:
    """A nonlinear test material: σ = C ε (1 + β |ε|²), consistent tangent; no ``C`` attribute, so
    the solver takes the general Newton path (per-point tangents, reassembly)."""

    kind = "small"

    def __init__(self, C, beta):
        self.Cm, self.beta, self.dim = np.asarray(C), beta, 2

    def initial_state(self, nq):
        return {"calls": np.zeros(nq)}

    def update(self, eps, state):
        s0 = eps @ self.Cm.T
        g = 1 + self.beta * np.einsum("qi,qi->q", eps, eps)
        stress = s0 * g[:, None]
        tangent = self.Cm[None] * g[:, None, None] + 2 * self.beta * np.einsum("qi,qj->qij", s0, eps)
        return stress, tangent, {"calls": state["calls"] + 1}


def test_newton_consistent_homogenized_tangent(comm):
    """solve(): Newton converges quadratically with a nonlinear phase; the condensed tangent
    equals the finite-difference derivative of the homogenized stress; linear phases take one
    Newton step and return the effective tensor; state is returned, not committed."""
    _petsc()
    micro = ms.random_inclusions((12, 12), 0.3, 2.0, seed=3)
    C0, C1 = isotropic_stiffness(2, 1.0, 0.3), isotropic_stiffness(2, 5.0, 0.25)
    # linear: one Newton step, stress = C_eff E, tangent = C_eff
    lin = RVEProblem(micro, [LinearElastic(C0), LinearElastic(C1)], "periodic", comm)
    Ceff, _ = lin.effective_tensor()
    E = np.array([0.01, -0.004, 0.003])
    s, Ct, st, info = lin.solve(E, lin.initial_state())
    assert info.newton_iterations == 1
    assert np.allclose(s, Ceff @ E, rtol=1e-8) and np.allclose(Ct, Ceff, rtol=1e-8)
    lin.destroy()
    nl = RVEProblem(micro, [LinearElastic(C0), CubicHardening(C1, 2000.0)], "periodic", comm,
                    newton_rtol=1e-11)
    st0 = nl.initial_state()
    s, Ct, st1, info = nl.solve(E, st0)
    assert info.converged and 2 <= info.newton_iterations <= 8
    r = np.array(info.residual_norms)
    assert r[-1] <= 1e-11 * r[0]
    assert np.all(st0[1]["calls"] == 0) and np.all(st1[1]["calls"] == 1)   # pure update
    assert max(info.hill_mandel) < 1e-9
    h = 1e-6
    fd = np.zeros((3, 3))
    for k in range(3):
        dE = np.zeros(3)
        dE[k] = h
        sp = nl.solve(E + dE, st0, tangent=False)[0]
        sm = nl.solve(E - dE, st0, tangent=False)[0]
        fd[:, k] = (sp - sm) / (2 * h)
    assert np.allclose(Ct, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max()), (Ct, fd)
    assert not np.allclose(Ct, Ceff, rtol=1e-3)          # the nonlinearity is active
    nl.destroy()


def test_bad_input_errors(comm):
    _petsc()
    micro = ms.laminate((4, 4), [0.5, 0.5])
    with pytest.raises(InputError, match="only 1 phases"):
        RVEProblem(micro, [LinearConductor.isotropic(2, 1.0)], "periodic", comm)
    with pytest.raises(InputError, match="unknown boundary condition"):
        RVEProblem(micro, [LinearConductor.isotropic(2, 1.0)] * 2, "dirichlet", comm)
    with pytest.raises(InputError, match="not symmetric"):
        LinearElastic(np.array([[2.0, 1.0, 0], [0.5, 2.0, 0], [0, 0, 1.0]]))
    with pytest.raises(InputError, match="positive"):
        LinearConductor.isotropic(2, -1.0)
