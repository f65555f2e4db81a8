"""Goal-oriented (DWR) error estimation and adaptive refinement for small-strain linear
elasticity on triangles, with the QoI "average stress in a region",
``J(u) = (1/|ω|) ∫_ω S : σ(u) dx`` (``S`` selects σ_xx, σ_yy or σ_xy).

Problem: ``−∇·σ(u) = b`` in Ω, ``u = g`` on Γ_D, ``σ(u) n = t`` on Γ_N; ``σ = λ tr(ε) I + 2μ ε``
(plane strain; plane stress uses ``λ* = 2λμ / (λ + 2μ)``).  ``λ``, ``μ`` are constant per cell
(callables are evaluated at the cell centroids), so σ(u_h) is constant in every cell for the P1
primal and the strong residual has no cell-divergence term.

Error representation (Becker & Rannacher) with the dual ``z ∈ V_0``, ``a(v, z) = J(v)`` for all
``v ∈ V_0``, approximated by P2 on the same mesh (``z_2``), ``w = z_2 − I_h z_2`` (edge bubbles)::

    J(u) − J(u_h) ≈ Σ_K η_K,
    η_K = ∫_K b·w − ½ Σ_{e ⊂ ∂K, interior} ∫_e ⟦σ(u_h) n⟧·w + Σ_{e ⊂ ∂K ∩ Γ_N} ∫_e (t − σ(u_h) n)·w
          + Σ_{e ⊂ ∂K ∩ Γ_D} e_g · (j_K − A_K z_2)|_e

The last term is the **boundary-data term** (:func:`dirichlet_data_term`): ``u_h = I_h g`` on Γ_D,
so ``u − u_h`` does not vanish there.  Splitting ``u − u_h = e_0 + e_g`` with ``e_0 ∈ V_0`` and a
lifting ``e_g`` of ``g − I_h g`` gives ``J(u − u_h) = ρ(u_h)(z) + J(e_g) − a(e_g, z)``; with the
P2 lifting (``e_g`` = ``g(m) − ½(g(a) + g(b))`` at the midpoints ``m`` of Dirichlet edges, zero
elsewhere) the second part is ``e_g · (j_2 − A_2 z_2)``, the boundary-data error weighted by the
dual *reaction* forces; each Dirichlet edge midpoint belongs to exactly one cell, so it localises
exactly.

**Parallel model.**  The mesh and its refinement are replicated (deterministic, cheap); the cells
are partitioned by recursive coordinate bisection of their centroids (:func:`rcb_partition`) and
each rank assembles only its cells: element matrices → a local CSR in the reduced (free-DOF)
numbering → rows sent to their owners (contiguous row blocks) → a PETSc AIJ matrix, solved by CG +
GAMG with the rigid-body near-null space (options prefixes ``dwre_primal_``, ``dwre_dual_``).  The
solution vectors are gathered (the estimator needs neighbouring cells' stresses), each rank
computes the indicators of its own cells and they are gathered for marking.  Marking uses the
gap-cut Dörfler rule of :mod:`hpcmsm.vv.dwr`, so the mesh sequence is the same at any rank count.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import tri
from .dwr import DWRResult, DWRStep, dorfler_mark
from .dwr_parallel import dof_owners, rcb_partition, solve_partitioned  # noqa: F401 (re-exported)

_COMPONENT = {"xx": 0, "yy": 1, "xy": 2}
# Gauss–Legendre 3 points on [0, 1] for edge integrals (exact to degree 5)
_GS = np.array([0.5 - np.sqrt(15) / 10, 0.5, 0.5 + np.sqrt(15) / 10])
_GW = np.array([5 / 18, 8 / 18, 5 / 18])


@dataclass
class ElasticityProblem:
    """Plane linear elasticity on ``mesh`` with QoI ``J(u) = (1/|ω|) ∫_ω σ_comp(u) dx``.

    ``body_force``, ``dirichlet``, ``traction``: callables of points (n, 2) → (n, 2), or None (zero).
    ``neumann(points) → bool`` selects the boundary edges (by midpoint) of Γ_N; the rest of the
    boundary is Γ_D (default: all Dirichlet).  ``region(points) → bool`` selects the cells of ω by
    their centroid: make ω a union of cells of the initial mesh (bisection keeps it so), then
    ``J(u_h)`` is integrated exactly.  ``lam``, ``mu`` [Pa]: numbers or callables of points (n, 2),
    evaluated at cell centroids.  ``exact_qoi``: the true J(u) if known (effectivity indices).
    ``data_term``: include the Dirichlet boundary-data term in η.
    """

    mesh: tri.TriMesh
    lam: float | Callable = 1.0
    mu: float | Callable = 1.0
    body_force: Callable | None = None
    dirichlet: Callable | None = None
    traction: Callable | None = None
    neumann: Callable | None = None
    region: Callable = lambda P: np.ones(len(P), bool)  # noqa: E731
    component: str = "xy"
    plane: str = "strain"
    exact_qoi: float | None = None
    data_term: bool = True
    name: str = "elasticity"

    def __post_init__(self):
        if self.component not in _COMPONENT:
            raise ValueError(f"component must be one of {sorted(_COMPONENT)}, got {self.component!r}")
        if self.plane not in ("strain", "stress"):
            raise ValueError(f"plane must be 'strain' or 'stress', got {self.plane!r}")


# ---------------------------------------------------------------------------------------------
# partitioning and distributed assembly
# ---------------------------------------------------------------------------------------------

def _elasticity_matrix(lam: np.ndarray, mu: np.ndarray, plane: str) -> np.ndarray:
    """(M, 3, 3) Voigt stiffness [xx, yy, xy] (engineering shear strain) per cell."""
    if plane == "stress":
        lam = 2 * lam * mu / (lam + 2 * mu)
    D = np.zeros((len(lam), 3, 3))
    D[:, 0, 0] = D[:, 1, 1] = lam + 2 * mu
    D[:, 0, 1] = D[:, 1, 0] = lam
    D[:, 2, 2] = mu
    return D


def _bmat(grads: np.ndarray) -> np.ndarray:
    """Strain–displacement matrices (M, nq, 3, 2·nloc) from scalar gradients (M, nq, nloc, 2);
    local DOF 2a + c is component c of node a."""
    M, nq, nloc, _ = grads.shape
    B = np.zeros((M, nq, 3, 2 * nloc))
    B[:, :, 0, 0::2] = grads[..., 0]
    B[:, :, 1, 1::2] = grads[..., 1]
    B[:, :, 2, 0::2] = grads[..., 1]
    B[:, :, 2, 1::2] = grads[..., 0]
    return B


def _vector_dofs(cell_dofs: np.ndarray) -> np.ndarray:
    """Scalar cell DOFs (M, nloc) → interleaved vector DOFs (M, 2·nloc)."""
    return np.stack([2 * cell_dofs, 2 * cell_dofs + 1], axis=2).reshape(len(cell_dofs), -1)


def _eval(fn, P: np.ndarray, ncomp: int = 2) -> np.ndarray:
    if fn is None:
        return np.zeros((len(P), ncomp))
    return np.asarray(fn(P), float).reshape(len(P), ncomp)


def _scalar(v, P: np.ndarray) -> np.ndarray:
    return np.asarray(v(P), float).reshape(len(P)) if callable(v) else np.full(len(P), float(v))


@dataclass
class _Local:
    """One rank's share of an assembled P1 or P2 vector space: its cells and their element data."""

    V: tri.Space
    cells: np.ndarray        # own cell indices
    dofs: np.ndarray         # (m, 2·nloc) global vector DOFs of the own cells
    Ke: np.ndarray           # (m, 2·nloc, 2·nloc)
    be: np.ndarray           # (m, 2·nloc) body-force load
    B: np.ndarray            # (m, nq, 3, 2·nloc)
    D: np.ndarray            # (m, 3, 3)
    wq: np.ndarray           # (m, nq) quadrature weights (area included)


def _assemble_local(V: tri.Space, cells: np.ndarray, prob: ElasticityProblem) -> _Local:
    mesh = V.mesh
    sub = tri.TriMesh(mesh.points, mesh.cells[cells])
    G, area = tri.bary_gradients(sub)
    Nq, Dl = tri.shape(V.order, tri.QUAD7_L)
    grads = np.einsum("qai,mid->mqad", Dl, G)
    B = _bmat(grads)
    cen = mesh.points[sub.cells].mean(axis=1)
    D = _elasticity_matrix(_scalar(prob.lam, cen), _scalar(prob.mu, cen), prob.plane)
    wq = area[:, None] * tri.QUAD7_W[None, :]
    DB = np.einsum("mij,mqjb->mqib", D, B) * wq[:, :, None, None]
    # (m, nq·3, k)ᵀ (m, nq·3, k) as one batched matmul (a 4-operand einsum is far slower)
    Ke = np.matmul(B.reshape(len(cells), -1, B.shape[-1]).transpose(0, 2, 1), DB.reshape(len(cells), -1, B.shape[-1]))
    xq = np.einsum("qi,mid->mqd", tri.QUAD7_L, mesh.points[sub.cells])
    bq = _eval(prob.body_force, xq.reshape(-1, 2)).reshape(len(cells), -1, 2)
    be = np.einsum("mq,mqc,qa->mac", wq, bq, Nq).reshape(len(cells), -1)
    return _Local(V, cells, _vector_dofs(V.cell_dofs[cells]), Ke, be, B, D, wq)


def _edge_sets(V: tri.Space, prob: ElasticityProblem):
    """Boolean masks of the Neumann and Dirichlet boundary edges."""
    info, mesh = V.info, V.mesh
    mid = 0.5 * (mesh.points[info.edges[:, 0]] + mesh.points[info.edges[:, 1]])
    neu = np.zeros(len(info.edges), bool)
    if prob.neumann is not None:
        neu[info.boundary] = np.asarray(prob.neumann(mid[info.boundary]), bool)
    return neu, info.boundary & ~neu


def _fixed_dofs(V: tri.Space, dir_edges: np.ndarray) -> np.ndarray:
    """Scalar DOFs on Dirichlet edges (vertices, and midpoints for P2)."""
    info = V.info
    pts = np.unique(info.edges[dir_edges])
    if V.order == 2:
        pts = np.concatenate([pts, V.mesh.npoints + np.flatnonzero(dir_edges)])
    return pts


def _traction_load(V: tri.Space, prob: ElasticityProblem, neu_edges: np.ndarray, own_cell: np.ndarray) -> tuple:
    """(global vector DOFs (k,), values (k,)) of ``∫_{Γ_N} t·φ`` over the Neumann edges whose
    cell is owned by this rank."""
    info, mesh = V.info, V.mesh
    e = np.flatnonzero(neu_edges & own_cell[np.maximum(info.edge_cells[:, 0], 0)])
    if prob.traction is None or not len(e):
        return np.zeros(0, np.int64), np.zeros(0)
    a, b = mesh.points[info.edges[e, 0]], mesh.points[info.edges[e, 1]]
    L = np.linalg.norm(b - a, axis=1)
    s = _GS
    X = a[:, None, :] + s[None, :, None] * (b - a)[:, None, :]
    t = _eval(prob.traction, X.reshape(-1, 2)).reshape(len(e), 3, 2)
    if V.order == 1:
        N = np.stack([1 - s, s], axis=1)
        sd = info.edges[e]
    else:
        N = np.stack([(1 - s) * (1 - 2 * s), s * (2 * s - 1), 4 * s * (1 - s)], axis=1)
        sd = np.column_stack([info.edges[e], mesh.npoints + e])
    vals = np.einsum("eqc,qa,q,e->eac", t, N, _GW, L)
    dofs = np.stack([2 * sd, 2 * sd + 1], axis=2)
    return dofs.ravel(), vals.ravel()


# ---------------------------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------------------------

def _qoi_selector(comp: str) -> np.ndarray:
    s = np.zeros(3)
    s[_COMPONENT[comp]] = 1.0
    return s


def _region_cells(mesh: tri.TriMesh, prob: ElasticityProblem) -> tuple[np.ndarray, float]:
    cen = mesh.points[mesh.cells].mean(axis=1)
    chi = np.asarray(prob.region(cen), bool)
    vol = float(mesh.areas()[chi].sum())
    if vol <= 0:
        raise ValueError("the QoI region ω contains no cell of the mesh")
    return chi, vol


def _qoi_element_vectors(loc: _Local, chi: np.ndarray, vol: float, comp: str) -> np.ndarray:
    """(m, 2·nloc): ``(1/|ω|) ∫_{K∩ω} Bᵀ D s`` (the QoI's element load vectors)."""
    s = _qoi_selector(comp)
    Ds = np.einsum("mij,j->mi", loc.D, s)
    je = np.einsum("mq,mqia,mi->ma", loc.wq, loc.B, Ds)
    return je * (chi[loc.cells] / vol)[:, None]


def estimate(comm, prob: ElasticityProblem, mesh: tri.TriMesh, prefix: str = "dwre_", timers=None):
    """Primal P1 and dual P2 solves (cell-partitioned assembly) and the cell indicators.

    Returns ``(DWRStep, eta (M,), u (2N,))``; ``eta`` and ``u`` are the same on every rank.
    ``timers``: an optional :class:`hpcmsm.timing.Timers` (phases ``dwr: …``)."""
    T = timers or (lambda name: contextlib.nullcontext())
    with T("dwr: mesh connectivity + partition (replicated)"):
        info = tri.edge_info(mesh)
        V1, V2 = tri.space(mesh, 1, info), tri.space(mesh, 2, info)
        cen = mesh.points[mesh.cells].mean(axis=1)
        part = rcb_partition(cen, comm.size)
        own = np.flatnonzero(part == comm.rank)
        own_mask = part == comm.rank
        neu, dire = _edge_sets(V1, prob)
        chi, vol = _region_cells(mesh, prob)

    # primal (P1)
    with T("dwr: assembly (own cells)"):
        L1 = _assemble_local(V1, own, prob)
        L2 = _assemble_local(V2, own, prob)
    fixed1 = np.zeros(2 * V1.ndofs, bool)
    fd1 = _fixed_dofs(V1, dire)
    fixed1[2 * fd1] = fixed1[2 * fd1 + 1] = True
    g1 = np.zeros(2 * V1.ndofs)
    if prob.dirichlet is not None and len(fd1):
        g1[np.stack([2 * fd1, 2 * fd1 + 1], 1)] = _eval(prob.dirichlet, V1.dof_points[fd1])
    td, tv = _traction_load(V1, prob, neu, own_mask)
    with T("dwr: primal solve (row exchange + KSP)"):
        u = solve_partitioned(comm, 2 * V1.ndofs, L1.dofs, L1.Ke, np.concatenate([L1.dofs.ravel(), td]),
                              np.concatenate([L1.be.ravel(), tv]), fixed1, g1, V1.dof_points, prefix + "primal_",
                              np.repeat(dof_owners(V1.cell_dofs, part, V1.ndofs), 2))
    j1 = _qoi_element_vectors(L1, chi, vol, prob.component)
    Jh = float(comm.allreduce(np.einsum("ma,ma->", j1, u[L1.dofs])))

    # dual (P2, homogeneous data on Γ_D, no load besides the QoI)
    j2 = _qoi_element_vectors(L2, chi, vol, prob.component)
    fixed2 = np.zeros(2 * V2.ndofs, bool)
    fd2 = _fixed_dofs(V2, dire)
    fixed2[2 * fd2] = fixed2[2 * fd2 + 1] = True
    with T("dwr: dual solve (row exchange + KSP)"):
        z2 = solve_partitioned(comm, 2 * V2.ndofs, L2.dofs, L2.Ke, L2.dofs.ravel(), j2.ravel(), fixed2,
                               np.zeros(2 * V2.ndofs), V2.dof_points, prefix + "dual_",
                               np.repeat(dof_owners(V2.cell_dofs, part, V2.ndofs), 2))
    with T("dwr: indicators (own cells) + gather"):
        return _indicators(comm, prob, mesh, info, V1, V2, L1, L2, own, own_mask, neu, dire, cen, u, z2, j2, Jh)


def _indicators(comm, prob, mesh, info, V1, V2, L1, L2, own, own_mask, neu, dire, cen, u, z2, j2, Jh):
    M, N = mesh.ncells, mesh.npoints
    Z = z2.reshape(-1, 2)
    U = u.reshape(-1, 2)
    E = info.edges
    m_e = Z[N:] - 0.5 * (Z[E[:, 0]] + Z[E[:, 1]])            # (nE, 2) bubble coefficients of w

    # per-cell stress of u_h (Voigt), all cells (neighbours are needed for the jumps)
    G, area = tri.bary_gradients(mesh)
    gu = np.einsum("mia,mid->mad", U[mesh.cells], G)           # (M, 2 comps, 2 dirs)
    eps = np.stack([gu[:, 0, 0], gu[:, 1, 1], gu[:, 0, 1] + gu[:, 1, 0]], axis=1)
    Dall = _elasticity_matrix(_scalar(prob.lam, cen), _scalar(prob.mu, cen), prob.plane)
    sv = np.einsum("mij,mj->mi", Dall, eps)
    sig = np.stack([np.stack([sv[:, 0], sv[:, 2]], 1), np.stack([sv[:, 2], sv[:, 1]], 1)], 1)  # (M, 2, 2)

    eta = np.zeros(M)
    # cell term ∫_K b·w, w = Σ_k m_{e_k} 4 λ_a λ_b (own cells)
    Nq, _ = tri.shape(2, tri.QUAD7_L)
    wq = np.einsum("mkc,qk->mqc", m_e[info.cell_edges[own]], Nq[:, 3:])
    xq = np.einsum("qi,mid->mqd", tri.QUAD7_L, mesh.points[mesh.cells[own]])
    bq = _eval(prob.body_force, xq.reshape(-1, 2)).reshape(len(own), -1, 2)
    eta[own] = np.einsum("mqc,mqc,q->m", bq, wq, tri.QUAD7_W) * area[own]

    # edge terms on edges whose first cell is owned (each edge once, on one rank)
    ev = mesh.points[E[:, 1]] - mesh.points[E[:, 0]]
    length = np.linalg.norm(ev, axis=1)
    normal = np.stack([ev[:, 1], -ev[:, 0]], axis=1) / length[:, None]
    mid = 0.5 * (mesh.points[E[:, 0]] + mesh.points[E[:, 1]])
    c0, c1 = info.edge_cells[:, 0], info.edge_cells[:, 1]
    normal *= np.sign(np.einsum("ed,ed->e", mid - cen[c0], normal))[:, None]   # outward of c0
    mine = own_mask[c0]
    inner = np.flatnonzero(mine & (c1 >= 0))
    # ⟦σn⟧ = σ_c0 n0 + σ_c1 n1 = (σ_c0 − σ_c1) n0;  ∫_e w ds = (2/3) |e| m_e
    jump = np.einsum("eij,ej->ei", sig[c0[inner]] - sig[c1[inner]], normal[inner])
    val = np.einsum("ei,ei->e", jump, m_e[inner]) * (2.0 / 3.0) * length[inner]
    np.add.at(eta, c0[inner], -0.5 * val)
    np.add.at(eta, c1[inner], -0.5 * val)
    nb = np.flatnonzero(mine & neu)
    if len(nb):
        a = mesh.points[E[nb, 0]]
        X = a[:, None, :] + _GS[None, :, None] * ev[nb][:, None, :]
        t = _eval(prob.traction, X.reshape(-1, 2)).reshape(len(nb), 3, 2)
        r = t - np.einsum("eij,ej->ei", sig[c0[nb]], normal[nb])[:, None, :]
        bub = 4 * _GS * (1 - _GS)
        val = np.einsum("eqc,ec,q,q,e->e", r, m_e[nb], bub, _GW, length[nb])
        np.add.at(eta, c0[nb], val)

    # Dirichlet boundary-data term: e_g · (j_K − A_K z_2) on the own cells
    data = 0.0
    if prob.data_term and prob.dirichlet is not None and dire.any():
        eg = np.zeros((V2.ndofs, 2))
        de = np.flatnonzero(dire)
        eg[N + de] = _eval(prob.dirichlet, mid[de]) - 0.5 * (_eval(prob.dirichlet, mesh.points[E[de, 0]])
                                                               + _eval(prob.dirichlet, mesh.points[E[de, 1]]))
        egv = eg.ravel()
        react = j2 - np.einsum("mab,mb->ma", L2.Ke, z2[L2.dofs])
        dterm = np.einsum("ma,ma->m", egv[L2.dofs], react)
        eta[own] += dterm
        data = float(comm.allreduce(dterm.sum()))

    # sum the ranks' contributions (own cells' terms, and edge terms of edges whose first cell is
    # owned, which also reach the neighbouring, possibly foreign, cell)
    eta = comm.allreduce(eta) if comm.size > 1 else eta
    # direct global estimate ρ(u_h)(z_2) + e_g·(j_2 − A_2 z_2): ℓ(z_2) − a(u_h, z_2) on the own cells
    u2 = np.concatenate([U, 0.5 * (U[E[:, 0]] + U[E[:, 1]])]).ravel()
    td2, tv2 = _traction_load(V2, prob, neu, own_mask)
    loc_direct = (np.einsum("ma,ma->", L2.be, z2[L2.dofs]) + float(tv2 @ z2[td2])
                  - np.einsum("ma,mab,mb->", u2[L2.dofs], L2.Ke, z2[L2.dofs]))
    direct = float(comm.allreduce(loc_direct)) + data
    step = DWRStep.of(V1.ndofs, M, Jh, eta, direct, prob.exact_qoi)
    return step, eta, u


def adapt(comm, prob: ElasticityProblem, tol: float = 1e-4, theta: float = 0.5, max_steps: int = 30,
          max_dofs: int = 200_000, uniform: bool = False, log: Callable | None = None,
          prefix: str = "dwre_", timers=None) -> DWRResult:
    """Solve–estimate–mark–refine until ``|η| < tol`` (or the limits); ``uniform``: refine all.
    ``DWRStep.ndofs`` counts mesh vertices (the P1 displacement has twice as many unknowns)."""
    res = DWRResult()
    mesh = prob.mesh
    for it in range(max_steps):
        step, eta, _ = estimate(comm, prob, mesh, prefix, timers)
        res.steps.append(step)
        if log:
            log(f"{'uniform' if uniform else 'adaptive'} {it:2d}: vertices {step.ndofs:7d}  J_h {step.qoi:.8f}  "
                f"eta {step.estimate: .3e}" + ("" if step.error is None else
                                                f"  err {step.error: .3e}  eff {step.effectivity:.3f}"))
        if abs(step.estimate) < tol or step.ndofs > max_dofs:
            break
        with (timers or (lambda name: contextlib.nullcontext()))("dwr: mark + refine (replicated)"):
            mesh = tri.uniform_refine(mesh) if uniform else tri.refine(mesh, dorfler_mark(eta, theta))
    res.mesh = mesh
    return res


CORNER_BETA, CORNER_A = 1.5, 0.25


def corner_problem(mu: float = 1.0, lam: float = 1.5, beta: float = CORNER_BETA, a: float = CORNER_A,
                   n: int = 4) -> ElasticityProblem:
    """A corner-singular problem with a closed-form QoI, on the unit square.

    ``u = ∇φ`` with ``φ = Re z^β`` (``z = x + iy``, default β = 3/2) is divergence-free and
    harmonic, so ``−∇·σ(u) = 0`` for any λ, μ, and ``σ = 2μ ∇∇φ ~ r^(β−2)`` is singular at the
    corner (0, 0).  Data: ``u = g`` on x = 0, x = 1, y = 0 (non-zero, singular-ish near the corner:
    exercises the boundary-data term), traction ``σ(u) e_y`` on y = 1.  QoI: the mean of σ_xy over
    ``ω = [0, a]²`` (a union of cells of ``square_mesh(n)`` when ``a n`` is an integer), exactly
    ``J = 2μ/a² [φ(a,a) − φ(0,a) − φ(a,0) + φ(0,0)]`` because ``σ_xy = 2μ ∂²φ/∂x∂y``."""
    def phi(x, y):
        return float(np.real(complex(x, y) ** beta))

    def u(P):
        w = beta * (P[:, 0] + 1j * P[:, 1]) ** (beta - 1)
        return np.column_stack([w.real, -w.imag])

    def traction_top(P):
        h = beta * (beta - 1) * (P[:, 0] + 1j * P[:, 1]) ** (beta - 2)
        return np.column_stack([-2 * mu * h.imag, -2 * mu * h.real])

    exact = 2 * mu / a ** 2 * (phi(a, a) - phi(0, a) - phi(a, 0) + phi(0, 0))
    return ElasticityProblem(tri.square_mesh(n), lam, mu, None, u, traction_top,
                             lambda P: np.isclose(P[:, 1], 1.0), lambda P: (P[:, 0] < a) & (P[:, 1] < a),
                             "xy", "strain", exact, True, f"corner r^{beta - 1:g} singularity, mean σ_xy on [0,{a:g}]²")
