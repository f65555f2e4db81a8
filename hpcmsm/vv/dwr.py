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

**Parallel model.**  The mesh and its refinement are replicated on every rank (cheap and
deterministic), the *cells* are partitioned by recursive coordinate bisection
(:mod:`hpcmsm.vv.dwr_parallel`): each rank computes the element matrices, QoI loads and
indicators of its own cells only, the rows are sent to their owners and the systems are solved
by a PETSc KSP under the options prefixes ``dwr_primal_`` / ``dwr_dual_`` (default CG + GAMG,
rtol 1e-12).  The solution vectors and the indicators are gathered on every rank (the jumps need
neighbouring cells; marking needs all indicators).  Marking cuts the sorted indicators only at
gaps far above solver round-off, so the mesh sequence is identical at any rank count.  Not
distributed: the mesh itself, its refinement and the edge connectivity (O(cells) memory and work
per rank) — a DMPlex-distributed mesh would need parallel newest-vertex bisection with
conforming closure across ranks and a distributed P2 edge numbering.
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
    from ..parallel import block_range
    from .dwr_parallel import petsc_solve_rows

    n = A.shape[0]
    lo, hi = block_range(n, comm.size, comm.rank)
    defaults = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12, "ksp_atol": 1e-50, "ksp_max_it": 2000}
    defaults.update(options or {})
    local = petsc_solve_rows(comm, A[lo:hi], b[lo:hi], prefix, defaults)
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

    @classmethod
    def of(cls, ndofs: int, ncells: int, qoi: float, eta: np.ndarray, direct: float,
           exact_qoi: float | None) -> "DWRStep":
        """The step record from the indicators ``eta``: estimate, error and effectivity derived."""
        est = float(eta.sum())
        err = eff = None
        if exact_qoi is not None:
            err = exact_qoi - qoi
            eff = est / err if err != 0 else None
        return cls(ndofs, ncells, qoi, est, direct, err, eff, float(np.abs(eta).sum()))


@dataclass
class DWRResult:
    steps: list[DWRStep] = field(default_factory=list)
    mesh: tri.TriMesh | None = None

    def as_dict(self) -> dict:
        return {"steps": [asdict(s) for s in self.steps]}


def estimate(comm, prob: PoissonProblem, mesh: tri.TriMesh, prefix: str = "dwr_"):
    """Primal P1 solve, dual P2 solve, cell indicators. Returns (DWRStep, indicators (M,), u_h).

    Cell-partitioned (:mod:`hpcmsm.vv.dwr_parallel`): each rank computes the element matrices,
    QoI loads and indicators of its own cells only; ``eta`` and ``u_h`` are returned on every rank."""
    from .dwr_parallel import dof_owners, partition, solve_partitioned

    info = tri.edge_info(mesh)
    V1 = tri.space(mesh, 1, info)
    V2 = tri.space(mesh, 2, info)
    kfun = prob.conductivity
    N, M = mesh.npoints, mesh.ncells
    part = partition(mesh, comm)
    own_mask = part == comm.rank
    own = np.flatnonzero(own_mask)
    E = info.edges
    # primal: P1, u = g on the boundary
    K1, f1 = tri.element_matrices(V1, kfun, prob.source, own)
    d1 = V1.cell_dofs[own]
    fixed1 = np.zeros(V1.ndofs, bool)
    fixed1[V1.boundary_dofs] = True
    g = prob.dirichlet
    g1 = np.zeros(V1.ndofs)
    if callable(g):
        g1[V1.boundary_dofs] = g(V1.dof_points[V1.boundary_dofs])
    elif g:
        g1[V1.boundary_dofs] = float(g)
    u = solve_partitioned(comm, V1.ndofs, d1, K1, d1.ravel(), f1.ravel(), fixed1, g1, None, prefix + "primal_",
                          dof_owners(V1.cell_dofs, part, V1.ndofs))
    # dual: P2, z = 0 on the boundary, load = the QoI's element vectors (or a point functional)
    K2, f2 = tri.element_matrices(V2, kfun, prob.source, own)
    d2 = V2.cell_dofs[own]
    kind = prob.qoi[0]
    j2_point = None
    if kind == "flux":
        # J(u) = ∫_Γ k ∂n u ds = a(u, ψ) − ℓ(ψ) for any ψ with trace 1 on Γ, 0 on ∂Ω \ Γ; take
        # the P1 nodal ψ_h.  The error J(e) = a(e, ψ_h) gives the dual a(v, z) = a(v, ψ_h), z ∈ H¹₀.
        psi = _flux_weight(V1, prob.qoi[1])
        Jh = float(comm.allreduce(np.einsum("ma,ma->", psi[d1], np.einsum("mab,mb->ma", K1, u[d1]) - f1)))
        psi2 = np.concatenate([psi, 0.5 * (psi[E[:, 0]] + psi[E[:, 1]])])
        je2 = np.einsum("mab,mb->ma", K2, psi2[d2])
    elif kind == "mean":
        _, w1 = tri.element_matrices(V1, None, prob.qoi[1], own)
        Jh = float(comm.allreduce(np.einsum("ma,ma->", w1, u[d1])))
        _, je2 = tri.element_matrices(V2, None, prob.qoi[1], own)
    elif kind == "point":
        Jh = float(_qoi_vector(V1, prob.qoi) @ u)
        j2_point = _qoi_vector(V2, prob.qoi)          # replicated; loaded once, by rank 0
        je2 = np.zeros_like(f2)
    else:
        raise ValueError(f"unknown QoI kind {kind!r}")
    jd, jv = d2.ravel(), je2.ravel()
    if j2_point is not None and comm.rank == 0:
        nz = np.flatnonzero(j2_point)
        jd, jv = np.concatenate([jd, nz]), np.concatenate([jv, j2_point[nz]])
    fixed2 = np.zeros(V2.ndofs, bool)
    fixed2[V2.boundary_dofs] = True
    z2 = solve_partitioned(comm, V2.ndofs, d2, K2, jd, jv, fixed2, np.zeros(V2.ndofs), None, prefix + "dual_",
                           dof_owners(V2.cell_dofs, part, V2.ndofs))
    # w = z2 − I_h z2 is a pure edge-bubble field: its coefficient on edge e is z2(mid) − mean(z2(ends))
    m_e = z2[N:] - 0.5 * (z2[E[:, 0]] + z2[E[:, 1]])
    G, area = tri.bary_gradients(mesh)
    gu = np.einsum("mi,mid->md", u[mesh.cells], G)  # constant P1 gradient per cell (all cells: jumps)
    eta = np.zeros(M)
    # cell term ∫_K f w on the own cells: w = Σ_k m_{e_k} 4 λ_a λ_b
    Nq, _ = tri.shape(2, tri.QUAD7_L)
    xq = np.einsum("qi,mid->mqd", tri.QUAD7_L, mesh.points[mesh.cells[own]])
    mo = len(own)
    f = (np.full(xq.shape[:2], float(prob.source)) if np.isscalar(prob.source)
         else prob.source(xq.reshape(-1, 2)).reshape(mo, -1))
    wq = np.einsum("mk,qk->mq", m_e[info.cell_edges[own]], Nq[:, 3:])
    eta[own] = np.einsum("mq,mq,q->m", f, wq, tri.QUAD7_W) * area[own]
    if not np.isscalar(kfun):
        # ∇·(k∇u_h) = ∇k·∇u_h for P1: finite-difference the conductivity at the quadrature points
        hstep = 1e-7 * max(1.0, float(np.abs(mesh.points).max()))
        X = xq.reshape(-1, 2)
        gk = np.stack([(kfun(X + [hstep, 0]) - kfun(X - [hstep, 0])) / (2 * hstep),
                       (kfun(X + [0, hstep]) - kfun(X - [0, hstep])) / (2 * hstep)], -1).reshape(mo, -1, 2)
        eta[own] += np.einsum("mqd,md,mq,q->m", gk, gu[own], wq, tri.QUAD7_W) * area[own]
    # edge term on the interior edges whose first cell is owned (each edge on one rank):
    # −½ ∫_e ⟦k ∂n u_h⟧ w ds to both neighbours, ∫_e w ds = (2/3) m_e |e|
    ev = mesh.points[E[:, 1]] - mesh.points[E[:, 0]]
    length = np.linalg.norm(ev, axis=1)
    normal = np.stack([ev[:, 1], -ev[:, 0]], axis=1) / length[:, None]
    mid = 0.5 * (mesh.points[E[:, 0]] + mesh.points[E[:, 1]])
    c0, c1 = info.edge_cells[:, 0], info.edge_cells[:, 1]
    ie = np.flatnonzero((c1 >= 0) & own_mask[c0])
    kmid = np.full(len(ie), float(kfun)) if np.isscalar(kfun) else kfun(mid[ie])
    cen0 = mesh.points[mesh.cells[c0[ie]]].mean(axis=1)
    n0 = normal[ie] * np.sign(np.einsum("ed,ed->e", mid[ie] - cen0, normal[ie]))[:, None]  # outward of c0
    # (∇u_c0·n0 + ∇u_c1·n1) = (∇u_c0 − ∇u_c1)·n0
    jump = kmid * np.einsum("ed,ed->e", gu[c0[ie]] - gu[c1[ie]], n0)
    edge_term = jump * (2.0 / 3.0) * m_e[ie] * length[ie]
    np.add.at(eta, c0[ie], -0.5 * edge_term)
    np.add.at(eta, c1[ie], -0.5 * edge_term)
    # direct global estimate: ℓ(z2) − a(u_h, z2) with u_h interpolated into P2 (own cells, summed)
    u2 = np.concatenate([u, 0.5 * (u[E[:, 0]] + u[E[:, 1]])])
    Kz = np.einsum("mab,mb->ma", K2, z2[d2])
    direct = float(comm.allreduce(np.einsum("ma,ma->", f2, z2[d2]) - np.einsum("ma,ma->", u2[d2], Kz)))
    if prob.data_term and callable(g):  # constant data is interpolated exactly
        # boundary-data term e_g·(j2 − A2 z2) at the boundary-edge midpoints; each midpoint lies
        # in one cell, so the element reaction of that (own) cell is the global one
        be = np.flatnonzero(info.boundary)
        eg = g(mid[be]) - 0.5 * (g(mesh.points[E[be, 0]]) + g(mesh.points[E[be, 1]]))
        react = np.bincount(d2.ravel(), (je2 - Kz).ravel(), minlength=V2.ndofs)[N + be]
        dterm = np.where(own_mask[c0[be]], eg * react, 0.0)
        if j2_point is not None and comm.rank == 0:  # the replicated point load, counted once
            dterm = dterm + eg * j2_point[N + be]
        np.add.at(eta, c0[be], dterm)
        direct += float(comm.allreduce(dterm.sum()))
    # every rank holds its own cells' terms (and the edge terms of its edges): sum them
    eta = comm.allreduce(eta) if comm.size > 1 else eta
    step = DWRStep.of(V1.ndofs, M, Jh, eta, direct, prob.exact_qoi)
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
