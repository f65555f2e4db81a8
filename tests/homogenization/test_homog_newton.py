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
    nonlinear with a *symmetric* tangent (the direct backend's Cholesky needs one; the
    non-symmetric CubicHardening of test_homog_cell only suits the Krylov backend)."""

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


def _petsc():
    from hpcmsm.parallel import init_petsc

    init_petsc()


@pytest.mark.mpi
def test_distributed_and_direct_backends_agree_on_a_nonlinear_cell(comm):
    from hpcmsm.fe2.rve import VoxelRVE
    from hpcmsm.homogenization.rve import RVEProblem

    _petsc()
    n = 12
    micro = ms.random_inclusions((n, n), 0.3, 2.0, seed=3)
    micro.voxel_size = 1.0 / n                  # VoxelRVE's cell is the unit square
    mats = [LinearElastic(isotropic_stiffness(2, 1.0, 0.3)), QuarticPotential(isotropic_stiffness(2, 5.0, 0.25), 400.0)]
    E = np.array([0.01, -0.004, 0.003])
    dist = RVEProblem(micro, mats, "periodic", comm, newton_rtol=1e-12, options={"ksp_rtol": 1e-13})
    S1, C1, _, info1 = dist.solve(E, dist.initial_state())
    dist.destroy()
    direct = VoxelRVE(micro.labels, mats, comm=comm, rtol=1e-12)
    S2, C2, _, info2 = direct.solve(E, direct.initial_state())
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
