"""FE²'s macro problem: a thin adapter on :mod:`hpcmsm.fem` plus the FE² Newton driver.

Mesh distribution (:func:`hpcmsm.fem.mesh.distribute`, RCB partition), DOF numbering, sparsity,
vectorised assembly into PETSc (:class:`hpcmsm.fem.space.FunctionSpace`) and the rigid-body
near-nullspace come from :mod:`hpcmsm.fem`.  FE²-specific and kept here: the macro geometries of
the FE² inputs (a structured box and the mapped quarter plate with a hole, whose nodes and
elements define the natural numbering), quadrature-point ids in natural order (the RVE pool's
and the checkpoints' key, independent of the rank count), material blocks by natural element ids
(one FE² material, or one per phase for a fully resolved DNS), Dirichlet values per natural
node, and :class:`NewtonDriver`: load-stepped Newton whose predictor reuses the last converged
(homogenized) tangent, so a step's first iteration needs no RVE evaluation, with per-step
cut-back and RVE history committed only on convergence.  The KSP lives under ``macro_``
(default MUMPS LU; CG + GAMG is one option away).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceError, InputError
from .micro import dissipation, energy


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------
@dataclass
class Mesh:
    """FE² macro geometry (natural numbering; only rank 0's copy is read by :class:`MacroProblem`,
    which distributes it with :func:`hpcmsm.fem.mesh.distribute`)."""

    points: np.ndarray                 # (nn, d)
    cells: np.ndarray                  # (ne, 2^d) Q1 connectivity
    sets: dict = field(default_factory=dict)   # boundary name → node ids

    @property
    def dim(self) -> int:
        return self.points.shape[1]


def box_mesh(lengths, ncells) -> Mesh:
    """Structured Q1 mesh of [0,Lx]×[0,Ly](×[0,Lz]); sets ``xmin, xmax, ymin, ymax(, zmin, zmax)``.

    The generator is :func:`hpcmsm.fem.mesh.box_global` (same node and cell numbering, x
    fastest); only the corner order differs (FE²'s Q1 order is counter-clockwise per face)."""
    from ..fem.mesh import box_global

    d = len(ncells)
    g = box_global([int(n) for n in ncells], upper=[float(L) for L in lengths],
                   cell="quadrilateral" if d == 2 else "hexahedron")
    pts = np.asarray(g.points, float)
    cells = np.asarray(g.cells)[:, np.argsort(_LEXICOGRAPHIC[d])]
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


_LEXICOGRAPHIC = {2: [0, 1, 3, 2], 3: [0, 1, 3, 2, 4, 5, 7, 6]}   # FE² Q1 node order → fem's


# ----------------------------------------------------------------------------------------------
@dataclass
class Dirichlet:
    """``u[component] = value * load_factor`` on node set ``nodes`` (value: scalar or per node)."""

    nodes: np.ndarray
    component: int
    value: float | np.ndarray


class MacroProblem:
    """Q1 macro problem on :mod:`hpcmsm.fem` (FE²'s thin adapter), small or finite strain.

    ``kinematics = "small"``: Mandel strains ε (m = 3 / 6), B-matrix assembly.
    ``kinematics = "finite"``: total Lagrangian on the reference mesh, the macro "strain" at a QP
    is the deformation gradient F = I + ∇u flattened row-major (m = d², index i*d + J), the
    "stress" the first Piola–Kirchhoff P flattened the same way and the tangent A = ∂P/∂F as a
    (d², d²) matrix; internal force ∫ P : ∇δu dV, tangent ∫ ∇δu : A : ∇du dV
    (:func:`hpcmsm.fem.forms.internal_force_finite` / ``stiffness_finite``).  Materials of a
    finite problem obey the finite-strain interface of :mod:`hpcmsm.materials.base`
    (``update(F (n,d,d), state) -> P (n,d,d), A (n,d,d,d,d), new``).

    The FE² geometry (:class:`Mesh`, natural node/cell ids) is handed to
    :func:`hpcmsm.fem.mesh.distribute` (only rank 0's copy is read); DOF numbering, sparsity,
    vectorised assembly and the ghosted vectors come from :class:`hpcmsm.fem.space.FunctionSpace`.
    What stays here is FE²-specific: the quadrature-point ids in natural order
    (``cell_id * nq + q``, rank-count independent: the RVE pool and its checkpoints key on them),
    material blocks given by natural element ids, Dirichlet values per natural node, and the
    linear solve with symmetric elimination that :class:`NewtonDriver` (tangent predictor,
    per-step cut-back) needs.  ``materials`` is a list of (material, natural element ids).
    """

    def __init__(self, comm, mesh: Mesh, material_blocks, bcs: list[Dirichlet], petsc_options: dict | None = None,
                 prefix: str = "macro_", partitioner: str = "rcb", kinematics: str = "small"):
        from petsc4py import PETSc

        from ..fem import forms
        from ..fem.mesh import GlobalMesh, distribute
        from ..fem.solvers import make_ksp, rigid_body_modes
        from ..fem.space import FunctionSpace

        self.comm, self.mesh = comm, mesh
        d = self.dim = mesh.dim
        if kinematics not in ("small", "finite"):
            raise InputError(f"macro kinematics must be 'small' or 'finite' (got {kinematics!r})")
        self.kinematics = kinematics
        self.finite = kinematics == "finite"
        self.m = d * d if self.finite else (3 if d == 2 else 6)
        if not bcs:
            raise InputError("macro problem needs Dirichlet conditions")
        g = None
        if comm.rank == 0:
            cells = np.asarray(mesh.cells)[:, _LEXICOGRAPHIC[d]].astype(np.int64)
            g = GlobalMesh("quadrilateral" if d == 2 else "hexahedron", 1, np.asarray(mesh.points, float), cells,
                           np.ones(len(cells), dtype=np.int32), {"macro": 1},
                           node_sets={f"_bc{k}": np.asarray(bc.nodes, dtype=np.int64) for k, bc in enumerate(bcs)})
        self.fmesh = fm = distribute(comm, g, partitioner)
        self.space = sp = FunctionSpace(fm, d)                  # 2^d Gauss points
        self.nq = sp.nq
        self.nqp_global = fm.n_cells_global * self.nq
        self.nn_global = fm.n_global
        self.N = fm.n_global * d
        self.n0, self.n1 = fm.node_start, fm.node_start + fm.n_owned      # PETSc node range
        self.nloc = fm.n_owned * d
        # QPs of a cell in FE²'s natural order (first reference coordinate fastest, whatever
        # order fem's Gauss rule uses): QP ids, micro_qps selections and checkpoints keep their meaning
        self.qperm = np.lexsort(tuple(sp.qpts[:, k] for k in range(d)))
        _, dNdx, wdet = sp.geometry(slice(None))                # (ne, nq, nen, d), (ne, nq)
        self.wdet = wdet[:, self.qperm]
        self.dNdx = dNdx[:, self.qperm]                          # (ne, nq, nen, d), reference config
        # small strain: Mandel B (ne, nq, m, nen*d); finite strain works on dNdx directly
        self.B = None if self.finite else forms.strain_operator(self.dNdx)
        self._forms = forms
        # natural QP ids of the local cells and the owner of every QP (the pool's routing table)
        self.qp_ids = (fm.cell_ids[:, None] * self.nq + np.arange(self.nq)).ravel()
        owner = np.empty(fm.n_cells_global, dtype=int)
        for r, ids in enumerate(comm.allgather(fm.cell_ids)):
            owner[ids] = r
        self.qp_owner = np.repeat(owner, self.nq)
        self.blocks = []
        for mat, elems in material_blocks:
            loc = np.flatnonzero(np.isin(fm.cell_ids, np.asarray(elems)))
            self.blocks.append((mat, (loc[:, None] * self.nq + np.arange(self.nq)).ravel()))
        # PETSc objects (created once)
        self.A = sp.create_matrix()
        self.nullsp = rigid_body_modes(sp)
        self.A.setNearNullSpace(self.nullsp)
        self.x, self.b, self.dx = sp.create_vec(), sp.create_vec(), sp.create_vec()
        # FE² macro meshes are small next to the RVE work: a parallel direct solver (MUMPS) is the
        # robust default (softening plastic zones made CG+GAMG's Chebyshev smoothers indefinite);
        # large macro meshes: [petsc.macro] ksp_type = "cg", pc_type = "gamg" (rigid-body
        # near-nullspace attached).
        defaults = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps",
                    "ksp_rtol": 1e-11, "ksp_atol": 1e-50, "ksp_max_it": 2000}
        self.ksp = make_ksp(comm, self.A, prefix, defaults, petsc_options)
        self.prefix = prefix
        self.bcs = bcs
        self.bc_local, self.bc_own_vals = self._bc_arrays()
        self.bc_own = (self.bc_local + sp.dof_start).astype(np.int64)   # global rows (PETSc numbering)
        self._rows = self.bc_own.astype(PETSc.IntType)
        self.ksp_iterations = []

    @property
    def cells(self) -> np.ndarray:
        """This rank's cells (local node numbers, fem node order)."""
        return self.fmesh.cells

    def _bc_arrays(self):
        """Owned constrained local DOFs and their values (a DOF listed twice keeps the last)."""
        fm, d = self.fmesh, self.dim
        dofs, vals = [], []
        for k, bc in enumerate(self.bcs):
            loc = fm.boundary_nodes(f"_bc{k}", owned_only=True)
            v = np.asarray(bc.value, dtype=float)
            if v.ndim:                                          # one value per listed natural node
                nodes = np.asarray(bc.nodes)
                order = np.argsort(nodes, kind="stable")
                v = v[order[np.searchsorted(nodes[order], fm.node_ids[loc])]]
            dofs.append(loc * d + bc.component)
            vals.append(np.broadcast_to(v, (len(loc),)).astype(float))
        dofs, vals = np.concatenate(dofs), np.concatenate(vals)
        _, last = np.unique(dofs[::-1], return_index=True)
        keep = len(dofs) - 1 - last
        return dofs[keep].astype(np.int64), vals[keep]

    # ------------------------------------------------------------------------------------------
    def local_u(self) -> np.ndarray:
        """Element DOF values (ne, nen*d) of the current displacement (ghosts updated)."""
        return self.space.local_array(self.x)[self.space.cell_dofs]

    def strains(self) -> np.ndarray:
        """Macro strains at this rank's QPs (ne*nq, m): Mandel ε, or F flattened (finite)."""
        ue = self.local_u()
        if self.finite:
            ne, d = len(ue), self.dim
            F = self._forms.deformation_gradient(self.dNdx, ue.reshape(ne, -1, d))
            return F.reshape(-1, self.m)
        return np.matmul(self.B, ue[:, None, :, None])[..., 0].reshape(-1, self.m)

    def evaluate(self, states, strain=None):
        """Material update at all local QPs: stress, tangent, new states (per block).

        Collective.  Finite strain: det F ≤ 0 at any macro QP, or a material that cannot be
        evaluated (overflow, log of a negative number), raises :class:`ConvergenceError` on every
        rank alike, so the Newton driver cuts the step back."""
        from mpi4py import MPI

        eps = self.strains() if strain is None else strain
        nloc = eps.shape[0]
        d, m = self.dim, self.m
        if self.finite:
            jmin = float(np.linalg.det(eps.reshape(-1, d, d)).min(initial=np.inf))
            jmin = self.comm.allreduce(jmin, op=MPI.MIN)
            if not jmin > 0:
                raise ConvergenceError(f"det F <= 0 at a macro quadrature point (min det F = {jmin:.3g})")
        sig = np.zeros((nloc, m))
        Ct = np.zeros((nloc, m, m))
        new = []
        bad = ""
        for (mat, q), st in zip(self.blocks, states):
            x = eps[q].reshape(-1, d, d) if self.finite else eps[q]
            if getattr(mat, "collective", False) or not self.finite:   # the RVE pool fails collectively
                s, C, ns = mat.update(x, st)
            else:
                try:
                    with np.errstate(invalid="raise", divide="raise", over="raise"):
                        s, C, ns = mat.update(x, st)
                except (FloatingPointError, ArithmeticError) as e:   # rank-local: agree below
                    bad = bad or f"material evaluation failed: {e}"
                    continue
            sig[q], Ct[q] = np.reshape(s, (-1, m)), np.reshape(C, (-1, m, m))
            new.append(ns)
        if self.finite:                 # small strain: no update above fails rank-locally
            msgs = [b for b in self.comm.allgather(bad) if b]
            if msgs:
                raise ConvergenceError(msgs[0])
        return eps, sig, Ct, new

    def assemble(self, sig, Ct):
        """Internal force (owned part, a copy) and tangent into A (fem's vectorised assembly)."""
        ne, nq, d = len(self.fmesh.cells), self.nq, self.dim
        f = self._forms
        if self.finite:
            self.space.assemble_matrix(self.A, f.stiffness_finite(self.dNdx, Ct.reshape(ne, nq, d, d, d, d), self.wdet))
            self.space.assemble_vector(self.b, f.internal_force_finite(self.dNdx, sig.reshape(ne, nq, d, d), self.wdet))
        else:
            sq = sig.reshape(ne, nq, self.m)
            Cq = Ct.reshape(ne, nq, self.m, self.m)
            self.space.assemble_matrix(self.A, f.stiffness_small(self.B, Cq, self.wdet))
            self.space.assemble_vector(self.b, f.internal_force_small(self.B, sq, self.wdet))
        return self.b.getArray(readonly=True).copy()

    def load_slope(self) -> float:
        """d(f_int·ū)/dλ along the equilibrium path at the current state (collective).

        Uses the tangent K just assembled (call right after :meth:`assemble` at a converged
        state): v solves K_ff v_f = −K_fc ū, v_c = ū, and the slope is v·(K e) with e = (0, ū)
        (K symmetric: hyperelastic and homogenized hyperelastic tangents are).  It is the end
        derivative of the Hermite-corrected trapezoidal rule for the external work.  One macro
        solve; A is left with the Dirichlet rows eliminated, which the next solve redoes anyway."""
        e = self.dx
        e.set(0.0)
        e.getArray()[self.bc_local] = self.bc_own_vals
        self.A.mult(e, self.b)
        w = self.b.getArray(readonly=True).copy()
        n_its = len(self.ksp_iterations)
        v = self.linear_solve(np.zeros_like(w), self.bc_own_vals)
        del self.ksp_iterations[n_its:]          # not a Newton solve: keep the KSP statistics clean
        return float(self.comm.allreduce(float(v @ w)))

    def linear_solve(self, rhs_owned: np.ndarray, du_bc_owned: np.ndarray) -> np.ndarray:
        """Solve A du = rhs with du = du_bc on Dirichlet DOFs (symmetric elimination)."""
        self.b.getArray()[:] = rhs_owned
        self.dx.set(0.0)
        self.dx.getArray()[self.bc_local] = du_bc_owned
        self.A.zeroRowsColumns(self._rows, 1.0, self.dx, self.b)
        self.ksp.setOperators(self.A)
        self.ksp.solve(self.b, self.dx)
        if self.ksp.getConvergedReason() < 0:
            raise ConvergenceError(f"macro linear solve failed (KSP reason {self.ksp.getConvergedReason()})")
        self.ksp_iterations.append(self.ksp.getIterationNumber())
        return self.dx.getArray(readonly=True).copy()

    def free_norm(self, f_owned: np.ndarray) -> float:
        r = f_owned.copy()
        r[self.bc_local] = 0.0
        return float(np.sqrt(self.comm.allreduce(float(r @ r))))

    def reaction(self, f_owned: np.ndarray, nodes: np.ndarray, component: int) -> float:
        """Σ f_int[component] over the natural node ids ``nodes`` (collective)."""
        mine = np.flatnonzero(np.isin(self.fmesh.node_ids[:self.fmesh.n_owned], np.asarray(nodes)))
        return float(self.comm.allreduce(float(f_owned[mine * self.dim + component].sum())))

    # ---------------------------------------------------------------- natural ordering (I/O)
    def u_natural(self) -> np.ndarray:
        """This rank's block (block_range over the nodes) of u (nn, d) in natural node order."""
        from ..fem.mesh import to_natural

        fm = self.fmesh
        return to_natural(self.comm, fm.node_ids[:fm.n_owned], self.x.getArray(readonly=True).reshape(-1, self.dim),
                          fm.n_global)

    def set_u_natural(self, block: np.ndarray) -> None:
        """Inverse of :meth:`u_natural` (restart on any number of ranks)."""
        from ..fem.mesh import from_natural

        fm = self.fmesh
        u = from_natural(self.comm, fm.node_ids[:fm.n_owned], np.asarray(block, float).reshape(-1, self.dim), fm.n_global)
        self.x.getArray()[:] = u.ravel()

    def cells_natural(self, values: np.ndarray) -> np.ndarray:
        """Per-local-cell values → this rank's block of them in natural cell order."""
        from ..fem.mesh import to_natural

        return to_natural(self.comm, self.fmesh.cell_ids, values, self.fmesh.n_cells_global)

    def output_mesh(self):
        """Q1 cells and points in natural order (the same mesh file at any rank count)."""
        from ..fem.mesh import to_natural
        from ..io import UnstructuredMesh

        fm = self.fmesh
        pts = to_natural(self.comm, fm.node_ids[:fm.n_owned], fm.points[:fm.n_owned], fm.n_global)
        cells = self.cells_natural(fm.node_ids[fm.cells[:, fm.element.vtk_corners]])
        return UnstructuredMesh(fm.cell, pts, cells)

    def quadrature_points(self) -> np.ndarray:
        """Coordinates of this rank's QPs (ne*nq, d), in ``qp_ids`` order."""
        return self.space.quadrature_points()[:, self.qperm].reshape(-1, self.dim)

    def destroy(self) -> None:
        for o in (self.ksp, self.A, self.x, self.b, self.dx, self.nullsp):
            o.destroy()


# ----------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    converged: bool
    iterations: int
    residuals: list
    rates: list
    message: str = ""
    slopes: tuple = (None, None)     # finite strain: d(f·ū)/dλ at the step's start and end


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
    """Load-stepped Newton (small or finite strain) with cut-back; commits material states on
    convergence.

    ``state`` holds per-block material states; the last converged tangent/internal force are kept
    so a new step's first (predictor) iteration needs no extra material evaluation.  Finite
    strain: an iterate with det F ≤ 0 at a macro QP, or a micro/material failure, rejects the
    attempt (the caller cuts back); after every converged state the load slope
    (:meth:`MacroProblem.load_slope`) is computed for the Hermite-corrected work integral.
    """

    def __init__(self, problem: MacroProblem, rtol: float = 1e-8, atol: float = 1e-12, max_iterations: int = 15):
        self.p = problem
        self.rtol, self.atol, self.max_iterations = rtol, atol, max_iterations
        self.states = [mat.initial_state(len(q)) for mat, q in problem.blocks]
        self.lam = 0.0
        self.eps = np.zeros((len(problem.qp_ids), problem.m))
        if problem.finite:
            self.eps[:] = np.eye(problem.dim).ravel()            # F = I
        self.sig = np.zeros_like(self.eps)
        self.slope = None
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
        if self.p.finite:
            self.slope = self.p.load_slope()

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
        slope0 = self.slope
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
                    if p.finite:
                        self.slope = p.load_slope()
                    return StepResult(True, it, res, newton_rates(res, 1e-13 * ref), slopes=(slope0, self.slope))
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
                x = eps[q].reshape(-1, self.p.dim, self.p.dim) if self.p.finite else eps[q]
                out["psi"][q] = energy(mat, x, sn)
                out["dissipation"][q] = dissipation(mat, x, so, sn)
                if "alpha" in sn:
                    out["peeq"][q] = sn["alpha"]
                    out["plastic"][q] = sn["alpha"] > so["alpha"]
        return out

    def integrate(self, qp_values: np.ndarray) -> float:
        """∫ over the macro domain of a QP field (collective)."""
        return float(self.p.comm.allreduce(float((qp_values.reshape(self.p.wdet.shape) * self.p.wdet).sum())))
