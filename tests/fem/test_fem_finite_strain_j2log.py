"""Finite-strain J2 plasticity (Hencky strain) in HyperelasticProblem: a homogeneous bar under
uniaxial stress to 50 % stretch equals the exact point-law solution (elastic and plastic stages),
material history is committed only on convergence, a non-homogeneous plastic block gives the
serial answer at any rank count (with and without the tangent predictor), converges
quadratically, and checkpoint/restart reproduces the uninterrupted run."""
import os

import numpy as np
import pytest

pytestmark = pytest.mark.mpi
E, NU, SY, HI, HK = 200.0, 0.3, 1.0, 20.0, 10.0


def _bar(comm, stretch, **kw):
    from hpcmsm.fem import Dirichlet, HyperelasticProblem, create_box
    from hpcmsm.materials.logstrain import LogStrainJ2

    mesh = create_box(comm, (3, 2, 1), cell="hexahedron")
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1]), Dirichlet("zmin", 0.0, [2]),
           Dirichlet("xmax", stretch - 1.0, [0])]
    return HyperelasticProblem(mesh, LogStrainJ2(3, E, NU, SY, HI, HK), bcs, **kw)


def _max_alpha(prob):
    from mpi4py import MPI

    a = max([float(p.max(initial=0.0)) for _, p in prob.plastic_strain_eq()] + [0.0])
    return prob.comm.allreduce(a, op=MPI.MAX)


def test_uniaxial_bar_equals_point_law(comm):
    """P11 = τ11/λ with τ11(ln λ) the 1D J2 law (exact for isochoric flow), at an elastic and at
    the final plastic stage; α uniform = ln λ − τ11/E; dissipation σ_y α; stored + dissipated =
    trapezoidal work; then exact elastic unloading with the plastic state frozen."""
    from hpcmsm.materials.j2 import uniaxial_closed_form

    s_end = 1.5
    prob = _bar(comm, s_end)
    lam_el = 0.5 * SY / E / (s_end - 1)                    # an elastic stage first
    prob.solve(1, lam_end=lam_el)
    s = 1 + lam_el * (s_end - 1)
    P11 = -prob.reaction("xmin")[0]
    assert abs(P11 - E * np.log(s) / s) < 1e-9 * E * np.log(s)
    assert _max_alpha(prob) == 0.0 and prob.dissipation == 0.0
    prob.solve(12, lam_end=1.0)
    P11 = -prob.reaction("xmin")[0]
    tau = uniaxial_closed_form(np.log(s_end), E, SY, HI, HK)
    assert abs(P11 - tau / s_end) < 1e-9 * tau
    alpha = np.concatenate([p.ravel() for _, p in prob.plastic_strain_eq()])
    assert np.allclose(alpha, np.log(s_end) - tau / E, rtol=1e-8)
    a = prob.energy_audit()
    assert a.passed, a.summary()
    en = prob.energies
    # uniaxial, unit volume: the trapezoidal dissipation ½(τₙ+τₙ₊₁)Δα − Δ(½Hα²) is σ_y Δα on every
    # plastic-to-plastic step; the first plastic step (from τ = E ln s_el < σ_y) misses ½(σ_y − τ)α₁
    assert sum(r["cutbacks"] for r in prob.history) == 0
    s1 = 1 + (lam_el + (1 - lam_el) / 12) * (s_end - 1)
    a1 = np.log(s1) - uniaxial_closed_form(np.log(s1), E, SY, HI, HK) / E
    d_ref = SY * alpha.mean() - 0.5 * (SY - E * np.log(s)) * a1
    assert abs(en["dissipation"] - d_ref) < 1e-8 * d_ref
    assert abs(en["external_work"] - en["stored"] - en["dissipation"]) < 2e-3 * en["external_work"]
    # elastic unloading to ln λ = Eᵖ₁₁ + 0.1 σ_y/E: τ11 = E(ln λ − Eᵖ₁₁) exactly, α and the
    # dissipation unchanged (Eᵖ₁₁ = α in uniaxial tension)
    ep = alpha.mean()
    s_u = np.exp(ep + 0.1 * SY / E)
    prob.solve(3, lam_end=(s_u - 1) / (s_end - 1))
    P11 = -prob.reaction("xmin")[0]
    assert abs(P11 - 0.1 * SY / s_u) < 1e-8 * SY
    alpha_u = np.concatenate([p.ravel() for _, p in prob.plastic_strain_eq()])
    assert np.array_equal(alpha_u, alpha) and prob.dissipation == en["dissipation"]
    prob.destroy()


def test_history_committed_only_on_convergence(comm):
    """A step whose SNES fails (one iteration allowed) leaves u, λ and the state untouched; the
    same step with enough iterations succeeds, and its state arrives only with commit()."""
    prob = _bar(comm, 1.2, max_it=1)
    u0 = prob.u.getArray(readonly=True).copy()
    st0 = {k: v.copy() for k, v in prob.groups[0].state.items()}
    ok, _, why = prob.try_step(1.0)
    assert not ok and "SNES reason -5" in why           # DIVERGED_MAX_IT
    assert prob.lam == 0.0 and np.array_equal(prob.u.getArray(readonly=True), u0)
    for k, v in st0.items():
        assert np.array_equal(prob.groups[0].state[k], v)
    prob.snes.setTolerances(max_it=30)
    ok, its, _ = prob.try_step(1.0)
    assert ok and its > 1
    assert _max_alpha(prob) == 0.0                         # converged but not yet committed
    prob.commit(1.0)
    assert _max_alpha(prob) > 0.05 and prob.dissipation > 0
    prob.destroy()


def _block(comm, **kw):
    """Plane-strain block clamped on the left, the right face displaced up and out: a
    non-homogeneous plastic zone."""
    from hpcmsm.fem import Dirichlet, HyperelasticProblem, create_box
    from hpcmsm.materials.logstrain import LogStrainJ2

    mesh = create_box(comm, (6, 3), upper=(2.0, 1.0), cell="quadrilateral")
    bcs = [Dirichlet("xmin", 0.0), Dirichlet("xmax", [0.3, 0.25])]
    return HyperelasticProblem(mesh, LogStrainJ2(2, E, NU, SY, HI, HK), bcs, **kw)


def _summary(prob):
    return np.r_[prob.reaction("xmin"), prob.dissipation, prob.work, prob.stored_energy(), _max_alpha(prob)]


def test_plastic_block_rank_independent_and_restart(comm, shared_tmp):
    from mpi4py import MPI

    ref = _block(MPI.COMM_SELF, predictor=False)         # serial oracle on every rank, plain Newton
    ref.solve(6)
    want = _summary(ref)
    its_plain = sum(r["newton_iterations"] for r in ref.history)
    assert sum(r["cutbacks"] for r in ref.history) == 0
    ref.destroy()
    assert want[-1] > 0.05                                # strongly plastic somewhere
    full = _block(comm)
    res = []
    full.snes.setMonitor(lambda snes, it, r: res.append((it, r)))
    full.solve(6)
    # the consistent tangent: quadratic convergence, log(e_k+1) / log(e_k) → 2 (e = r / r_0),
    # at most 5 SNES iterations per step after the tangent predictor (same solution as without)
    starts = [k for k, (it, _) in enumerate(res) if it == 0] + [len(res)]
    assert len(starts) == 7
    for a, b in zip(starts[:-1], starts[1:]):
        e = np.array([r for _, r in res[a:b]]) / res[a][1]
        e = e[e > 1e-13]                                      # above round-off
        assert b - a <= 6 and np.log(e[-1]) / np.log(e[-2]) > 1.5, e
    assert sum(r["newton_iterations"] for r in full.history) < its_plain
    got = _summary(full)
    assert np.allclose(got, want, rtol=1e-8, atol=1e-10 * abs(want).max()), (got, want)
    a = full.energy_audit()
    assert a.passed, a.summary()
    full.destroy()
    # interrupted after 3 of 6 steps, checkpointed, restarted in a new problem
    part = _block(comm)
    part.solve(6, max_steps=3)
    path = os.path.join(shared_tmp, "ck.h5")
    part.save_checkpoint(path)
    part.destroy()
    rest = _block(comm)
    rest.load_checkpoint(path)
    assert rest.lam == pytest.approx(0.5) and _max_alpha(rest) > 0
    rest.solve(3, lam_end=1.0)
    assert np.allclose(_summary(rest), want, rtol=1e-8, atol=1e-10 * abs(want).max())
    rest.destroy()


def test_jacobian_reuse_equals_fresh_evaluation(comm):
    """The Jacobian assembled from the cached material update of the last residual equals a fresh
    evaluation; after commit() the cache is not used with the new state."""
    prob = _block(comm)
    sp = prob.space
    rng = np.random.default_rng(3 + comm.rank)
    u = sp.create_vec()
    u.setArray(0.02 * rng.normal(size=u.getLocalSize()))
    prob._set_bc(u, 0.5)
    prob._lam_trial = 0.5
    R = sp.create_vec()
    prob._residual(None, u, R)
    prob._jacobian(None, u, prob.A, prob.A)
    assert prob._eval_cache is not None
    v, Av1, Av2 = sp.create_vec(), sp.create_vec(), sp.create_vec()
    v.setArray(rng.normal(size=v.getLocalSize()))
    prob.A.mult(v, Av1)
    prob._eval_cache = None
    prob._jacobian(None, u, prob.A, prob.A)
    prob.A.mult(v, Av2)
    Av2.axpy(-1.0, Av1)
    assert Av2.norm() <= 1e-14 * Av1.norm()
    prob.solve(1, lam_end=0.5)
    assert prob._eval_cache is None                      # dropped with the committed state
    for x in (u, v, Av1, Av2, R):
        x.destroy()
    prob.destroy()
