"""The one cell Newton (hpcmsm.homogenization.newton.cell_newton) behind both voxel RVE solvers:
its two backends — distributed PETSc KSP (RVEProblem) and gathered direct Cholesky (the FE²
VoxelRVE) — are independent assemblies and linear algebra, so agreeing on a *nonlinear* cell
(stress, condensed tangent, Hill–Mandel) checks both, at 1, 2 and 3 ranks."""
import numpy as np
import pytest

from hpcmsm.homogenization import microstructure as ms
from hpcmsm.materials.base import LinearElastic, isotropic_stiffness

from hpcmsm.homogenization.newton import hill_mandel


class QuarticPotential:
    """W = ½ ε·Cε + ¼ β (ε·Cε)²: σ = Cε (1 + β ε·Cε), tangent C (1 + β ε·Cε) + 2β Cε ⊗ Cε —
    nonlinear with a *symmetric* tangent (the direct backend keeps its Cholesky; the
    non-symmetric CubicHardening below makes it switch to LU)."""

    kind = "small"

    def __init__(self, C, beta):
        self.Cm, self.beta, self.dim = np.asarray(C), beta, 2

    def initial_state(self, nq):
        return {"calls": np.zeros(nq)}

    def update(self, eps, state):
        s0 = eps @ self.Cm.T
        g = 1 + self.beta * np.einsum("qi,qi->q", eps, s0)
        tangent = self.Cm[None] * g[:, None, None] + 2 * self.beta * np.einsum("qi,qj->qij", s0, s0)
        return s0 * g[:, None], tangent, {"calls": state["calls"] + 1}


class CubicHardening:
    """σ = C ε (1 + β |ε|²): tangent C (1 + β|ε|²) + 2β Cε ⊗ ε is *not* symmetric."""

    kind = "small"

    def __init__(self, C, beta):
        self.Cm, self.beta = np.asarray(C), beta
        self.dim = 2 if len(self.Cm) == 3 else 3

    def initial_state(self, nq):
        return {}

    def update(self, eps, state):
        s0 = eps @ self.Cm.T
        g = 1 + self.beta * np.einsum("qi,qi->q", eps, eps)
        tangent = self.Cm[None] * g[:, None, None] + 2 * self.beta * np.einsum("qi,qj->qij", s0, eps)
        return s0 * g[:, None], tangent, state


def _petsc():
    from hpcmsm.parallel import init_petsc

    init_petsc()


@pytest.mark.mpi
@pytest.mark.parametrize("law", ["symmetric", "nonsymmetric"])
def test_distributed_and_direct_backends_agree_on_a_nonlinear_cell(comm, law):
    """Symmetric tangent: Cholesky (direct) vs CG + GAMG; non-symmetric: the direct backend
    switches to LU and the two-sided condensation, the distributed one runs GMRES."""
    from hpcmsm.fe2.rve import VoxelRVE
    from hpcmsm.homogenization.rve import RVEProblem

    _petsc()
    n = 12
    micro = ms.random_inclusions((n, n), 0.3, 2.0, seed=3)
    micro.voxel_size = 1.0 / n                  # VoxelRVE's cell is the unit square
    C1 = isotropic_stiffness(2, 5.0, 0.25)
    nl = QuarticPotential(C1, 400.0) if law == "symmetric" else CubicHardening(C1, 2000.0)
    mats = [LinearElastic(isotropic_stiffness(2, 1.0, 0.3)), nl]
    E = np.array([0.01, -0.004, 0.003])
    opts = {"ksp_rtol": 1e-13} if law == "symmetric" else {"ksp_rtol": 1e-13, "ksp_type": "gmres"}
    dist = RVEProblem(micro, mats, "periodic", comm, newton_rtol=1e-12, options=opts)
    S1, C1, _, info1 = dist.solve(E, dist.initial_state())
    dist.destroy()
    direct = VoxelRVE(micro.labels, mats, comm=comm, rtol=1e-12)
    S2, C2, _, info2 = direct.solve(E, direct.initial_state())
    assert direct._nonsym == (law == "nonsymmetric")
    direct.destroy()
    assert info1.converged and info2["converged"]
    assert info1.newton_iterations >= 3 and info2["iterations"] >= 2          # really nonlinear
    assert np.allclose(S1, S2, rtol=0, atol=1e-10 * np.abs(S2).max())
    assert np.allclose(C1, C2, rtol=0, atol=1e-8 * np.abs(C2).max())
    C_lin = VoxelRVE(micro.labels, mats).elastic_tangent()
    assert np.abs(C2 - C_lin).max() > 2e-3 * np.abs(C_lin).max()              # the nonlinearity matters
    assert max(info1.hill_mandel) < 1e-10 and info2["hill_mandel"] < 1e-12


def test_hill_mandel_measure():
    S, E = np.array([1.0, 2.0, 0.0]), np.array([0.5, 0.0, 1.0])
    assert hill_mandel(S @ E, S, E) == 0.0
    assert hill_mandel(S @ E + 1e-3, S, E) == pytest.approx(1e-3 / (np.sqrt(5) * np.sqrt(1.25)))


@pytest.mark.parametrize("dim,n", [(2, 10), (3, 4)])
def test_direct_backend_non_symmetric_tangent(dim, n):
    """Non-symmetric micro tangent on the direct backend (2D sparse LU, 3D dense LU): quadratic
    Newton (once detected) and the condensed tangent equals central differences (it is not
    symmetric; a Cholesky-based condensation was off by 1e-3 here)."""
    from hpcmsm.fe2.rve import VoxelRVE

    _petsc()
    x = (np.arange(n) + 0.5) / n
    X = np.meshgrid(*([x] * dim), indexing="ij")
    lab = (sum((Xi - 0.5) ** 2 for Xi in X) < 0.3 ** 2).astype(int)
    mats = [LinearElastic(isotropic_stiffness(dim, 1.0, 0.3)), CubicHardening(isotropic_stiffness(dim, 5.0, 0.25), 2000.0)]
    rve = VoxelRVE(lab, mats)
    m = rve.m
    E = np.linspace(0.01, -0.004, m)
    st = rve.initial_state()
    S, C, _, info = rve.solve(E, st)
    # the symmetry check runs once per solve, on the converged tangent (the condensation is
    # always right); the iterations of the *next* solve use LU and converge quadratically
    assert info["converged"] and rve._nonsym
    E = E * (1 + 1e-3)
    S, C, _, info = rve.solve(E, st)
    assert info["converged"] and rve._nonsym
    res = np.array(info["residuals"])
    orders = np.log(res[2:] / res[1:-1]) / np.log(res[1:-1] / res[:-2])   # the last may hit round-off
    assert orders.max() > 1.8, res
    h = 1e-7
    Cfd = np.zeros((m, m))
    for k in range(m):
        dE = np.zeros(m)
        dE[k] = h
        Cfd[:, k] = (rve.solve(E + dE, st)[0] - rve.solve(E - dE, st)[0]) / (2 * h)
    assert np.abs(Cfd - C).max() < 1e-6 * np.abs(C).max()
    assert np.abs(C - C.T).max() > 1e-4 * np.abs(C).max()
    rve.destroy()
