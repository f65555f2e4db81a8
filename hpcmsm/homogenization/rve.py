"""Voxel cell problems (KUBC, TUBC, periodic) for conductivity and linear/nonlinear elasticity.

One Q1 element per voxel on a PETSc DMDA.  Periodic boundary conditions use a periodic DMDA, so
periodic degrees of freedom are *the same* unknowns (no penalty, no constraint equations).

Layout: every rank owns a box of nodes.  The elements it evaluates are those whose first (lowest)
node lies in ``[xs-1, xe)`` per axis (its owned elements plus one redundant layer on the low side),
so every owned node row is assembled locally, with no off-process matrix entries: materials are
evaluated redundantly on that thin layer, with identical inputs, hence identical results.  Averages
only count owned elements (first node owned).

Unknowns are fluctuations ``w`` for PBC/KUBC (``u = E·x + w``) and the full field ``u`` for TUBC.
Rigid modes are removed by pinning a minimal set of degrees of freedom (one node for PBC and
conductivity-TUBC; a 3-2-1 / 2-1 set for elasticity-TUBC): the loads are exactly self-equilibrated,
so the pinned reactions vanish and the answer is the nullspace-projected one, while every
preconditioner (GAMG included) sees a nonsingular matrix.

The solver is built for reuse (FE²): the matrix, KSP and preconditioner are created once; for
linear phases the matrix is assembled once and the preconditioner set up once for all load cases.
:meth:`RVEProblem.solve` runs Newton with any phase material that has the shared interface
``stress, tangent, new_state = material.update(strain, state)`` and returns the homogenized stress
and the consistent homogenized tangent by static condensation (m extra solves with the micro
tangent).  The Newton loop is :func:`hpcmsm.homogenization.newton.cell_newton`, the same one the
FE² voxel RVE (:class:`hpcmsm.fe2.rve.VoxelRVE`, gathered direct solves on a group) runs; this
class is its distributed backend (DMDA rows, PETSc KSP), converging relative to the first
residual and without the final correction (which would cost an extra Krylov solve here).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..errors import ConvergenceError, InputError
from . import element as el
from .newton import cell_newton, hill_mandel
from .phases import LinearConductor, constant_tangent

BCS = ("periodic", "kubc", "tubc")


@dataclass
class SolveInfo:
    """Diagnostics of one cell solve (all load cases)."""

    iterations: list = field(default_factory=list)       # KSP iterations per linear solve
    newton_iterations: int = 0
    hill_mandel: list = field(default_factory=list)      # relative HM residual per load case
    residual_norms: list = field(default_factory=list)
    converged: bool = True
    time_assembly: float = 0.0
    time_setup: float = 0.0
    time_solve: float = 0.0

    def as_dict(self) -> dict:
        return {k: (list(map(float, v)) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


class RVEProblem:
    """A voxel cell problem on communicator ``comm`` (any size, e.g. an ensemble subcommunicator).

    Parameters
    ----------
    micro : Microstructure (labels per voxel, voxel size)
    phases : one material per label (``LinearConductor`` for conductivity, ``LinearElastic`` or
        any small-strain material with the shared interface for elasticity)
    bc : "periodic", "kubc" or "tubc"
    kind : "elasticity" or "conductivity" (default: inferred from the phases)
    options : PETSc options pushed under ``prefix`` (defaults: CG + GAMG, rtol 1e-10)
    """

    def __init__(self, micro, phases, bc: str = "periodic", comm=None, *, kind: str | None = None,
                 prefix: str = "rve_", options: dict | None = None, newton_rtol: float = 1e-8,
                 newton_max_it: int = 25):
        if comm is None:
            raise InputError("RVEProblem needs an explicit communicator")
        if bc not in BCS:
            raise InputError(f"unknown boundary condition {bc!r} (choose one of {', '.join(BCS)})")
        self.comm, self.micro, self.bc = comm, micro, bc
        self.phases = list(phases)
        if kind is None:
            kind = "conductivity" if all(isinstance(p, LinearConductor) for p in self.phases) else "elasticity"
        self.kind = kind
        self.dim = d = micro.dim
        labels = np.asarray(micro.labels)
        nlab = int(labels.max()) + 1
        if len(self.phases) < nlab:
            raise InputError(f"microstructure has labels 0..{nlab - 1} but only {len(self.phases)} phases are defined")
        for i, p in enumerate(self.phases):
            if getattr(p, "dim", d) != d:
                raise InputError(f"phase {i} is {p.dim}D but the microstructure is {d}D")
        self.ndof = el.ndof_per_node(kind, d)
        self.m = el.strain_size(kind, d)
        for i, p in enumerate(self.phases):
            C = constant_tangent(p)
            if C is not None and C.shape != (self.m, self.m):
                raise InputError(f"phase {i}: tensor of shape {C.shape} does not fit a {d}D {kind} problem "
                                 f"(expected {self.m}x{self.m})")
        self.nvox = tuple(int(n) for n in labels.shape)          # x, y[, z]
        if min(self.nvox) < 2:
            raise InputError(f"grid {self.nvox} is too small: need at least 2 voxels per direction")
        self.h = np.broadcast_to(np.asarray(micro.voxel_size, dtype=float), (d,)).copy()
        self.volume = float(np.prod(np.array(self.nvox) * self.h))
        self.prefix, self.options = prefix, dict(options or {})
        self.newton_rtol, self.newton_max_it = newton_rtol, newton_max_it
        self.B = el.b_matrices(kind, d, self.h)                      # (nq, m, nen*ndof)
        self.wq = el.quadrature_weights(d, self.h)
        self.nq, self.nen = self.B.shape[0], 2 ** d
        self._linear = all(constant_tangent(p) is not None for p in self.phases)
        self._build_layout(labels)
        self._build_petsc()
        self._assembled = False
        self.correctors = None
        self.last_info = None

    # ------------------------------------------------------------------------------------------
    # layout
    # ------------------------------------------------------------------------------------------
    def _build_layout(self, labels: np.ndarray) -> None:
        from petsc4py import PETSc

        d, nd = self.dim, self.ndof
        periodic = self.bc == "periodic"
        nodes = self.nvox if periodic else tuple(n + 1 for n in self.nvox)
        self.nodes = nodes
        btype = PETSc.DM.BoundaryType.PERIODIC if periodic else PETSc.DM.BoundaryType.NONE
        self.da = PETSc.DMDA().create(dim=d, dof=nd, sizes=nodes, boundary_type=(btype,) * d,
                                      stencil_type=PETSc.DMDA.StencilType.BOX, stencil_width=1,
                                      comm=self.comm)
        rng = self.da.getRanges()
        grng = self.da.getGhostRanges()
        self.own_start = np.array([r[0] for r in rng])
        self.own_n = np.array([r[1] - r[0] for r in rng])
        self.gh_start = np.array([g[0] for g in grng])
        self.gh_n = np.array([g[1] - g[0] for g in grng])
        off = self.own_start - self.gh_start                          # owned box offset in ghost box
        self.off = off
        # --- element box: first node (global) in [xs-1, xe) per axis
        ecoords, evalid = [], []
        for i in range(d):
            g = np.arange(self.own_start[i] - 1, self.own_start[i] + self.own_n[i])
            if periodic:
                ecoords.append(np.mod(g, self.nvox[i]))
                evalid.append(np.ones(len(g), bool))
            else:
                ok = (g >= 0) & (g < self.nvox[i])
                ecoords.append(np.clip(g, 0, self.nvox[i] - 1))
                evalid.append(ok)
        self.ebox = tuple(len(c) for c in ecoords)                   # x, y[, z]
        # arrays in C order (z, y, x)
        lab = labels[np.ix_(*ecoords)].T
        vm = np.ones(lab.shape, bool)
        for i in range(d):
            shp = [1] * d
            shp[d - 1 - i] = -1
            vm = vm & evalid[i].reshape(shp)
        self.elab = np.where(vm, lab, -1).astype(np.int64)            # -1: no element (outside)
        owned = vm.copy()
        for i in range(d):
            sl = [slice(None)] * d
            sl[d - 1 - i] = 0
            owned[tuple(sl)] = False
        self.eowned = owned
        self._invalid = self.elab.ravel() < 0
        # phase element lists (flat C-order indices into the element box) for material evaluation
        flat = self.elab.ravel()
        self.phase_elems = [np.flatnonzero(flat == p) for p in range(len(self.phases))]
        # --- ghosted local numbering, padded by one layer of -1
        G = tuple(self.gh_n[::-1])                                     # (Gz, Gy, Gx)
        self.nghost = int(np.prod(G))
        lidx = np.arange(self.nghost).reshape(G)
        self.lidx_pad = np.pad(lidx, 1, constant_values=-1)
        # element → local node ids (nel_box, nen); element box index e has first node at padded
        # coordinate off + e (ghost coordinate off - 1 + e)
        ebox_c = tuple(self.ebox[::-1])
        offc = off[::-1]
        enodes = []
        for a in el.local_nodes(d):
            ac = a[::-1]
            sl = tuple(slice(offc[i] + ac[i], offc[i] + ac[i] + ebox_c[i]) for i in range(d))
            enodes.append(self.lidx_pad[sl].ravel())
        self.enodes = np.stack(enodes, axis=1)
        self.enodes[self.elab.ravel() < 0] = -1
        edofs = self.enodes[:, :, None] * nd + np.arange(nd)
        self.edofs = np.where(self.enodes[:, :, None] >= 0, edofs, -1).reshape(len(self.enodes), -1)
        # --- owned node rows: local ids and, for every stencil term, the element-box slices
        own_c = tuple(self.own_n[::-1])
        sl_own = tuple(slice(offc[i] + 1, offc[i] + 1 + own_c[i]) for i in range(d))
        self.own_lidx = self.lidx_pad[sl_own].ravel()
        self.nown = len(self.own_lidx)
        self.terms = el.stencil_terms(d)
        offs = el.stencil_offsets(d)
        nodes_a = el.local_nodes(d)
        self.term_elem = []    # per term: flat element-box indices for every owned node
        eidx = np.arange(int(np.prod(ebox_c))).reshape(ebox_c)
        for oi, a_i, b_i in self.terms:
            ac = nodes_a[a_i][::-1]
            sl = tuple(slice(1 - ac[i], 1 - ac[i] + own_c[i]) for i in range(d))
            self.term_elem.append(eidx[sl].ravel())
        # per local node a: element-box indices of the element whose local node a is the owned node
        self.node_elem = []
        for a in nodes_a:
            ac = a[::-1]
            sl = tuple(slice(1 - ac[i], 1 - ac[i] + own_c[i]) for i in range(d))
            self.node_elem.append(eidx[sl].ravel())
        cols = []
        for o in offs:
            occ = o[::-1]
            sl = tuple(slice(offc[i] + 1 + occ[i], offc[i] + 1 + occ[i] + own_c[i]) for i in range(d))
            cols.append(self.lidx_pad[sl].ravel())
        self.col_nodes = np.stack(cols, axis=1)                        # (nown, 3^d)
        # --- global node coordinates of owned nodes (x, y, z), for constraints and output
        gcoords = np.meshgrid(*[np.arange(self.own_start[i], self.own_start[i] + self.own_n[i])
                                for i in range(d)][::-1], indexing="ij")
        self.own_gcoords = np.stack([g.ravel() for g in gcoords[::-1]], axis=1)   # (nown, d) x-first
        # ghost-box global coordinates (wrapped), for constraints on columns
        gh = np.meshgrid(*[np.arange(self.gh_start[i], self.gh_start[i] + self.gh_n[i]) % nodes[i]
                           for i in range(d)][::-1], indexing="ij")
        gh_coords = np.stack([g.ravel() for g in gh[::-1]], axis=1)
        cons = self._constrained_dofs(gh_coords)                       # (nghost, ndof) bool
        self.cons_ghost = cons
        self.cons_own = cons[self.own_lidx]

    def _constrained_dofs(self, coords: np.ndarray) -> np.ndarray:
        """Degrees of freedom fixed to zero, for nodes with global coords (n, d)."""
        d, nd = self.dim, self.ndof
        c = np.zeros((len(coords), nd), bool)
        n = np.array(self.nvox)
        if self.bc == "kubc":
            on_bnd = np.any((coords == 0) | (coords == n), axis=1)
            c[on_bnd] = True
            return c
        origin = np.all(coords == 0, axis=1)
        c[origin] = True                     # translations (and the constant for conductivity)
        if self.bc == "tubc" and self.kind == "elasticity":
            # remove rotations with a minimal 2-1 (2D) / 3-2-1 (3D) set
            ex = np.zeros(d, int)
            ex[0] = n[0]
            nx = np.all(coords == ex, axis=1)
            c[nx, 1:] = True                 # node on the x axis: u_y (and u_z) fixed
            if d == 3:
                ey = np.zeros(d, int)
                ey[1] = n[1]
                ny = np.all(coords == ey, axis=1)
                c[ny, 2] = True              # node on the y axis: u_z fixed
        return c

    def _build_petsc(self) -> None:
        from petsc4py import PETSc

        from ..parallel import petsc_options

        self.A = self.da.createMatrix()
        self.A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        self.x = self.da.createGlobalVec()
        self.b = self.x.duplicate()
        self.xloc = self.da.createLocalVec()
        self.ksp = PETSc.KSP().create(comm=self.comm)
        self.ksp.setOptionsPrefix(self.prefix)
        self.ksp.setOperators(self.A)
        defaults = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12, "ksp_atol": 1e-50,
                    "ksp_max_it": 2000}
        defaults.update(self.options)
        self._petsc_defaults = defaults
        with petsc_options(self.prefix, defaults):
            self.ksp.setFromOptions()
        self.ksp.setInitialGuessNonzero(False)
        if self.kind == "elasticity":
            # rigid-body near-nullspace for smoothed aggregation
            coords = self.x.duplicate()
            arr = coords.getArray().reshape(self.nown, self.ndof)
            arr[:] = self.own_gcoords * self.h
            self._nns = PETSc.NullSpace().createRigidBody(coords)
            self.A.setNearNullSpace(self._nns)
            coords.destroy()
        else:
            self._nns = None

    # ------------------------------------------------------------------------------------------
    # kernels on the element box
    # ------------------------------------------------------------------------------------------
    def _nodal_local(self, vec) -> np.ndarray:
        """Ghosted local values of a global Vec, with a trailing zero row for missing nodes."""
        self.da.globalToLocal(vec, self.xloc)
        arr = self.xloc.getArray(readonly=True)
        return np.concatenate([arr, np.zeros(1)])

    def _element_strain(self, uloc: np.ndarray | None) -> np.ndarray:
        """Strain (nel_box, nq, m) of the nodal field (without the macro part)."""
        nel = len(self.edofs)
        if uloc is None:
            return np.zeros((nel, self.nq, self.m))
        ue = uloc[self.edofs]                                         # -1 → appended zero
        return np.einsum("qmi,ei->eqm", self.B, ue)

    def _evaluate(self, strain: np.ndarray, state: dict | None):
        """Material update on every phase: stress (nel, nq, m), tangent (nel, nq, m, m), state."""
        nel = strain.shape[0]
        stress = np.zeros((nel, self.nq, self.m))
        tangent = np.zeros((nel, self.nq, self.m, self.m))
        new_state = {}
        for p, ids in enumerate(self.phase_elems):
            st = None if state is None else state.get(p)
            if st is None:
                st = self.phases[p].initial_state(len(ids) * self.nq)
            if len(ids) == 0:          # no voxel of this phase on this rank: state passes through
                new_state[p] = st
                continue
            s, D, ns = self.phases[p].update(strain[ids].reshape(-1, self.m), st)
            stress[ids] = s.reshape(len(ids), self.nq, self.m)
            tangent[ids] = np.asarray(D).reshape(len(ids), self.nq, self.m, self.m)
            new_state[p] = ns
        return stress, tangent, new_state

    def _internal_force(self, stress: np.ndarray, magnitude: bool = False):
        """Owned-row internal force Σ_e Bᵀσ w, (nown, ndof); with ``magnitude`` the pair (f, Σ_e |Bᵀσ w|),
        the latter the scale of a force-relative residual test."""
        fe = np.einsum("q,qmi,eqm->ei", self.wq, self.B, stress)     # (nel, nen*ndof)
        fe[self._invalid] = 0.0                                        # outside the domain (KUBC/TUBC)
        nd = self.ndof
        f = np.zeros((self.nown, nd))
        fa = np.zeros((self.nown, nd)) if magnitude else None
        for a, eids in enumerate(self.node_elem):
            blk = fe[eids, a * nd:(a + 1) * nd]
            f += blk
            if magnitude:
                fa += np.abs(blk)
        return (f, fa) if magnitude else f

    def _average(self, q: np.ndarray) -> np.ndarray:
        """Volume average over owned elements of a quadrature field (nel, nq, ...). Collective."""
        from mpi4py import MPI

        own = self.eowned.ravel()
        loc = np.einsum("q,eq...->...", self.wq, q[own])
        out = np.empty_like(np.asarray(loc, dtype=float))
        self.comm.Allreduce(np.ascontiguousarray(loc, dtype=float), out, op=MPI.SUM)
        return out / self.volume

    # ------------------------------------------------------------------------------------------
    # assembly
    # ------------------------------------------------------------------------------------------
    def _assemble(self, tangent: np.ndarray | None) -> float:
        """Assemble the owned rows from element matrices; constrained dofs become identity rows."""
        from petsc4py import PETSc

        t0 = time.perf_counter()
        nd = self.ndof
        if tangent is None:      # linear phases: one element matrix per phase (+ zero for holes)
            tabs = [el.element_matrices(self.B, self.wq, constant_tangent(p)[None])[0] for p in self.phases]
            Ktab = np.stack(tabs + [np.zeros_like(tabs[0])])
            idx = np.where(self.elab.ravel() >= 0, self.elab.ravel(), len(self.phases))
        else:
            Ktab = el.element_matrices(self.B, self.wq, tangent)
            Ktab[self.elab.ravel() < 0] = 0.0
            idx = np.arange(len(Ktab))
        n3 = 3 ** self.dim
        V = np.zeros((self.nown, nd, n3, nd))
        for (oi, a, b), eids in zip(self.terms, self.term_elem):
            blk = Ktab[:, a * nd:(a + 1) * nd, b * nd:(b + 1) * nd]
            V[:, :, oi, :] += blk[idx[eids]]
        # constraints: zero constrained rows and columns, unit diagonal
        cons_col = np.concatenate([self.cons_ghost, np.zeros((1, nd), bool)])[self.col_nodes]  # (nown, n3, nd)
        V[self.cons_own] = 0.0
        V *= ~cons_col[:, None, :, :]
        R = self.own_lidx[:, None] * nd + np.arange(nd)
        C = np.where(self.col_nodes[:, :, None] >= 0, self.col_nodes[:, :, None] * nd + np.arange(nd), -1)
        C = C.reshape(self.nown, n3 * nd).astype(PETSc.IntType)
        self.A.zeroEntries()
        self.A.setValuesLocalRCV(R.astype(PETSc.IntType), C, V.reshape(self.nown, nd * n3 * nd),
                                 addv=PETSc.InsertMode.ADD_VALUES)
        cr, cc = np.nonzero(self.cons_own)
        if len(cr):
            rows = (self.own_lidx[cr] * nd + cc).astype(PETSc.IntType)
            self.A.setValuesLocalRCV(rows[:, None], rows[:, None], np.ones((len(rows), 1)),
                                     addv=PETSc.InsertMode.ADD_VALUES)
        self.A.assemble()
        self._assembled = True
        return time.perf_counter() - t0

    def _set_rhs(self, f_own: np.ndarray, sign: float = -1.0) -> None:
        arr = self.b.getArray()
        v = sign * f_own
        v[self.cons_own] = 0.0
        arr[:] = v.ravel()

    def _solve_linear(self, info: SolveInfo) -> None:
        from petsc4py import PETSc

        t0 = time.perf_counter()
        self.ksp.solve(self.b, self.x)
        info.time_solve += time.perf_counter() - t0
        info.iterations.append(self.ksp.getIterationNumber())
        if self.ksp.getConvergedReason() < 0:
            info.converged = False
            raise ConvergenceError(f"{self.prefix}: linear solve diverged "
                                   f"({self.ksp.getConvergedReason()}, {self.ksp.getIterationNumber()} iterations)")

    def _setup_pc(self, info: SolveInfo) -> None:
        from ..parallel import petsc_options

        t0 = time.perf_counter()
        # multigrid levels are created (and read their options) during set-up: keep the prefixed
        # options in the database until then
        with petsc_options(self.prefix, self._petsc_defaults):
            self.ksp.setUp()
        info.time_setup += time.perf_counter() - t0

    # ------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------
    def initial_state(self) -> dict:
        """Per-phase material state for this rank's element box (commit what solve returns)."""
        return {p: self.phases[p].initial_state(len(ids) * self.nq) for p, ids in enumerate(self.phase_elems)}

    def _macro_strain_field(self, E: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(E, dtype=float), (len(self.edofs), self.nq, self.m))

    def solve(self, macro_strain, state: dict | None = None, *, tangent: bool = True):
        """Strain-driven cell problem (PBC or KUBC) with Newton.

        Returns ``(stress, C_hom, new_state, info)``: the volume-averaged stress (m,), the
        consistent homogenized tangent (m, m) by condensation (None if ``tangent=False``), the
        uncommitted new material state and a :class:`SolveInfo`.  Linear phases converge in one
        Newton step.
        """
        if self.bc == "tubc":
            if self._linear:
                C, info = self.effective_tensor()
                E = np.asarray(macro_strain, float)
                return C @ E, C, state, info
            raise InputError("TUBC is traction driven: use bc='periodic' or 'kubc' for strain-driven "
                             "nonlinear cell problems")
        info = SolveInfo()
        E = np.asarray(macro_strain, dtype=float).reshape(self.m)
        self._info, self._state = info, state
        res = cell_newton(self, E, [(None, None)], rtol=self.newton_rtol,
                          max_iterations=self.newton_max_it, reference="initial",
                          final_correction=False, tangent=tangent)
        info.residual_norms = list(res.residuals)
        info.newton_iterations = res.iterations
        if not res.converged:
            info.converged = False
            raise ConvergenceError(f"{self.prefix}: Newton did not converge in {res.iterations} iterations "
                                   f"(|r| = {res.residuals[-1]:.3e}, |r0| = {res.residuals[0]:.3e})")
        ev = res.ev
        sigma = self._average(ev.stress)
        eps = self._average(ev.strain)
        work = self._average(np.einsum("eqm,eqm->eq", ev.stress, ev.strain))
        mag = self._average(np.linalg.norm(ev.stress, axis=-1) * np.linalg.norm(ev.strain, axis=-1))
        info.hill_mandel.append(hill_mandel(work, sigma, eps, mag))
        self.last_info = info
        return sigma, res.C, ev.new_state, info

    # --- the backend of hpcmsm.homogenization.newton.cell_newton: distributed PETSc KSP --------
    # (w: this rank's owned nodal fluctuation values, flat (nown*ndof,), None for zero; history:
    # self._state)
    def evaluate(self, E, w):
        """Material update at w, owned-row residual and its global norm (the tangent is assembled
        in :meth:`correction`, only when a correction is needed)."""
        strain = self._strain(E, w)
        stress, D, new_state = self._evaluate(strain, self._state)
        f = self._internal_force(stress)
        f[self.cons_own] = 0.0
        rnorm = float(np.sqrt(self.comm.allreduce(float(np.sum(f * f)))))
        return SimpleNamespace(strain=strain, stress=stress, D=D, new_state=new_state, f=f,
                               rnorm=rnorm, ref=None)

    def _strain(self, E, w) -> np.ndarray:
        """Strain (nel_box, nq, m) of macro strain E plus the fluctuation w (owned nodal values,
        flat; None for zero: no ghost exchange)."""
        uloc = None
        if w is not None:
            self.x.getArray()[:] = w
            uloc = self._nodal_local(self.x)
        return self._macro_strain_field(E) + self._element_strain(uloc)

    def correction(self, ev) -> np.ndarray:
        info = self._info
        t0 = time.perf_counter()
        if not (self._linear and self._assembled):
            self._assemble(None if self._linear else ev.D)
            info.time_assembly += time.perf_counter() - t0
            self._setup_pc(info)
        self._set_rhs(ev.f)
        self._solve_linear(info)
        return self.x.getArray(readonly=True).copy()

    def add(self, w, dw, alpha=1.0) -> np.ndarray:
        return alpha * dw if w is None else w + alpha * dw

    def condense(self, ev, extra: bool):
        if extra:
            raise NotImplementedError("RVEProblem: no final correction (it would be an extra Krylov solve)")
        return self._condense(ev.D, self._info), None

    def refresh(self, E, w):
        return self.evaluate(E, w)

    def _condense(self, D: np.ndarray, info: SolveInfo) -> np.ndarray:
        """Consistent homogenized tangent: for unit strains e_k solve K χ_k = -f(D e_k)."""
        if not self._assembled or not self._linear:
            self._assemble(None if self._linear else D)
            self._setup_pc(info)
        C = np.zeros((self.m, self.m))
        for k in range(self.m):
            ek = np.zeros(self.m)
            ek[k] = 1.0
            sk = np.einsum("eqmn,n->eqm", D, ek)
            self._set_rhs(self._internal_force(sk))
            self._solve_linear(info)
            chi = self._element_strain(self._nodal_local(self.x))
            C[:, k] = self._average(np.einsum("eqmn,eqn->eqm", D, ek + chi))
        return C

    def effective_tensor(self, *, keep_correctors: bool = False):
        """Apparent (KUBC, TUBC) or periodic effective tensor (m, m) of linear phases.

        Uses one assembled matrix and one preconditioner for all m unit load cases.  Returns
        ``(C_eff, info)``; ``info.hill_mandel`` holds the relative Hill–Mandel residual
        ``|<σ:ε> - <σ>:<ε>| / |<σ>:<ε>|`` of every load case.  With ``keep_correctors`` the
        fluctuation fields (the correctors χ_k for PBC) are kept in ``self.correctors`` as owned
        nodal arrays (nown, ndof) and the energetic form ``<(e_i+∇χ_i)·C(e_j+∇χ_j)>`` in
        ``self.C_energy``.
        """
        if not self._linear:
            raise InputError("effective_tensor needs linear phases; use solve() for history materials")
        info = SolveInfo()
        t0 = time.perf_counter()
        if not self._assembled:
            self._assemble(None)
            info.time_assembly = time.perf_counter() - t0
            self._setup_pc(info)
        strain0 = np.zeros((len(self.edofs), self.nq, self.m))
        # linear phases: one tangent per element (not per point) keeps memory 2^d times smaller
        Dtab = np.stack([constant_tangent(p) for p in self.phases] + [np.zeros((self.m, self.m))])
        lab = self.elab.ravel()
        D = Dtab[np.where(lab >= 0, lab, len(self.phases))]                     # (nel, m, m)
        m = self.m
        avg_s, avg_e = np.zeros((m, m)), np.zeros((m, m))
        strains = []
        correctors = []
        for k in range(m):
            ek = np.zeros(m)
            ek[k] = 1.0
            if self.bc == "tubc":
                # uniform traction Σ = e_k: the load Σ_e ∫Bᵀ Σ equals ∫_∂Ω Nᵀ Σ n (div Σ = 0)
                self._set_rhs(self._internal_force(np.broadcast_to(ek, strain0.shape)), sign=1.0)
                self._solve_linear(info)
                eps = self._element_strain(self._nodal_local(self.x))
            else:
                self._set_rhs(self._internal_force(np.broadcast_to((D @ ek)[:, None, :], strain0.shape)))
                self._solve_linear(info)
                eps = ek + self._element_strain(self._nodal_local(self.x))
            sig = np.einsum("emn,eqn->eqm", D, eps)
            s_av, e_av = self._average(sig), self._average(eps)
            work = self._average(np.einsum("eqm,eqm->eq", sig, eps))
            info.hill_mandel.append(abs(work - s_av @ e_av) / max(abs(s_av @ e_av), 1e-300))
            avg_s[:, k], avg_e[:, k] = s_av, e_av
            if keep_correctors:
                correctors.append(self.x.getArray(readonly=True).reshape(self.nown, self.ndof).copy())
                strains.append(eps)
        if self.bc == "tubc":
            C = avg_s @ np.linalg.inv(avg_e)      # avg_s = I up to round-off; S = avg_e
        else:
            C = avg_s                              # avg_e = I exactly (fluctuations average to 0)
        if keep_correctors:
            self.correctors = correctors
            Ce = np.zeros((m, m))
            for i in range(m):
                si = np.einsum("emn,eqn->eqm", D, strains[i])
                for j in range(m):
                    Ce[i, j] = self._average(np.einsum("eqm,eqm->eq", si, strains[j]))
            self.C_energy = Ce
        self.last_info = info
        self.avg_stress, self.avg_strain = avg_s, avg_e
        return C, info

    # ------------------------------------------------------------------------------------------
    def owned_box(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(start, count) of this rank's node box, x-first (for HDF5 output)."""
        return tuple(int(s) for s in self.own_start), tuple(int(n) for n in self.own_n)

    def owned_element_box(self):
        """(start, count, flat element-box indices) of the owned elements (x-first start/count)."""
        start = self.own_start.copy()
        n = self.own_n.copy()
        if self.bc != "periodic":
            n = np.minimum(self.own_start + self.own_n, self.nvox) - start
        d = self.dim
        ebox_c = tuple(self.ebox[::-1])
        eidx = np.arange(int(np.prod(ebox_c))).reshape(ebox_c)
        nc = n[::-1]
        sl = tuple(slice(1, 1 + nc[i]) for i in range(d))
        return tuple(int(s) for s in start), tuple(int(x) for x in n), eidx[sl].ravel()

    def destroy(self) -> None:
        for o in ("A", "x", "b", "xloc", "ksp", "da", "_nns"):
            obj = getattr(self, o, None)
            if obj is not None:
                obj.destroy()
                setattr(self, o, None)
