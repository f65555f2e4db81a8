"""Compact domain-decomposed small-strain macro FE driver used by FE² (Q1 quads/hexes).

The mesh is generated identically on every rank (structured boxes, a mapped plate with a hole);
elements and nodes are block-partitioned over the communicator, the tangent is assembled with
``MatSetValuesRCV`` into a preallocated MPIAIJ matrix (off-process entries are stashed by PETSc),
and solved with a KSP under the ``macro_`` prefix (default: MUMPS LU; CG + GAMG with the rigid-body
near-nullspace is one option away).  Dirichlet conditions are applied symmetrically (``MatZeroRowsColumns`` with the
prescribed increment).  Any material obeying :mod:`hpcmsm.materials.base` can be used, one per
element block (a single FE² material, or one per phase for a fully resolved DNS).

The generated replicated mesh is a simplification for FE², where the macro mesh is small compared
with the RVE work; a DMPlex-distributed mesh (the macro FE capability) can replace it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import ConvergenceError, InputError
from ..parallel import block_range
from .elements import mandel_B, physical_gradients, reference
from .micro import dissipation, energy


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------
@dataclass
class Mesh:
    points: np.ndarray                 # (nn, d)
    cells: np.ndarray                  # (ne, 2^d) Q1 connectivity
    sets: dict = field(default_factory=dict)   # boundary name → node ids

    @property
    def dim(self) -> int:
        return self.points.shape[1]


def box_mesh(lengths, ncells) -> Mesh:
    """Structured Q1 mesh of [0,Lx]×[0,Ly](×[0,Lz]); sets ``xmin, xmax, ymin, ymax(, zmin, zmax)``."""
    d = len(ncells)
    axes = [np.linspace(0.0, L, n + 1) for L, n in zip(lengths, ncells)]
    grids = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([g.ravel(order="F") for g in grids], axis=1)
    shape = tuple(n + 1 for n in ncells)
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(ncells))), tuple(ncells), order="F"), axis=1)
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]] if d == 2 else
                       [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    ijk = idx[:, None, :] + corners[None]
    strides = np.concatenate([[1], np.cumprod(shape[:-1])])
    cells = (ijk * strides).sum(-1)
    sets = {}
    names = "xyz"
    for k in range(d):
        sets[f"{names[k]}min"] = np.flatnonzero(np.isclose(pts[:, k], 0.0))
        sets[f"{names[k]}max"] = np.flatnonzero(np.isclose(pts[:, k], lengths[k]))
    return Mesh(pts, cells, sets)


def plate_with_hole_mesh(L: float, R: float, n_theta: int, n_r: int, grading: float = 1.5) -> Mesh:
    """Quarter of a square plate [0,L]² with a circular hole of radius R at the origin.

    Mapped mesh: for angle θ ∈ [0, π/2] the ray from the hole to the square's outer edge is
    divided into ``n_r`` cells (geometric grading towards the hole); ``n_theta`` (even) cells along
    the arc.  Sets: ``left`` (x=0, symmetry), ``bottom`` (y=0, symmetry), ``right`` (x=L), ``top``.
    """
    if not (0 < R < L):
        raise InputError(f"plate with hole: need 0 < hole radius < plate size (got R={R}, L={L})")
    if n_theta % 2:
        n_theta += 1
    th = np.linspace(0.0, np.pi / 2, n_theta + 1)
    # outer point on the square boundary at the same parametric position (corner at θ = π/4)
    t = np.linspace(0.0, 1.0, n_theta + 1)
    outer = np.where(t[:, None] <= 0.5, np.stack([np.full_like(t, L), 2 * t * L], 1),
                     np.stack([(2 - 2 * t) * L, np.full_like(t, L)], 1))
    inner = R * np.stack([np.cos(th), np.sin(th)], 1)
    s = np.linspace(0.0, 1.0, n_r + 1) ** grading
    pts = (inner[None, :, :] * (1 - s)[:, None, None] + outer[None, :, :] * s[:, None, None])  # (nr+1, nt+1, 2)
    pts = pts.reshape(-1, 2)
    pts[np.abs(pts) < 1e-14 * L] = 0.0
    nt1 = n_theta + 1
    i, j = np.meshgrid(np.arange(n_theta), np.arange(n_r), indexing="xy")
    i, j = i.ravel(), j.ravel()
    n0 = j * nt1 + i
    cells = np.stack([n0, n0 + 1, n0 + 1 + nt1, n0 + nt1], 1)
    # orientation: make det J > 0
    x = pts[cells]
    area = 0.5 * ((x[:, 1, 0] - x[:, 0, 0]) * (x[:, 3, 1] - x[:, 0, 1]) - (x[:, 3, 0] - x[:, 0, 0]) * (x[:, 1, 1] - x[:, 0, 1]))
    cells[area < 0] = cells[area < 0][:, [0, 3, 2, 1]]
    sets = {"left": np.flatnonzero(np.isclose(pts[:, 0], 0.0)), "bottom": np.flatnonzero(np.isclose(pts[:, 1], 0.0)),
            "right": np.flatnonzero(np.isclose(pts[:, 0], L)), "top": np.flatnonzero(np.isclose(pts[:, 1], L))}
    return Mesh(pts, cells, sets)


# ----------------------------------------------------------------------------------------------
@dataclass
class Dirichlet:
    """``u[component] = value * load_factor`` on node set ``nodes`` (value: scalar or per node)."""

    nodes: np.ndarray
    component: int
    value: float | np.ndarray


class MacroProblem:
    """Distributed small-strain Q1 problem; ``materials`` is a list of (material, element ids)."""

    def __init__(self, comm, mesh: Mesh, material_blocks, bcs: list[Dirichlet], petsc_options: dict | None = None,
                 prefix: str = "macro_"):
        from petsc4py import PETSc

        self.comm, self.mesh = comm, mesh
        d = self.dim = mesh.dim
        self.m = 3 if d == 2 else 6
        nn_tot, ne_tot = len(mesh.points), len(mesh.cells)
        self.N = nn_tot * d
        self.e0, self.e1 = block_range(ne_tot, comm.size, comm.rank)
        self.n0, self.n1 = block_range(nn_tot, comm.size, comm.rank)
        cells = mesh.cells[self.e0:self.e1]
        self.cells = cells
        self.edofs = (cells[:, :, None] * d + np.arange(d)).reshape(len(cells), -1)
        _, w, _, dN = reference(d)
        self.nq = len(w)
        G, det = physical_gradients(mesh.points[cells], dN)
        if (det <= 0).any():
            raise InputError("macro mesh has inverted elements (det J <= 0)")
        self.B = mandel_B(G)                                  # (ne, nq, m, nn*d)
        self.wdet = det * w[None]                             # (ne, nq)
        self.nqp_global = ne_tot * self.nq
        self.qp_ids = (np.arange(self.e0, self.e1)[:, None] * self.nq + np.arange(self.nq)).ravel()
        ranges = np.array([block_range(ne_tot, comm.size, r) for r in range(comm.size)])
        self.qp_owner = np.repeat(np.arange(comm.size), (ranges[:, 1] - ranges[:, 0]) * self.nq)
        # materials: (material, local QP indices)
        self.blocks = []
        for mat, elems in material_blocks:
            elems = np.asarray(elems)
            loc = elems[(elems >= self.e0) & (elems < self.e1)] - self.e0
            qloc = (loc[:, None] * self.nq + np.arange(self.nq)).ravel()
            self.blocks.append((mat, qloc))
        # PETSc objects (created once)
        nloc = (self.n1 - self.n0) * d
        self.nloc = nloc
        adj = self._node_graph()
        rows = adj[self.n0:self.n1]
        own = (rows.indices >= self.n0) & (rows.indices < self.n1)
        dn = np.add.reduceat(own.astype(int), rows.indptr[:-1]) if rows.nnz else np.zeros(0, int)
        on = np.diff(rows.indptr) - dn
        d_nnz = np.repeat(dn * d, d).astype(PETSc.IntType)
        o_nnz = np.repeat(on * d, d).astype(PETSc.IntType)
        A = PETSc.Mat().createAIJ(((nloc, self.N), (nloc, self.N)), nnz=(d_nnz, o_nnz), comm=comm)
        A.setBlockSize(d)
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        self.A = A
        self.x = A.createVecRight()
        self.b = A.createVecLeft()
        self.dx = A.createVecRight()
        coords = A.createVecRight()
        coords.setBlockSize(d)
        coords.array[:] = mesh.points[self.n0:self.n1].ravel()
        self.nullsp = PETSc.NullSpace().createRigidBody(coords)
        coords.destroy()
        self.A.setNearNullSpace(self.nullsp)
        need = np.unique(self.edofs)
        self.need = need
        self.elocal = np.searchsorted(need, self.edofs)
        self.lvec = PETSc.Vec().createSeq(len(need), comm=PETSc.COMM_SELF)
        is_ = PETSc.IS().createGeneral(need.astype(PETSc.IntType), comm=PETSc.COMM_SELF)
        self.scatter = PETSc.Scatter().create(self.x, is_, self.lvec, None)
        is_.destroy()
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefix)
        # FE² macro meshes are small next to the RVE work: a parallel direct solver (MUMPS) is the
        # robust default (softening plastic zones made CG+GAMG's Chebyshev smoothers indefinite);
        # large macro meshes: [petsc.macro] ksp_type = "cg", pc_type = "gamg" (rigid-body
        # near-nullspace attached).
        opts = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps",
                "ksp_rtol": 1e-11, "ksp_atol": 1e-50, "ksp_max_it": 2000}
        opts.update(petsc_options or {})
        from ..parallel import petsc_options as push

        with push(prefix, opts):
            self.ksp.setOperators(self.A)
            self.ksp.setFromOptions()
        self.prefix, self.opts = prefix, opts
        # Dirichlet
        self.bcs = bcs
        self.u = np.zeros(self.N) if False else None   # global u lives in self.x
        self.bc_dofs, self.bc_vals = self._bc_arrays()
        own_mask = (self.bc_dofs >= self.n0 * d) & (self.bc_dofs < self.n1 * d)
        self.bc_own = self.bc_dofs[own_mask]
        self.bc_own_vals = self.bc_vals[own_mask]
        self.ksp_iterations = []

    def _node_graph(self) -> sp.csr_matrix:
        c = self.mesh.cells
        k = c.shape[1]
        r = np.repeat(c, k, axis=1).ravel()
        cc = np.tile(c, (1, k)).ravel()
        nn = len(self.mesh.points)
        g = sp.coo_matrix((np.ones(len(r)), (r, cc)), shape=(nn, nn)).tocsr()
        g.sum_duplicates()
        g.sort_indices()
        return g

    def _bc_arrays(self):
        dofs, vals = [], []
        for bc in self.bcs:
            dofs.append(np.asarray(bc.nodes) * self.dim + bc.component)
            vals.append(np.broadcast_to(np.asarray(bc.value, dtype=float), (len(bc.nodes),)).copy())
        if not dofs:
            raise InputError("macro problem needs Dirichlet conditions")
        dofs = np.concatenate(dofs)
        vals = np.concatenate(vals)
        # a DOF listed twice keeps the last value
        _, last = np.unique(dofs[::-1], return_index=True)
        keep = len(dofs) - 1 - last
        return dofs[keep], vals[keep]

    # ------------------------------------------------------------------------------------------
    def local_u(self) -> np.ndarray:
        from petsc4py import PETSc

        self.scatter.scatter(self.x, self.lvec, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return self.lvec.array[self.elocal]                           # (ne, nn*d)

    def strains(self) -> np.ndarray:
        """Macro strains at this rank's QPs (ne*nq, m)."""
        ue = self.local_u()
        return np.einsum("eqia,ea->eqi", self.B, ue).reshape(-1, self.m)

    def evaluate(self, states, strain=None):
        """Material update at all local QPs: stress, tangent, new states (per block)."""
        eps = self.strains() if strain is None else strain
        nloc = eps.shape[0]
        sig = np.zeros((nloc, self.m))
        Ct = np.zeros((nloc, self.m, self.m))
        new = []
        for (mat, q), st in zip(self.blocks, states):
            s, C, ns = mat.update(eps[q], st)
            sig[q], Ct[q] = s, C
            new.append(ns)
        return eps, sig, Ct, new

    def assemble(self, sig, Ct):
        """Internal force (global numpy array on every rank, for reactions) and tangent into A."""
        from petsc4py import PETSc

        ne = len(self.cells)
        sq = sig.reshape(ne, self.nq, self.m)
        Cq = Ct.reshape(ne, self.nq, self.m, self.m)
        fe = np.einsum("eqia,eqi,eq->ea", self.B, sq, self.wdet)
        Ke = np.einsum("eqia,eqij,eqjb,eq->eab", self.B, Cq, self.B, self.wdet)
        A = self.A
        A.zeroEntries()
        idx = self.edofs.astype(PETSc.IntType)
        A.setValuesRCV(idx, idx, Ke, addv=PETSc.InsertMode.ADD_VALUES)
        A.assemble()
        self.b.zeroEntries()
        self.b.setValues(idx.ravel(), fe.ravel(), addv=PETSc.InsertMode.ADD_VALUES)
        self.b.assemble()
        return self.b.array.copy()                                    # owned part of f_int

    def linear_solve(self, rhs_owned: np.ndarray, du_bc_owned: np.ndarray) -> np.ndarray:
        """Solve A du = rhs with du = du_bc on Dirichlet DOFs (symmetric elimination)."""
        from petsc4py import PETSc

        self.b.array[:] = rhs_owned
        self.dx.zeroEntries()
        self.dx.setValues(self.bc_own.astype(PETSc.IntType), du_bc_owned)
        self.dx.assemble()
        self.A.zeroRowsColumns(self.bc_own.astype(PETSc.IntType), 1.0, self.dx, self.b)
        from ..parallel import petsc_options as push

        with push(self.prefix, self.opts):
            self.ksp.setOperators(self.A)
            self.ksp.setFromOptions()
        self.ksp.solve(self.b, self.dx)
        if self.ksp.getConvergedReason() < 0:
            raise ConvergenceError(f"macro linear solve failed (KSP reason {self.ksp.getConvergedReason()})")
        self.ksp_iterations.append(self.ksp.getIterationNumber())
        return self.dx.array.copy()

    def free_norm(self, f_owned: np.ndarray) -> float:
        r = f_owned.copy()
        r[self.bc_own - self.n0 * self.dim] = 0.0
        return float(np.sqrt(self.comm.allreduce(float(r @ r))))

    def reaction(self, f_owned: np.ndarray, nodes: np.ndarray, component: int) -> float:
        dofs = np.asarray(nodes) * self.dim + component
        mine = dofs[(dofs >= self.n0 * self.dim) & (dofs < self.n1 * self.dim)] - self.n0 * self.dim
        return float(self.comm.allreduce(float(f_owned[mine].sum())))

    def destroy(self) -> None:
        for o in (self.ksp, self.A, self.x, self.b, self.dx, self.lvec, self.scatter, self.nullsp):
            o.destroy()


# ----------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    converged: bool
    iterations: int
    residuals: list
    rates: list
    message: str = ""


def newton_rates(res: list, floor: float = 0.0) -> list:
    """Observed convergence orders p_k = log(r_{k+1}/r_k) / log(r_k/r_{k-1}).

    Residuals below ``floor`` (the round-off level) are left out: a residual that has hit
    machine precision says nothing about the convergence order."""
    res = [r for r in res if r > floor]
    out = []
    for k in range(1, len(res) - 1):
        a, b, c = res[k - 1], res[k], res[k + 1]
        if a > 0 and b > 0 and c > 0 and a != b:
            out.append(float(np.log(c / b) / np.log(b / a)))
    return out


class NewtonDriver:
    """Load-stepped small-strain Newton with cut-back; commits material states on convergence.

    ``state`` holds per-block material states; the last converged tangent/internal force are kept
    so a new step's first (predictor) iteration needs no extra material evaluation.
    """

    def __init__(self, problem: MacroProblem, rtol: float = 1e-8, atol: float = 1e-12, max_iterations: int = 15):
        self.p = problem
        self.rtol, self.atol, self.max_iterations = rtol, atol, max_iterations
        self.states = [mat.initial_state(len(q)) for mat, q in problem.blocks]
        self.lam = 0.0
        self.eps = np.zeros((len(problem.qp_ids), problem.m))
        self.sig = np.zeros_like(self.eps)
        self.f_int = None
        self._K_ready = False
        self.qp_info = None

    def initialize(self):
        """Evaluate at the current u (zero or restarted) to get the first tangent (commits nothing)."""
        eps, sig, Ct, new = self.p.evaluate(self.states)
        self.f_int = self.p.assemble(sig, Ct)
        self.eps, self.sig = eps, sig
        self._K_ready = True
        self._discard()

    def _discard(self):
        for mat, _ in self.p.blocks:
            if hasattr(mat, "discard"):
                mat.discard()

    def _commit(self, new):
        for (mat, _), ns in zip(self.p.blocks, new):
            if hasattr(mat, "commit"):
                mat.commit()
        self.states = new

    def step(self, lam_new: float) -> StepResult:
        """Advance the load factor to ``lam_new``; on failure the state is left unchanged."""
        p = self.p
        if not self._K_ready:
            self.initialize()
        x_save = p.x.copy()
        dlam = lam_new - self.lam
        du_bc = p.bc_own_vals * dlam
        rhs = -self.f_int
        res = []
        try:
            du = p.linear_solve(rhs, du_bc)
            p.x.array[:] += du
            for it in range(1, self.max_iterations + 1):
                eps, sig, Ct, new = p.evaluate(self.states)
                f = p.assemble(sig, Ct)
                rn = p.free_norm(f)
                ref = float(np.sqrt(self.p.comm.allreduce(float(f @ f))))
                res.append(rn)
                if rn <= self.rtol * ref + self.atol:
                    self.f_int, self.eps_old, self.eps, self.sig = f, self.eps, eps, sig
                    old = self.states
                    self._commit(new)
                    self.lam = lam_new
                    self.qp_info = self._qp_info(eps, old, new)
                    x_save.destroy()
                    return StepResult(True, it, res, newton_rates(res, 1e-13 * ref))
                if not np.isfinite(rn):
                    break
                du = p.linear_solve(-f, np.zeros_like(du_bc))
                p.x.array[:] += du
            msg = f"macro Newton did not converge in {self.max_iterations} iterations (residuals {res[-3:]})"
        except ConvergenceError as e:
            msg = str(e)
        # reject: restore u and tangent at the last converged state
        p.x.array[:] = x_save.array
        x_save.destroy()
        self._discard()
        self._K_ready = False
        return StepResult(False, len(res), res, newton_rates(res), msg)

    def _qp_info(self, eps, old, new) -> dict:
        """Per local QP: psi, dissipation, peeq, hill_mandel, plastic."""
        n = len(eps)
        out = {k: np.zeros(n) for k in ("psi", "dissipation", "peeq", "hill_mandel", "plastic",
                                         "iterations", "reused", "cost")}
        from .pool import INFO_KEYS, HomogenizedMaterial

        for (mat, q), so, sn in zip(self.p.blocks, old, new):
            if isinstance(mat, HomogenizedMaterial):
                info = mat.last_info
                for k in out:
                    out[k][q] = info[:, INFO_KEYS.index(k)]
            else:
                out["psi"][q] = energy(mat, eps[q], sn)
                out["dissipation"][q] = dissipation(mat, eps[q], so, sn)
                if "alpha" in sn:
                    out["peeq"][q] = sn["alpha"]
                    out["plastic"][q] = sn["alpha"] > so["alpha"]
        return out

    def integrate(self, qp_values: np.ndarray) -> float:
        """∫ over the macro domain of a QP field (collective)."""
        return float(self.p.comm.allreduce(float((qp_values.reshape(self.p.wdet.shape) * self.p.wdet).sum())))
