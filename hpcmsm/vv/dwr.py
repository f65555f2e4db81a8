"""Goal-oriented error estimation by the dual-weighted residual (DWR) method, with adaptive
newest-vertex bisection, for ``−∇·(k∇u) = f`` with ``u = g`` on the boundary.

For a linear quantity of interest ``J`` the error representation is
``J(u) − J(u_h) = ℓ(z) − a(u_h, z) = ρ(u_h)(z − I_h z)`` with the dual (adjoint) solution
``a(v, z) = J(v)``.  The primal is P1; the dual is approximated by P2 on the same mesh
(``z ≈ z_h^{(2)}``, as in Becker & Rannacher and deal.II step-14, which uses Q2 for the dual).
Cell indicators use the strong (integrated-by-parts) residual form::

    η_K = ∫_K (f + ∇·(k∇u_h)) w dx − ½ Σ_{e ⊂ ∂K} ∫_e ⟦k ∂_n u_h⟧ w ds,   w = z_h^{(2)} − I_h z_h^{(2)}

(``∇·(k∇u_h)`` = ``∇k·∇u_h`` for P1; with variable ``k`` it is evaluated by quadrature.)
QoIs: point values, weighted means and boundary fluxes (``J(u) = a(u, ψ) − ℓ(ψ)`` with the nodal
weight ψ of Γ).

**Non-homogeneous Dirichlet data.**  ``u_h = I_h g`` on ∂Ω, so ``e = u − u_h`` is not in ``H¹₀``.
With ``e = e_0 + e_g`` (``e_0 ∈ H¹₀``, ``e_g`` a lifting of ``g − I_h g``),
``J(e) = ρ(u_h)(z) + J(e_g) − a(e_g, z)``.  Taking the P2 lifting (``e_g = g(m) − ½(g(a) + g(b))``
at the midpoint ``m`` of every boundary edge ``ab``, zero elsewhere) the extra term is
``e_g · (j_2 − A_2 z_2)``: the data error weighted by the discrete dual *reactions*.  It is added to
the indicator of the one cell owning each boundary edge (``PoissonProblem.data_term``, default on).
It is of higher order for interior QoIs but of leading order for boundary fluxes (tested: the
effectivity of a flux QoI with non-zero data is ≈ 1 with it and far off without it).
``Σ_K η_K`` is the global estimate ``η``; cells are marked by the Dörfler (bulk) criterion on
``|η_K|``.

**Parallel model.**  The mesh and its refinement are replicated on every rank (they are cheap
and deterministic); the linear systems are distributed PETSc matrices (rows in contiguous
blocks) solved with a PETSc KSP under the options prefix ``dwr_`` (default CG + GAMG,
rtol 1e-12), and marking cuts the sorted indicators only at gaps far above solver round-off, so the mesh
sequence is identical at any rank count.  The meshes are not partitioned (DMPlex distribution
is future work); assembly is vectorised numpy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from . import tri

STEP14_REFERENCE = 0.0334473          # deal.II step-14 results page, extrapolated u(0.75, 0.75)
STEP14_REFERENCE_UNCERTAINTY = 1e-7


def solve_distributed(comm, A, b: np.ndarray, prefix: str = "dwr_", options: dict | None = None) -> np.ndarray:
    """Solve the (symmetric positive definite) scipy CSR system ``A x = b`` with a distributed
    PETSc KSP on ``comm``; every rank passes the same ``A``, ``b`` and gets the full ``x``."""
    from petsc4py import PETSc

    from ..parallel import block_range, petsc_options

    n = A.shape[0]
    lo, hi = block_range(n, comm.size, comm.rank)
    Al = A[lo:hi]
    pcomm = PETSc.Comm(comm)
    mat = PETSc.Mat().createAIJ(size=((hi - lo, n), (hi - lo, n)),
                                csr=(Al.indptr.astype(PETSc.IntType), Al.indices.astype(PETSc.IntType),
                                     Al.data), comm=pcomm)
    mat.assemble()
    x = mat.createVecRight()
    rhs = mat.createVecLeft()
    rhs.setArray(b[lo:hi])
    ksp = PETSc.KSP().create(comm=pcomm)
    defaults = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12, "ksp_atol": 1e-50, "ksp_max_it": 2000}
    defaults.update(options or {})
    with petsc_options(prefix, defaults):
        ksp.setOptionsPrefix(prefix)
        ksp.setOperators(mat)
        ksp.setFromOptions()
        ksp.solve(rhs, x)
    reason = ksp.getConvergedReason()
    local = x.getArray().copy()
    for o in (ksp, mat, x, rhs):
        o.destroy()
    if reason < 0:
        from ..errors import ConvergenceError

        raise ConvergenceError(f"{prefix} KSP diverged (reason {reason})")
    return np.concatenate(comm.allgather(local))


@dataclass
class PoissonProblem:
    """``−∇·(k∇u) = f`` on the mesh domain, ``u = g`` on its boundary, QoI ``J``.

    ``qoi``: ``("point", (x, y))``; ``("mean", weight)`` with ``weight(points) -> values`` so
    ``J(u) = ∫ weight u dx``; or ``("flux", on_gamma)`` with ``on_gamma(points) -> bool`` selecting
    the boundary nodes of Γ, ``J(u) = ∫_Γ k ∇u·n ds`` (outward normal; Γ should be a whole
    boundary component, e.g. the boundary of a hole, so the nodal weight has no end effects).  ``exact_qoi``: the true value if known (for effectivity indices).
    """

    mesh: tri.TriMesh
    source: Callable | float = 1.0
    conductivity: Callable | float = 1.0
    dirichlet: Callable | float = 0.0
    qoi: tuple = ("point", (0.75, 0.75))
    exact_qoi: float | None = None
    name: str = "poisson"
    data_term: bool = True     # include the Dirichlet boundary-data term e_g·(j₂ − A₂ z₂) in η


def _flux_weight(V1: tri.Space, on_gamma: Callable) -> np.ndarray:
    """P1 vector: 1 at the boundary nodes selected by ``on_gamma(points) -> bool``, else 0."""
    psi = np.zeros(V1.ndofs)
    bd = V1.boundary_dofs
    psi[bd[np.asarray(on_gamma(V1.dof_points[bd]), bool)]] = 1.0
    return psi


def _qoi_vector(V: tri.Space, qoi: tuple) -> np.ndarray:
    kind, data = qoi
    if kind == "point":
        return tri.point_functional(V, np.asarray(data, float))
    if kind == "mean":
        _, j = tri.assemble(V, source=data)
        return j
    raise ValueError(f"unknown QoI kind {kind!r}")


def solve_dirichlet(comm, V: tri.Space, A, b, g, prefix: str = "dwr_") -> np.ndarray:
    """Solve ``A u = b`` with ``u = g`` on the boundary DOFs of ``V`` (distributed KSP); full ``u``."""
    u = np.zeros(V.ndofs)
    bd = V.boundary_dofs
    if g is not None and not (np.isscalar(g) and g == 0):
        u[bd] = g(V.dof_points[bd]) if callable(g) else float(g)
    free = np.setdiff1d(np.arange(V.ndofs), bd)
    rhs = (b - A @ u)[free]
    u[free] = solve_distributed(comm, A[free][:, free].tocsr(), rhs, prefix)
    return u


@dataclass
class DWRStep:
    ndofs: int                 # P1 degrees of freedom (mesh vertices)
    ncells: int
    qoi: float                 # J(u_h)
    estimate: float            # η = Σ η_K
    estimate_direct: float     # ℓ(z2) − a(u_h, z2) (same value up to the solver tolerance)
    error: float | None        # J(u) − J(u_h) if known
    effectivity: float | None  # η / (J(u) − J(u_h))
    sum_abs_indicators: float


@dataclass
class DWRResult:
    steps: list[DWRStep] = field(default_factory=list)
    mesh: tri.TriMesh | None = None

    def as_dict(self) -> dict:
        return {"steps": [asdict(s) for s in self.steps]}


def estimate(comm, prob: PoissonProblem, mesh: tri.TriMesh, prefix: str = "dwr_"):
    """Primal P1 solve, dual P2 solve, cell indicators. Returns (DWRStep, indicators (M,), u_h)."""
    info = tri.edge_info(mesh)
    V1 = tri.space(mesh, 1, info)
    V2 = tri.space(mesh, 2, info)
    kfun = prob.conductivity
    A1, b1 = tri.assemble(V1, kfun, prob.source)
    u = solve_dirichlet(comm, V1, A1, b1, prob.dirichlet, prefix + "primal_")
    A2, b2 = tri.assemble(V2, kfun, prob.source)
    if prob.qoi[0] == "flux":
        # J(u) = ∫_Γ k ∂n u ds = a(u, ψ) − ℓ(ψ) for any ψ with trace 1 on Γ, 0 on ∂Ω \ Γ; take
        # the P1 nodal ψ_h.  The error J(e) = a(e, ψ_h) gives the dual a(v, z) = a(v, ψ_h), z ∈ H¹₀.
        psi = _flux_weight(V1, prob.qoi[1])
        Jh = float(psi @ (A1 @ u) - psi @ b1)
        psi2 = np.concatenate([psi, 0.5 * (psi[info.edges[:, 0]] + psi[info.edges[:, 1]])])
        j2 = A2 @ psi2
    else:
        j2 = _qoi_vector(V2, prob.qoi)
        Jh = float(_qoi_vector(V1, prob.qoi) @ u)
    z2 = solve_dirichlet(comm, V2, A2, j2, 0.0, prefix + "dual_")
    # w = z2 − I_h z2 is a pure edge-bubble field: its coefficient on edge e is z2(mid) − mean(z2(ends))
    N = mesh.npoints
    m_e = z2[N:] - 0.5 * (z2[info.edges[:, 0]] + z2[info.edges[:, 1]])
    G, area = tri.bary_gradients(mesh)
    gu = np.einsum("mi,mid->md", u[mesh.cells], G)  # constant P1 gradient per cell
    # cell term ∫_K f w: w = Σ_k m_{e_k} 4 λ_a λ_b
    Nq, _ = tri.shape(2, tri.QUAD7_L)
    xq = np.einsum("qi,mid->mqd", tri.QUAD7_L, mesh.points[mesh.cells])
    M = mesh.ncells
    f = (np.full(xq.shape[:2], float(prob.source)) if np.isscalar(prob.source)
         else prob.source(xq.reshape(-1, 2)).reshape(M, -1))
    k = (np.full(xq.shape[:2], float(kfun)) if np.isscalar(kfun) else kfun(xq.reshape(-1, 2)).reshape(M, -1))
    wloc = m_e[info.cell_edges]  # (M, 3)
    wq = np.einsum("mk,qk->mq", wloc, Nq[:, 3:])
    cell = np.einsum("mq,mq,q->m", f, wq, tri.QUAD7_W) * area
    if not np.isscalar(kfun):
        # ∇·(k∇u_h) = ∇k·∇u_h for P1: finite-difference the conductivity at the quadrature points
        hstep = 1e-7 * max(1.0, float(np.abs(mesh.points).max()))
        X = xq.reshape(-1, 2)
        gk = np.stack([(kfun(X + [hstep, 0]) - kfun(X - [hstep, 0])) / (2 * hstep),
                       (kfun(X + [0, hstep]) - kfun(X - [0, hstep])) / (2 * hstep)], -1).reshape(M, -1, 2)
        cell += np.einsum("mqd,md,mq,q->m", gk, gu, wq, tri.QUAD7_W) * area
    # edge term: jump of the normal flux on interior edges, ∫_e w ds = (2/3) m_e |e|
    ev = mesh.points[info.edges[:, 1]] - mesh.points[info.edges[:, 0]]
    length = np.linalg.norm(ev, axis=1)
    normal = np.stack([ev[:, 1], -ev[:, 0]], axis=1) / length[:, None]
    mid = 0.5 * (mesh.points[info.edges[:, 0]] + mesh.points[info.edges[:, 1]])
    kmid = np.full(len(mid), float(kfun)) if np.isscalar(kfun) else kfun(mid)
    c0, c1 = info.edge_cells[:, 0], info.edge_cells[:, 1]
    interior = c1 >= 0
    jump = np.zeros(len(length))
    # ⟦k ∂n u⟧ = k (∇u_{c0} − ∇u_{c1})·n for either orientation of n
    jump[interior] = kmid[interior] * np.einsum("ed,ed->e", gu[c0[interior]] - gu[c1[interior]], normal[interior])
    edge_int = jump * (2.0 / 3.0) * m_e * length
    # sign: a(u_h, w) = Σ_K ∫_∂K k∂n u_h w; with n pointing out of c0, contribution −½⟦⟧ to each side
    sgn = np.ones(len(length))
    # orientation of normal relative to c0: outward if it points away from c0's centroid
    cen0 = mesh.points[mesh.cells[c0]].mean(axis=1)
    sgn = np.sign(np.einsum("ed,ed->e", mid - cen0, normal))
    edge_term = sgn * edge_int  # = ∫_e (∇u_c0·n0 + ∇u_c1·n1) w with n0 outward of c0
    eta = cell.copy()
    np.add.at(eta, c0[interior], -0.5 * edge_term[interior])
    np.add.at(eta, c1[interior], -0.5 * edge_term[interior])
    # direct global estimate: ℓ(z2) − a(u_h, z2) with u_h interpolated into P2
    u2 = np.concatenate([u, 0.5 * (u[info.edges[:, 0]] + u[info.edges[:, 1]])])
    direct = float(b2 @ z2 - u2 @ (A2 @ z2))
    g = prob.dirichlet
    if prob.data_term and callable(g):  # constant data is interpolated exactly
        # boundary-data term e_g·(j2 − A2 z2) on the boundary-edge midpoints (one cell each)
        be = np.flatnonzero(info.boundary)
        a_, b_ = mesh.points[info.edges[be, 0]], mesh.points[info.edges[be, 1]]
        eg = g(mid[be]) - 0.5 * (g(a_) + g(b_))
        react = (j2 - A2 @ z2)[N + be]
        dterm = eg * react
        np.add.at(eta, c0[be], dterm)
        direct += float(dterm.sum())
    est = float(eta.sum())
    err = eff = None
    if prob.exact_qoi is not None:
        err = prob.exact_qoi - Jh
        eff = est / err if err != 0 else None
    step = DWRStep(V1.ndofs, M, Jh, est, direct, err, eff, float(np.abs(eta).sum()))
    return step, eta, u


def dorfler_mark(eta: np.ndarray, theta: float = 0.5, gap: float = 1e-6) -> np.ndarray:
    """Cells holding at least a fraction ``theta`` of Σ|η_K| (Dörfler), cut at a *gap*.

    The Dörfler set is extended to the next place in the sorted indicators where consecutive
    values differ by more than ``gap`` × max (the largest such gap within 25 % more cells), so
    solver round-off — which differs with the number of ranks — cannot change the marked set and
    symmetric cells are marked together."""
    a = np.abs(eta)
    M = len(a)
    if M == 0 or a.max() == 0:
        return np.zeros(M, bool)
    r = a / a.max()
    order = np.lexsort((np.arange(M), -r))
    rs = r[order]
    cs = np.cumsum(rs)
    n = int(np.searchsorted(cs, theta * cs[-1])) + 1  # cells 0..n-1 form the Dörfler set
    if n >= M:
        return np.ones(M, bool)
    gaps = rs[:-1] - rs[1:]  # gaps[k]: between sorted k and k+1
    hi = min(M - 1, n - 1 + max(2, n // 4))
    window = gaps[n - 1:hi]
    k = n - 1 + int(np.argmax(window))
    if gaps[k] <= gap:
        big = np.flatnonzero(gaps[n - 1:] > gap)
        if not len(big):
            return np.ones(M, bool)
        k = n - 1 + int(big[0])
    return r >= 0.5 * (rs[k] + rs[k + 1])


def adapt(comm, prob: PoissonProblem, tol: float = 1e-5, theta: float = 0.5, max_steps: int = 30,
          max_dofs: int = 200_000, uniform: bool = False, log: Callable | None = None,
          prefix: str = "dwr_") -> DWRResult:
    """Solve–estimate–mark–refine until ``|η| < tol`` (or the limits). ``uniform``: refine all."""
    res = DWRResult()
    mesh = prob.mesh
    for it in range(max_steps):
        step, eta, _ = estimate(comm, prob, mesh, prefix)
        res.steps.append(step)
        if log:
            log(f"{'uniform' if uniform else 'adaptive'} {it:2d}: dofs {step.ndofs:7d}  J_h {step.qoi:.8f}  "
                f"eta {step.estimate: .3e}" + ("" if step.error is None else
                                                f"  err {step.error: .3e}  eff {step.effectivity:.3f}"))
        if abs(step.estimate) < tol or step.ndofs > max_dofs:
            break
        mesh = tri.uniform_refine(mesh) if uniform else tri.refine(mesh, dorfler_mark(eta, theta))
    res.mesh = mesh
    return res


def step14_problem() -> PoissonProblem:
    """deal.II step-14, Exercise 2.3 (Bangerth & Rannacher): −Δu = 1 on (−1,1)² minus the
    central square [−½,½]², u = 0 on the whole boundary, J(u) = u(0.75, 0.75)."""
    mesh = tri.square_mesh(4, -1, 1, -1, 1, hole=(-0.5, 0.5, -0.5, 0.5))
    return PoissonProblem(mesh, 1.0, 1.0, 0.0, ("point", (0.75, 0.75)), STEP14_REFERENCE, "step-14 Exercise 2.3")


def dofs_to_reach(result: DWRResult, error: float) -> int | None:
    """Fewest P1 DOFs at which the true |error| falls below ``error`` (None if never)."""
    for s in result.steps:
        if s.error is not None and abs(s.error) < error:
            return s.ndofs
    return None
