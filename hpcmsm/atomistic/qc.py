"""2D quasicontinuum (QC) on a triangular crystal with a pair potential.

Representative atoms (repatoms, the mesh nodes) sit on lattice sites: every site of the
atomistic region A (around defects, plus the clamped boundary ring) and a coarsening grid
elsewhere; the continuum elements are the Delaunay triangles of the repatoms.  All lattice sites
follow the linear interpolation x = X + Φ U of the nodal displacements U.

* **QCE** (energy-based, local/nonlocal): E = Σ_{i∈A} E_i(x) + Σ_e n_e Ω W(F_e), with n_e the
  number of continuum sites inside element e, Ω the atomic area and W the Cauchy–Born energy.
  It is conservative but fails the patch test: at a homogeneous deformation the atoms next to
  the interface feel *ghost forces*.
* **QCF** (force-based): atomistic forces on A repatoms, Cauchy–Born FE forces (full element
  areas) on continuum nodes; ghost-force free (passes the patch test), not conservative.
* **GFC** (ghost-force correction, Shenoy et al. 1999): minimise E_QCE(U) − g_k·U with the dead
  load g_k = ∇E_QCE(U_k) + f_QCF(U_k) frozen, and iterate; the fixed point is an equilibrium of
  the QCF forces, so the corrected energy-based scheme passes the patch test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceError, InputError
from ..parallel import block_range


@dataclass
class QCSites:
    """Lattice sites of a finite 2D block: reference ``X`` (N, 2), integer row/column ``ij``,
    ``ring`` mask (clamped outer layer), site ids ``removed`` from the perfect block (vacancies)."""

    X: np.ndarray
    ij: np.ndarray
    ring: np.ndarray
    a: float


def block_sites(a: float, nx: int, ny: int, ring: float, vacancies: np.ndarray | None = None,
                centre: np.ndarray | None = None) -> QCSites:
    """nx × ny block of the triangular lattice centred at the origin; sites within ``ring`` of the
    block's outer edges are the clamped ring; ``vacancies`` (k, 2) are positions of removed sites
    (nearest site each)."""
    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
    h = a * np.sqrt(3) / 2
    X = np.stack([((i + 0.5 * (j % 2)) * a).ravel(), (j * h).ravel()], axis=1)
    ij = np.stack([i.ravel(), j.ravel()], axis=1)
    c = np.array([np.floor(nx / 2) * a, np.floor(ny / 2) * h]) if centre is None else centre
    X = X - c
    lo, hi = X.min(axis=0), X.max(axis=0)
    edge = np.minimum(X - lo, hi - X).min(axis=1)
    ringm = edge < ring
    keep = np.ones(len(X), bool)
    for v in np.atleast_2d(vacancies) if vacancies is not None and len(vacancies) else []:
        k = int(np.argmin(np.linalg.norm(X - v, axis=1)))
        if ringm[k]:
            raise InputError(f"vacancy at {v.tolist()} lies in the clamped boundary ring")
        keep[k] = False
    return QCSites(X[keep], ij[keep], ringm[keep], a)


def graded_nodes(sites: QCSites, atomistic: np.ndarray, coarsest: int = 16, growth: float = 2.0) -> np.ndarray:
    """Repatom mask: A sites, plus the sites whose lattice indices are multiples of a spacing s that
    doubles with the distance from A (s = 2^k with 2^k·growth·a ≤ distance, s ≤ ``coarsest``)."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(sites.X[atomistic]).query(sites.X)
    s = np.ones(len(dist), int)
    k = 1
    while 2**k <= coarsest:
        s = np.where(dist >= 2**k * growth * sites.a, 2**k, s)
        k += 1
    on_grid = (sites.ij[:, 0] % s == 0) & (sites.ij[:, 1] % s == 0)
    return atomistic | on_grid


class QCModel:
    """QCE/QCF/GFC quasicontinuum of ``sites`` with atomistic mask ``atomistic`` (must include the
    ring) using the Cauchy–Born model ``cb`` (triangular lattice, pair potential).  Work (pairs and
    elements) is split over ``comm``; arrays are replicated (the QC system is small by design)."""

    def __init__(self, comm, cb, sites: QCSites, atomistic: np.ndarray, nodes: np.ndarray | None = None,
                 skin: float = 0.5):
        if cb.lattice.name != "triangular" or cb.potential.three_body:
            raise InputError("the QC solver supports the 2D triangular lattice with a pair potential")
        self.comm, self.cb, self.pot, self.sites = comm, cb, cb.potential, sites
        self.A = np.asarray(atomistic, bool) | sites.ring
        # grade away from the defect region only: the clamped ring needs no resolution of its own
        core = self.A & ~sites.ring
        nodes = (graded_nodes(sites, core if core.any() else self.A) | self.A) if nodes is None \
            else (np.asarray(nodes, bool) | self.A)
        self.node_ids = np.flatnonzero(nodes)
        self.nn = len(self.node_ids)
        self.skin = skin
        self.omega = cb.lattice.atomic_volume
        self._mesh()
        self.node_free = ~sites.ring[self.node_ids]
        self._pairs_at = None
        # optional external site potential x (N, 2) -> (E, ∂E/∂x (N, 2)), e.g. an indenter; it is
        # evaluated identically on every rank (replicated, cheap) and enters QCE and QCF alike,
        # so it never produces ghost forces
        self.external = None

    # ------------------------------------------------------------------------------------------
    def _mesh(self) -> None:
        from scipy.sparse import csr_matrix
        from scipy.spatial import Delaunay

        X = self.sites.X
        Xn = X[self.node_ids]
        tri = Delaunay(Xn)
        conn = tri.simplices
        P = Xn[conn]  # (ne, 3, 2)
        area2 = (P[:, 1, 0] - P[:, 0, 0]) * (P[:, 2, 1] - P[:, 0, 1]) - (P[:, 2, 0] - P[:, 0, 0]) * (P[:, 1, 1] - P[:, 0, 1])
        if np.any(np.abs(area2) < 1e-9 * self.sites.a**2):
            raise ConvergenceError("degenerate QC element (collinear repatoms)")
        self.conn, self.area = conn, 0.5 * np.abs(area2)
        # shape-function gradients of linear triangles: ∇N_a (ne, 3, 2)
        M = np.concatenate([np.ones((len(conn), 3, 1)), P], axis=2)  # rows [1, x, y]
        self.gradN = np.linalg.inv(M)[:, 1:, :].transpose(0, 2, 1)
        # site -> element and barycentric interpolation
        el = tri.find_simplex(X, tol=1e-9)
        if np.any(el < 0):
            raise InputError("lattice sites outside the QC mesh (the ring must enclose the block)")
        T = tri.transform[el]
        b = np.einsum("nij,nj->ni", T[:, :2], X - T[:, 2])
        bary = np.c_[b, 1 - b.sum(axis=1)]
        rows = np.repeat(np.arange(len(X)), 3)
        cols = conn[el].ravel()
        vals = bary.ravel()
        isnode = np.full(len(X), -1)
        isnode[self.node_ids] = np.arange(self.nn)
        nodal = isnode >= 0
        # node sites interpolate exactly from themselves (no round-off in the weights)
        vals = np.where(np.repeat(nodal, 3), 0.0, vals)
        rows = np.concatenate([rows, np.flatnonzero(nodal)])
        cols = np.concatenate([cols, isnode[nodal]])
        vals = np.concatenate([vals, np.ones(nodal.sum())])
        self.Phi = csr_matrix((vals, (rows, cols)), shape=(len(X), self.nn))
        self.PhiT = self.Phi.T.tocsr()
        self.site_element = el
        self.n_e = self._continuum_weights(tri, el, bary, nodal)
        # only elements that carry continuum sites (QCE) or touch a continuum node (QCF) matter;
        # triangles inside A (e.g. across a vacancy) may even invert without consequence
        isA_node = self.A[self.node_ids]
        used = np.flatnonzero((self.n_e > 0) | ~isA_node[conn].all(axis=1))
        lo, hi = block_range(len(used), self.comm.size, self.comm.rank)
        self.my_elements = used[lo:hi]

    def _continuum_weights(self, tri, el, bary, nodal) -> np.ndarray:
        """Number of continuum (non-A) sites each element stands for.  A site inside an element
        counts 1 there, a site on an edge ½ to each side, a continuum node is shared among its
        elements by their angles at it — so a fully refined region weighs every triangle by
        area/Ω exactly (a plain point-in-element count would leave zero-weight, zero-stiffness
        triangles and spurious soft modes)."""
        ne = len(self.conn)
        n_e = np.zeros(ne)
        cont = ~self.A
        tol = 1e-9
        inside = cont & ~nodal & (bary.min(axis=1) > tol)
        n_e += np.bincount(el[inside], minlength=ne)
        edge = cont & ~nodal & (bary.min(axis=1) <= tol)
        k = np.argmin(bary[edge], axis=1)
        other = tri.neighbors[el[edge], k]
        half = np.where(other >= 0, 0.5, 1.0)
        n_e += np.bincount(el[edge], half, ne)
        n_e += np.bincount(other[other >= 0], 0.5 * np.ones((other >= 0).sum()), ne)
        # vertices: angle of each element at each of its nodes
        P = self.sites.X[self.node_ids][self.conn]
        ang = np.empty((ne, 3))
        for v in range(3):  # the three corners of every triangle
            u1 = P[:, (v + 1) % 3] - P[:, v]
            u2 = P[:, (v + 2) % 3] - P[:, v]
            c = np.einsum("ei,ei->e", u1, u2) / (np.linalg.norm(u1, axis=1) * np.linalg.norm(u2, axis=1))
            ang[:, v] = np.arccos(np.clip(c, -1, 1))
        cnode = cont[self.node_ids][self.conn]
        n_e += (ang * cnode).sum(axis=1) / (2 * np.pi)
        return n_e

    def site_positions(self, U: np.ndarray) -> np.ndarray:
        return self.sites.X + self.Phi @ U.reshape(self.nn, 2)

    def _pairs(self, x: np.ndarray) -> None:
        """Pairs with at least one A endpoint, within rc + skin at ``x``; rebuilt when needed."""
        from .atoms import neighbour_pairs

        if self._pairs_at is not None:
            moved = np.abs(x[self._pair_sites] - self._pairs_at).max(initial=0.0)
            if moved < 0.5 * self.skin:
                return
        p = neighbour_pairs(x, self.pot.rc + self.skin, None)
        p = p[self.A[p[:, 0]] | self.A[p[:, 1]]]
        lo, hi = block_range(len(p), self.comm.size, self.comm.rank)
        self.pairs = p[lo:hi]
        self.w = 0.5 * (self.A[self.pairs[:, 0]].astype(float) + self.A[self.pairs[:, 1]])
        self._pair_sites = np.unique(p.ravel())
        self._pairs_at = x[self._pair_sites].copy()

    def _pair_terms(self, x):
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        r = x[j] - x[i]
        rn = np.maximum(np.linalg.norm(r, axis=1), 1e-12)
        f, f1, _ = self.pot.pair(rn)
        return i, j, r, rn, f, f1

    def _scatter_sites(self, i, j, g):
        N = len(self.sites.X)
        out = np.zeros((N, 2))
        for k in range(2):
            out[:, k] = np.bincount(j, g[:, k], N) - np.bincount(i, g[:, k], N)
        return out

    def _elements(self, U):
        e = self.my_elements
        Ue = U.reshape(self.nn, 2)[self.conn[e]]  # (ne, 3, 2)
        F = np.eye(2)[None] + np.einsum("eai,eaJ->eiJ", Ue, self.gradN[e])
        if len(e) == 0:
            return e, F, np.zeros(0), np.zeros((0, 2, 2))
        # inverted or grossly compressed trial elements (σ_min(F) ≲ 0.5): infinite energy, and the
        # Cauchy–Born bond list is never grown to absurd radii
        Fi = np.abs(np.linalg.inv(np.where(np.linalg.det(F)[:, None, None] > 1e-12, F, np.eye(2))))
        smin = 1.0 / np.sqrt(Fi.sum(axis=1).max(axis=1) * Fi.sum(axis=2).max(axis=1))
        bad = (np.linalg.det(F) <= 0.05) | (smin < 0.5)
        if bad.any():  # an inverted element in a trial step: infinite energy makes the line search back off
            W = np.full(len(e), np.inf)
            return e, F, W, np.zeros_like(F)
        res = self.cb.evaluate(F, order=1)
        return e, F, res.W, res.P

    # ------------------------------------------------------------------------------------------
    def energy_gradient(self, U: np.ndarray, parts: bool = False):
        """QCE energy and its gradient with respect to the nodal displacements (collective)."""
        U = np.asarray(U, float).ravel()
        x = self.site_positions(U)
        self._pairs(x)
        i, j, r, rn, f, f1 = self._pair_terms(x)
        EA = float(np.dot(self.w, f))
        gs = self._scatter_sites(i, j, (self.w * f1 / rn)[:, None] * r)
        grad = (self.PhiT @ gs).ravel()
        e, F, W, P = self._elements(U)
        wc = self.n_e[e] * self.omega
        EC = float(np.dot(wc, W)) if np.all(np.isfinite(W)) else np.inf
        ge = np.einsum("e,eiJ,eaJ->eai", wc, P, self.gradN[e])
        gc = np.zeros((self.nn, 2))
        np.add.at(gc, self.conn[e], ge)
        grad += gc.ravel()
        EA, EC = self.comm.allreduce(EA), self.comm.allreduce(EC)
        grad = self.comm.allreduce(grad)
        if self.external is not None:
            Ex, gx = self.external(x)
            EA += Ex
            grad += (self.PhiT @ gx).ravel()
        if parts:
            return EA + EC, grad, EA, EC
        return EA + EC, grad

    def qcf_forces(self, U: np.ndarray) -> np.ndarray:
        """Ghost-force-free forces (nn, 2): atomistic on A repatoms, Cauchy–Born FE elsewhere."""
        U = np.asarray(U, float).ravel()
        x = self.site_positions(U)
        self._pairs(x)
        i, j, r, rn, f, f1 = self._pair_terms(x)
        gs = self._scatter_sites(i, j, (f1 / rn)[:, None] * r)  # full atomistic gradient per site
        e, F, W, P = self._elements(U)
        ge = np.einsum("e,eiJ,eaJ->eai", self.area[e], P, self.gradN[e])
        gc = np.zeros((self.nn, 2))
        np.add.at(gc, self.conn[e], ge)
        gs = self.comm.allreduce(gs)
        gc = self.comm.allreduce(gc)
        isA = self.A[self.node_ids]
        f = -np.where(isA[:, None], gs[self.node_ids], gc)
        if self.external is not None:
            f -= self.PhiT @ self.external(x)[1]
        return f

    def ghost_forces(self, U: np.ndarray) -> np.ndarray:
        """QCE forces minus QCF forces (nn, 2): what the energy-based coupling gets wrong."""
        _, g = self.energy_gradient(U)
        return -g.reshape(self.nn, 2) - self.qcf_forces(U)

    # ------------------------------------------------------------------------------------------
    def solve(self, U0: np.ndarray, scheme: str = "gfc", gatol: float = 1e-9, options: dict | None = None,
              max_outer: int = 60, ftol: float = 1e-7) -> dict:
        """Relax the free nodes from ``U0`` (nn·2) with ``scheme`` = "qce" or "gfc".

        GFC stops when the ghost-force-free (QCF) residual max|f| ≤ ``ftol``; each inner
        minimisation is solved only to a tenth of the current residual (inexact fixed point).
        """
        from .atoms import minimize

        if scheme not in ("qce", "gfc"):
            raise InputError(f"unknown QC scheme {scheme!r} (qce or gfc)")
        free = np.repeat(self.node_free, 2)
        U = np.asarray(U0, float).ravel().copy()
        g = np.zeros_like(U)
        its, outer = 0, 0
        opts = {"tao_ls_type": "armijo", **(options or {})}  # Armijo backs off from inverted trial elements
        tol = gatol
        for outer in range(1, max_outer + 1):
            if scheme == "gfc":
                gh = self.ghost_forces(U)
                fq = np.abs((-self.energy_gradient(U)[1].reshape(self.nn, 2) - gh)[self.node_free]).max(initial=0.0)
                if fq <= ftol:
                    break
                g = np.where(free, -gh.ravel(), 0.0)
                tol = max(gatol, 0.1 * fq)

            def fun(V, g=g):
                E, G = self.energy_gradient(V)
                return E - float(np.dot(g, V)), G - g

            out = minimize(self.comm, fun, U, free, gatol=tol, options=opts)
            its += out["tao_iterations"] + out["snes_iterations"]
            U = out["x"]
            if scheme == "qce":
                break
        else:
            raise ConvergenceError(f"ghost-force correction did not converge in {max_outer} outer iterations")
        E, G = self.energy_gradient(U)
        fq = self.qcf_forces(U)[self.node_free]
        return {"U": U, "energy": E, "outer_iterations": outer, "iterations": its,
                "qcf_residual": float(np.abs(fq).max(initial=0.0)),
                "qce_residual": float(np.abs(G.reshape(self.nn, 2)[self.node_free]).max(initial=0.0))}

    @property
    def dofs(self) -> int:
        return int(2 * self.node_free.sum())


# ----------------------------------------------------------------------------------------------
# studies: QC vs full atomistics, adaptivity
# ----------------------------------------------------------------------------------------------

def atomistic_mask(sites: QCSites, centres: np.ndarray, radius: float) -> np.ndarray:
    """Sites within ``radius`` of any of ``centres`` (k, 2)."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.atleast_2d(centres)).query(sites.X)
    return d < radius


def full_atomistic(comm, pot, sites: QCSites, x0: np.ndarray, gatol: float = 1e-9, options: dict | None = None) -> dict:
    """Reference solution: every site free except the clamped ring, relaxed in parallel."""
    from .atoms import ParallelRelaxation

    rel = ParallelRelaxation(comm, pot, x0, sites.ring, None, prefix="full_")
    out = rel.run(gatol=gatol, options=options)
    rel.destroy()
    return out


def site_energy(pot, x: np.ndarray) -> float:
    from .atoms import neighbour_pairs, pair_energy

    return pair_energy(pot, x, neighbour_pairs(x, pot.rc, None), None)[0]


def compare(model: QCModel, res: dict, exact: dict, x0: np.ndarray) -> dict:
    """Energy and displacement errors of a QC solution against the full atomistic one."""
    pot = model.pot
    x = model.site_positions(res["U"])
    E_ref = site_energy(pot, model.sites.X)  # undeformed, unrelaxed sites
    E_0 = site_energy(pot, x0)               # start configuration (e.g. affine shear, unrelaxed)
    E_ex = exact["energy"]
    du = np.linalg.norm(x - exact["x"], axis=1)
    relax = np.linalg.norm(exact["x"] - x0, axis=1)
    return {"energy_qc": res["energy"], "energy_exact": E_ex,
            "energy_error_rel_deformation": abs(res["energy"] - E_ex) / abs(E_ex - E_ref),
            "energy_error_rel_relaxation": abs(res["energy"] - E_ex) / max(abs(E_ex - E_0), 1e-300),
            "true_energy_of_qc_configuration": site_energy(pot, x),
            "displacement_error_max": float(du.max()), "displacement_error_rms": float(np.sqrt(np.mean(du**2))),
            "displacement_error_rel": float(du.max() / max(relax.max(), 1e-300)),
            "dofs_qc": model.dofs, "dofs_full": int(2 * (~model.sites.ring).sum()),
            "repatoms": model.nn, "atomistic_sites": int(model.A.sum()), "sites": int(len(model.sites.X))}


def adapt(comm, cb, sites: QCSites, A0: np.ndarray, U_of_sites, tol: float = 1e-3, grow: float = 2.0,
          max_cycles: int = 8, scheme: str = "gfc", gatol: float = 1e-9, options: dict | None = None, log=None):
    """Solve, mark continuum sites whose non-affinity ξ = √(D²_min/n) exceeds ``tol``·r_nn in the
    QC configuration, add every site within ``grow``·a of them to the atomistic region, re-mesh
    and re-solve (warm start), until nothing is marked.  ``U_of_sites(X)`` gives the start/boundary
    displacement of sites.  Returns the final model, solution and the history."""
    from .breakdown import nonaffinity

    A = A0.copy()
    u_sites = U_of_sites(sites.X)
    history = []
    for cycle in range(max_cycles):
        model = QCModel(comm, cb, sites, A)
        U0 = u_sites[model.node_ids].ravel()
        res = model.solve(U0, scheme, gatol=gatol, options=options)
        x = model.site_positions(res["U"])
        D2, J, n = nonaffinity(cb.lattice, x, None)
        xi = np.sqrt(D2 / np.maximum(n, 1)) / cb.lattice.nearest_neighbour_distance()
        inner = n >= 6  # sites with a full first shell (not on the outer surface)
        marked = (~model.A) & inner & (xi > tol)
        history.append({"cycle": cycle, "atomistic_sites": int(model.A.sum()), "repatoms": model.nn,
                        "dofs": model.dofs, "marked": int(marked.sum()), "energy": res["energy"],
                        "max_xi_continuum": float(xi[(~model.A) & inner].max(initial=0.0))})
        if log:
            log(f"  adapt cycle {cycle}: {model.A.sum()} atomistic sites, {model.nn} repatoms, "
                f"{marked.sum()} continuum sites above tol")
        if not marked.any():
            break
        A = model.A | atomistic_mask(sites, sites.X[marked], grow * sites.a)
        u_sites = x - sites.X
    return model, res, history
