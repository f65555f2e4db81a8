"""DWR for plane linear elasticity, QoI = average stress in a region: effectivity on problems with
exact answers (a smooth manufactured solution with non-zero Dirichlet data and a traction edge,
and a corner-singular one whose region average is closed-form), the Dirichlet boundary-data term,
adaptive vs uniform refinement, and the same mesh sequence at 1, 2 and 3 ranks."""
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import dblquad

from hpcmsm.vv import dwr_elasticity as de
from hpcmsm.vv import mms, tri

OMEGA = (0.5, 0.75, 0.25, 0.5)   # union of cells of square_mesh(4)


def _in_omega(P):
    return (P[:, 0] > OMEGA[0]) & (P[:, 0] < OMEGA[1]) & (P[:, 1] > OMEGA[2]) & (P[:, 1] < OMEGA[3])


def smooth_problem(component="xy", plane="strain", data_term=True):
    """Manufactured u (non-zero on ∂Ω), clamped (u = g) except traction σ(u)n on y = 1; exact
    J = mean of σ_comp over ω by adaptive 2D quadrature of the symbolic stress."""
    x, y = mms.coords(2)
    lam, mu = 1.5, 1.0
    # plane stress = plane strain with λ* = 2λμ/(λ + 2μ): build the symbolic stress with the λ used
    lam_eff = 2 * lam * mu / (lam + 2 * mu) if plane == "stress" else lam
    u = [sp.sin(sp.pi * x) * sp.cos(sp.pi * y / 2) / 5 + x * y / 10, (x ** 2 - y) * sp.exp(x * y / 2) / 10]
    ms = mms.small_strain_elasticity(u, lam_eff, mu, 2)
    sig = ms.fn("stress")
    i, j = {"xy": (0, 1), "xx": (0, 0), "yy": (1, 1)}[component]
    area = (OMEGA[1] - OMEGA[0]) * (OMEGA[3] - OMEGA[2])
    exact = dblquad(lambda yy, xx: sig(np.array([[xx, yy]]))[0][i, j], OMEGA[0], OMEGA[1], OMEGA[2], OMEGA[3],
                    epsabs=1e-13)[0] / area
    return de.ElasticityProblem(tri.square_mesh(4), lam, mu, ms.fn("body_force"), ms.fn("u"),
                                lambda P: sig(P)[:, :, 1], lambda P: np.isclose(P[:, 1], 1.0), _in_omega,
                                component, plane, exact, data_term, f"smooth σ_{component} plane {plane}")


def corner_problem():
    return de.corner_problem()


def test_rcb_partition_balanced_and_deterministic():
    rng = np.random.default_rng(1)
    X = rng.random((1001, 2)) * [3.0, 1.0]
    for n in (1, 2, 3, 5):
        p = de.rcb_partition(X, n)
        counts = np.bincount(p, minlength=n)
        assert counts.max() - counts.min() <= 1 and counts.sum() == 1001
        assert np.array_equal(p, de.rcb_partition(X.copy(), n))
    # two parts of a wide box are cut along x
    p = de.rcb_partition(X, 2)
    assert X[p == 0, 0].max() <= X[p == 1, 0].min()


@pytest.mark.mpi
def test_p1_primal_converges_to_manufactured_solution(comm):
    """The partitioned assembly and solve reproduce a manufactured solution (vertex error ~ h²)."""
    prob = smooth_problem()
    errs = []
    for n in (8, 16, 32):
        prob.mesh = tri.square_mesh(n)
        _, _, u = de.estimate(comm, prob, prob.mesh)
        # max |u_h − u| at the vertices ~ h² for a smooth solution
        errs.append(np.abs(u.reshape(-1, 2) - prob.dirichlet(prob.mesh.points)).max())
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.75) and rates[-1] < 2.3, (errs, rates)


@pytest.mark.mpi
@pytest.mark.parametrize("component,plane", [("xy", "strain"), ("xx", "stress")])
def test_smooth_effectivity_with_boundary_data_term(comm, component, plane):
    prob = smooth_problem(component, plane)
    res = de.adapt(comm, prob, tol=1e-5, theta=0.5, max_steps=12)
    for s in res.steps:
        assert s.estimate == pytest.approx(s.estimate_direct, rel=1e-6, abs=1e-10)
    effs = [(s.ndofs, s.effectivity) for s in res.steps if s.ndofs >= 100]
    assert len(effs) >= 4 and all(0.8 <= e <= 1.25 for _, e in effs), effs
    assert abs(res.steps[-1].error) < 0.05 * abs(res.steps[0].error)


@pytest.mark.mpi
def test_without_boundary_data_term_the_estimate_is_wrong(comm):
    """Uniform meshes: with the data term the effectivity is ≈ 1; without it (η misses the leading
    g − I_h g contribution) it stays far outside [0.8, 1.25]."""
    mesh = tri.uniform_refine(tri.square_mesh(4), 2)
    with_term, _, _ = de.estimate(comm, smooth_problem(), mesh)
    without, _, _ = de.estimate(comm, smooth_problem(data_term=False), mesh)
    assert 0.8 <= with_term.effectivity <= 1.25, with_term
    assert not 0.6 <= without.effectivity <= 1.5, without


@pytest.fixture(scope="module")
def corner_runs():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    ad = de.adapt(comm, corner_problem(), tol=1e-3, theta=0.5, max_steps=30)
    un = de.adapt(comm, corner_problem(), tol=0.0, uniform=True, max_dofs=4000)
    return ad, un


@pytest.mark.mpi
def test_corner_effectivity_and_tolerance(corner_runs):
    ad, _ = corner_runs
    assert abs(ad.steps[-1].estimate) < 1e-3
    assert abs(ad.steps[-1].error) < 1.25e-3
    effs = [(s.ndofs, s.effectivity) for s in ad.steps if s.ndofs >= 50]
    assert effs and all(0.8 <= e <= 1.25 for _, e in effs), effs


@pytest.mark.mpi
def test_corner_adaptive_needs_fewer_dofs_than_uniform(corner_runs):
    from hpcmsm.vv.dwr import dofs_to_reach

    ad, un = corner_runs
    target = 3e-3
    n_ad, n_un = dofs_to_reach(ad, target), dofs_to_reach(un, target)
    assert n_ad is not None and n_un is not None
    assert n_ad * 5 < n_un, (n_ad, n_un)


@pytest.mark.mpi
def test_same_mesh_sequence_at_any_rank_count(comm, corner_runs):
    """Oracle: the same adaptive loop on COMM_SELF (one rank, one cell partition) in this process."""
    from mpi4py import MPI

    if comm.size == 1:
        pytest.skip("needs more than one rank")
    ad, _ = corner_runs
    ref = de.adapt(MPI.COMM_SELF, corner_problem(), tol=1e-3, theta=0.5, max_steps=14)
    n = len(ref.steps)
    assert [s.ndofs for s in ad.steps[:n]] == [s.ndofs for s in ref.steps]
    assert np.allclose([s.qoi for s in ad.steps[:n]], [s.qoi for s in ref.steps], rtol=0, atol=1e-10)
    assert np.allclose([s.estimate for s in ad.steps[:n]], [s.estimate for s in ref.steps], rtol=1e-7, atol=1e-12)


def test_bad_component_and_plane_rejected():
    with pytest.raises(ValueError, match="component"):
        de.ElasticityProblem(tri.square_mesh(2), component="zz")
    with pytest.raises(ValueError, match="plane"):
        de.ElasticityProblem(tri.square_mesh(2), plane="shell")


def test_corner_problem_exact_answer_independently():
    """The closed-form QoI equals a direct quadrature of σ_xy over ω (tensor Gauss with x = s²,
    y = t², which removes the r^(−1/2) singularity), and u = ∇φ solves −∇·σ = 0 (symbolic
    stress/body force from the MMS machinery)."""
    x, y = mms.coords(2)
    mu, lam = 1.3, 0.7
    r, th = sp.sqrt(x ** 2 + y ** 2), sp.atan2(y, x)
    phi = r ** sp.Rational(3, 2) * sp.cos(sp.Rational(3, 2) * th)
    ms = mms.small_strain_elasticity([sp.diff(phi, x), sp.diff(phi, y)], lam, mu, 2)
    bf = ms.fn("body_force")(np.array([[0.3, 0.2], [0.7, 0.9], [0.1, 0.6]]))
    assert np.abs(bf).max() < 1e-12
    prob = de.corner_problem(mu=mu, lam=lam)
    a = de.CORNER_A
    g, w = np.polynomial.legendre.leggauss(160)
    s, ws = (g + 1) / 2 * np.sqrt(a), w / 2 * np.sqrt(a)
    S, T = np.meshgrid(s, s, indexing="ij")
    P = np.column_stack([(S ** 2).ravel(), (T ** 2).ravel()])
    val = np.sum(np.outer(ws, ws).ravel() * 4 * (S * T).ravel() * ms.fn("stress")(P)[:, 0, 1]) / a ** 2
    assert val == pytest.approx(prob.exact_qoi, rel=1e-9)
    Q = np.array([[0.4, 0.3], [0.9, 0.1]])
    assert np.allclose(prob.dirichlet(Q), ms.fn("u")(Q), atol=1e-13)
    assert np.allclose(prob.traction(Q), ms.fn("stress")(Q)[:, :, 1], atol=1e-12)


def test_verify_suite_passes_and_catches_a_wrong_modulus(comm):
    """`hpcmsm verify dwr-elasticity`: passes; with the solver's shear modulus off by 5 % the true
    error no longer matches the estimate and the suite fails."""
    from hpcmsm.vv import suites

    r = suites.run_suite(comm, "dwr-elasticity")
    assert r.status == "pass", (r.message, [e.norm for s in r.studies for e in s.entries])
    ex = r.studies[0].extra
    assert ex["vertices_to_reach_uniform_final_error"]["adaptive"] * 3 < ex["vertices_to_reach_uniform_final_error"]["uniform"]
    assert suites.run_suite(comm, "dwr-elasticity", perturb=1.05).status == "fail"


@pytest.mark.mpi
def test_cells_are_partitioned_across_ranks(comm):
    """Each rank assembles a disjoint, balanced share of the cells; together they cover the mesh."""
    from hpcmsm.vv.dwr_parallel import own_cells

    mesh = tri.refine(tri.square_mesh(6), np.arange(0, 72, 5))
    mine = own_cells(mesh, comm)
    allc = np.concatenate(comm.allgather(mine))
    assert np.array_equal(np.sort(allc), np.arange(mesh.ncells))
    sizes = comm.allgather(len(mine))
    assert max(sizes) - min(sizes) <= 1


# Reference for the docs example (a cantilever, no closed form): the same adaptive loop run to
# |η| < 5e-5 (26 steps, 20 878 vertices) gave J_h + η = −0.8474073 with η = −4.9e-5 there, so the
# reference is uncertain by a few 1e-6 — small against the ~2e-3 errors checked below.
CANTILEVER_REFERENCE = -0.8474073


@pytest.mark.mpi
def test_docs_dwr_example_runs(comm, capsys):
    """The elasticity DWR example on docs/verification.md runs, meets its tolerance, and its
    estimate matches the true error with respect to a much finer adaptive reference."""
    from hpcmsm.vv import report as rp

    ns = {}
    exec(compile(rp.DWR_EXAMPLE, "docs/verification.md", "exec"), ns)
    last = ns["last"]
    assert abs(last.estimate) < 2e-3
    err = CANTILEVER_REFERENCE - last.qoi
    assert 0.8 <= last.estimate / err <= 1.25, (last.estimate, err)
    if comm.rank == 0:
        assert "corrected" in capsys.readouterr().out
    assert rp.DWR_EXAMPLE in rp.DOC_INTRO
