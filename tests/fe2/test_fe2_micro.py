"""Serial verification of the FE² building blocks: voxel RVE, condensed tangent, reuse (the J2 law
itself is tested in tests/materials)."""
import numpy as np
import pytest

from hpcmsm.materials.j2 import J2Plasticity
from hpcmsm.fe2.micro import PointMicro
from hpcmsm.fe2.pool import balance_lpt
from hpcmsm.fe2.rve import VoxelRVE
from hpcmsm.materials.base import LinearElastic


def _composite(n=8, dim=2):
    from hpcmsm.homogenization.microstructure import inclusion_array

    j2 = J2Plasticity(dim, 70e3, 0.33, 100.0, 500.0)
    el = LinearElastic.isotropic(dim, 400e3, 0.2)
    return inclusion_array((n,) * dim, 0.2).labels, [j2, el]


def _fd_tangent(rve, E, state, h=1e-7):
    """Central differences of the homogenized stress, solved from ``state``."""
    Cfd = np.zeros((rve.m, rve.m))
    for k in range(rve.m):
        dE = np.zeros(rve.m)
        dE[k] = h
        Cfd[:, k] = (rve.solve(E + dE, state)[0] - rve.solve(E - dE, state)[0]) / (2 * h)
    return Cfd


@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4), (3, 8)])
def test_linear_laminate_rve_equals_exact_formula(dim, n):
    """PBC voxel RVE of an elastic laminate reproduces the exact layered tensor (to round-off);
    3D 4³ uses the dense factorization, 2D and 3D 8³ the sparse block Cholesky."""
    from hpcmsm.homogenization.bounds import laminate_exact
    from hpcmsm.homogenization.microstructure import laminate

    mats = [LinearElastic.isotropic(dim, 1.0, 0.3), LinearElastic.isotropic(dim, 10.0, 0.2)]
    lab = laminate((n,) * dim, [0.5, 0.5]).labels
    rve = VoxelRVE(lab, mats)
    C_ex = laminate_exact([m.C for m in mats], [0.5, 0.5], 0, "elasticity", dim)
    assert np.allclose(rve.elastic_tangent(), C_ex, rtol=1e-10, atol=1e-10)
    assert (rve._pdof is not None) == (dim == 2 or n == 8)


def test_linear_rve_matches_homogenization_pbc_tensor(comm):
    """Our voxel RVE's elastic tangent equals the homogenization capability's PBC tensor on the
    same inclusion microstructure (two independent implementations)."""
    from mpi4py import MPI

    from hpcmsm.homogenization.microstructure import inclusion_array
    from hpcmsm.homogenization.rve import RVEProblem

    micro = inclusion_array((12, 12), 0.25)
    mats = [LinearElastic.isotropic(2, 1.0, 0.3), LinearElastic.isotropic(2, 20.0, 0.25)]
    ours = VoxelRVE(micro.labels, mats).elastic_tangent()
    micro.voxel_size = 1.0 / 12
    prob = RVEProblem(micro, mats, "periodic", MPI.COMM_SELF, options={"ksp_rtol": 1e-12})
    C, _ = prob.effective_tensor()
    prob.destroy()
    assert np.allclose(ours, C, rtol=1e-7, atol=1e-9)


def test_nonlinear_rve_tangent_fd_hill_mandel_and_quadratic_newton():
    lab, mats = _composite(8)
    rve = VoxelRVE(lab, mats)
    st = rve.initial_state()
    E = np.array([3e-3, -1e-3, 1.5e-3])
    S, C, new, info = rve.solve(E, st)
    assert info["converged"] and info["plastic"] > 0.1
    assert info["hill_mandel"] < 1e-10
    assert np.allclose(C, C.T, rtol=1e-8 * 0 + 1e-8, atol=1e-8 * np.abs(C).max())
    # quadratic convergence of the micro Newton: r_{k+1} <= c r_k^2 over the last iterations
    res = np.array(info["residuals"])
    p = np.log(res[-1] / res[-2]) / np.log(res[-2] / res[-3])
    assert p > 1.7, res
    Cfd = _fd_tangent(rve, E, st)
    assert np.abs(Cfd - C).max() < 1e-6 * np.abs(C).max()
    # energy bookkeeping (trapezoidal, from the zero state): ½(Σ₀ + Σ₁)·ΔE = Δψ + D
    assert abs(0.5 * S @ E - (info["psi"] + info["dissipation"])) < 1e-9 * abs(S @ E)
    # a second increment from the committed state keeps history
    S2, _, _, info2 = rve.solve(E * 1.2, new)
    S2b, _, _, _ = rve.solve(E * 1.2, st)
    assert not np.allclose(S2, S2b)


def test_homogeneous_j2_rve_equals_material_point():
    """One-phase J2 cell: homogenized stress and condensed tangent equal the material's own."""
    j2 = J2Plasticity(2, 200e3, 0.3, 250.0, 1e3)
    rve = VoxelRVE(np.zeros((4, 4), int), [j2])
    pt = PointMicro(j2)
    E = np.array([2e-3, -0.5e-3, 1e-3])
    S, C, _, info = rve.solve(E, rve.initial_state())
    S0, C0, _, _ = pt.solve(E, pt.initial_state())
    assert info["plastic"] == 1.0
    assert np.allclose(S, S0, rtol=1e-12) and np.allclose(C, C0, rtol=1e-9, atol=1e-6)


def test_exact_elastic_reuse():
    lab, mats = _composite(8)
    rve = VoxelRVE(lab, mats)
    _, _, st, _ = rve.solve(np.array([3e-3, 0.0, 0.0]), rve.initial_state())
    # elastic unloading from a plastic state: reuse applies and equals the full solve
    E = np.array([2.5e-3, 0.0, 0.0])
    reuse = rve.try_elastic(E, st)
    full = rve.solve(E, st)
    assert reuse is not None and reuse[3]["reused"]
    assert np.allclose(reuse[0], full[0], rtol=1e-10, atol=1e-9)
    assert np.allclose(reuse[1], full[1], rtol=1e-9, atol=1e-6 * np.abs(full[1]).max())
    assert np.allclose(reuse[2], full[2], rtol=1e-8, atol=1e-12)
    # further plastic loading: the reuse must refuse
    assert rve.try_elastic(np.array([3.5e-3, 0.0, 0.0]), st) is None


def test_hill_mandel_residual_at_zero_macro_strain():
    """Unloaded to E = 0 after yielding, the cell keeps residual micro stresses and strains while
    |Σ||E| = 0: the Hill–Mandel residual (scaled by ⟨|σ||ε|⟩) stays at round-off instead of
    dividing by zero (a full Newton solve, and the elastic reuse when it applies)."""
    lab, mats = _composite(8)
    rve = VoxelRVE(lab, mats)
    _, _, st, info = rve.solve(np.array([4e-3, -1e-3, 2e-3]), rve.initial_state())
    assert info["plastic"] > 0.1
    E0 = np.zeros(3)
    runs = [rve.solve(E0, st), rve.try_elastic(E0, st)]          # reuse: None if unloading re-yields
    for S, _, new, inf in [r for r in runs if r is not None]:
        fields = rve.micro_fields(new)
        assert np.abs(fields["stress"]).max() > 1.0           # residual micro stresses (MPa)
        assert inf["hill_mandel"] < 1e-10, inf["hill_mandel"]


def test_kubc_stiffer_than_pbc():
    lab, mats = _composite(8)
    mats = [LinearElastic.isotropic(2, 70e3, 0.33), mats[1]]
    Cp = VoxelRVE(lab, mats, bc="periodic").elastic_tangent()
    Ck = VoxelRVE(lab, mats, bc="kubc").elastic_tangent()
    assert np.linalg.eigvalsh(Ck - Cp).min() > -1e-9 * np.abs(Cp).max()
    assert np.abs(Ck - Cp).max() > 1e-4 * np.abs(Cp).max()


def test_lpt_balancer_beats_round_robin_on_localised_cost():
    cost = np.ones(64)
    cost[0:32:4] = 20.0                  # plasticity localised in QPs that round-robin puts together
    rr = np.arange(64) % 4
    lpt = balance_lpt(cost, 4)
    load = lambda a: np.bincount(a, weights=cost, minlength=4).max()  # noqa: E731
    assert load(lpt) < 0.5 * load(rr)
    assert load(lpt) <= cost.sum() / 4 + cost.max()       # Graham's list-scheduling bound
    assert load(lpt) == pytest.approx(cost.sum() / 4)


def test_warm_start_gives_the_cold_answer_with_fewer_iterations():
    """A solve started from the trial of the previous macro iteration (the pool's warm start)
    returns the same stress, tangent and state as the cold start from the committed state, in
    fewer micro Newton iterations; a poor guess (far-away strain) still gives the same answer."""
    labels, mats = _composite(8)
    rve = VoxelRVE(labels, mats)
    E1 = np.array([2e-3, -0.7e-3, 0.5e-3])
    _, _, st, _ = rve.solve(E1, rve.initial_state())            # a committed plastic history
    E = 2 * E1
    trial, its_cold, its_warm = st, 0, 0
    for Ek in (E * (1 + 3e-2), E * (1 + 1e-3), E * (1 + 1e-6), E):   # a converging macro Newton
        Sc, Cc, nc, ic = rve.solve(Ek, st)
        Sw, Cw, nw, iw = rve.solve(Ek, st, guess=trial)
        assert ic["converged"] and iw["converged"]
        assert np.allclose(Sw, Sc, rtol=1e-11, atol=1e-9 * np.abs(Sc).max())
        assert np.allclose(Cw, Cc, rtol=1e-8, atol=1e-8 * np.abs(Cc).max())
        assert np.allclose(nw, nc, rtol=1e-9, atol=1e-12)
        its_cold += ic["iterations"]
        its_warm += iw["iterations"]
        trial = nw
    assert its_warm < 0.75 * its_cold, (its_warm, its_cold)
    far = rve.solve(-3 * E, st)[2]                               # a guess from a reversed strain
    Sf, Cf, _, info = rve.solve(E, st, guess=far)
    assert info["converged"] and np.allclose(Sf, Sc, rtol=1e-11, atol=1e-9 * np.abs(Sc).max())


@pytest.mark.parametrize("dim", [2, 3])
def test_tubc_equals_homogenization_tubc_tensor_and_bounds(dim):
    """Elastic TUBC voxel RVE (⟨ε⟩ = E by a Lagrange multiplier = uniform boundary traction) equals
    the homogenization capability's traction-driven TUBC tensor (independent DMDA/CG code), and
    TUBC ⪯ PBC ⪯ KUBC; a one-phase cell gives the material tensor for every condition."""
    from mpi4py import MPI

    from hpcmsm.homogenization.microstructure import inclusion_array
    from hpcmsm.homogenization.rve import RVEProblem

    n = 10 if dim == 2 else 4
    micro = inclusion_array((n,) * dim, 0.25)
    mats = [LinearElastic.isotropic(dim, 1.0, 0.3), LinearElastic.isotropic(dim, 20.0, 0.25)]
    Ct = VoxelRVE(micro.labels, mats, bc="tubc").elastic_tangent()
    micro.voxel_size = 1.0 / n
    prob = RVEProblem(micro, mats, "tubc", MPI.COMM_SELF, options={"ksp_rtol": 1e-12})
    C_ref, _ = prob.effective_tensor()
    prob.destroy()
    assert np.allclose(Ct, C_ref, rtol=1e-7, atol=1e-9 * np.abs(C_ref).max()), (Ct, C_ref)
    Cp = VoxelRVE(micro.labels, mats, bc="periodic").elastic_tangent()
    Ck = VoxelRVE(micro.labels, mats, bc="kubc").elastic_tangent()
    tol = 1e-9 * np.abs(Cp).max()
    assert np.linalg.eigvalsh(Cp - Ct).min() > -tol and np.abs(Cp - Ct).max() > 1e-4 * np.abs(Cp).max()
    assert np.linalg.eigvalsh(Ck - Cp).min() > -tol
    one = VoxelRVE(np.zeros((n,) * dim, dtype=int), mats[:1], bc="tubc").elastic_tangent()
    assert np.allclose(one, mats[0].C, rtol=1e-10, atol=1e-12)


def test_nonlinear_tubc_rve_tangent_fd_and_hill_mandel():
    """J2 composite under TUBC: Newton converges, Hill–Mandel holds, ⟨ε⟩ = E, the condensed
    (constrained) tangent equals central differences, and TUBC is softer than PBC."""
    lab, mats = _composite(8)
    rve = VoxelRVE(lab, mats, bc="tubc")
    st = rve.initial_state()
    E = np.array([3e-3, -1e-3, 1.5e-3])
    S, C, new, info = rve.solve(E, st)
    assert info["converged"] and info["plastic"] > 0.1 and info["hill_mandel"] < 1e-10
    eps = rve.micro_fields(new)["strain"]
    assert np.allclose(eps.mean(axis=0), E, rtol=1e-10, atol=1e-14)          # equal voxels: plain mean
    Cfd = _fd_tangent(rve, E, st)
    assert np.abs(Cfd - C).max() < 1e-6 * np.abs(C).max()
    Sp = VoxelRVE(lab, mats, bc="periodic").solve(E, VoxelRVE(lab, mats).initial_state())[0]
    assert S @ E < Sp @ E


def test_block_cholesky_path_equals_aij_path():
    """The default micro factorization (node-block SBAIJ Cholesky in our AMD node order) and the
    AIJ path taken with user [petsc.micro] options give the same plastic solve and tangent."""
    lab, mats = _composite(8)
    E = np.array([3e-3, -1e-3, 1.5e-3])
    blk = VoxelRVE(lab, mats)
    aij = VoxelRVE(lab, mats, petsc_options={"pc_factor_mat_ordering_type": "qmd"})
    Sb, Cb, nb, ib = blk.solve(E, blk.initial_state())
    Sa, Ca, na, ia = aij.solve(E, aij.initial_state())
    assert blk._pdof is not None and aij._pdof is None          # both paths really taken
    assert ib["iterations"] == ia["iterations"] and ib["plastic"] > 0.1
    assert np.allclose(Sb, Sa, rtol=1e-12) and np.allclose(Cb, Ca, rtol=1e-10)
    assert np.allclose(nb, na, rtol=1e-10, atol=1e-15)
    blk.destroy()
    aij.destroy()
