"""Implicit Cahn–Hilliard and Allen–Cahn steps on a distributed DMDA (PETSc SNES).

Discretisation: cell-centred finite volumes (= 5/7-point finite differences) on a uniform grid.
Fluxes live on faces, so mass is conserved by construction and no-flux boundaries are exact.

Cahn–Hilliard (split form, unknowns c and μ per cell, DMDA dof = 2), one step of size Δt::

    R_c = c − cⁿ − Δt [ ∇_h·(M(c) ∇_h μ) + f(x, tⁿ⁺¹) ]
    R_μ = μ − ψ′_c(c) − ψ′_e(cⁿ) + κ Δ_h c − Σ terms′

Allen–Cahn (unknown φ, dof = 1)::

    R = φ − φⁿ + Δt [ L (ψ′_c(φ) + ψ′_e(φⁿ) − γ Δ_h φ) − f(x, tⁿ⁺¹) ]

``scheme = "convex_splitting"`` treats the convex part ψ_c implicitly and the concave part ψ_e
explicitly (Eyre): unconditionally energy stable and uniquely solvable for any Δt.
``scheme = "implicit"`` is backward Euler on all of ψ (smaller error, stable only for moderate Δt;
the adaptive stepper rejects any step whose energy rises).

Linear solver default: GMRES preconditioned by the exact inverse of the constant-coefficient
linearisation (ψ″ → S, M(c) → M̄), applied with FFTs (periodic) or DCT-II (no-flux), which the
cell-centred Laplacian diagonalises exactly.  Every other PETSc preconditioner is available under
the options prefix (``-ch_pc_type fieldsplit``, ``-ch_pc_type mg``, ...): the matrix is assembled
on the DMDA, so PCMG gets its hierarchy and PCFIELDSPLIT its c/μ fields from the DM.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from .energies import EnergyTerm, FreeEnergy
from .grid import Grid

Source = Callable[..., np.ndarray]


@dataclass
class Mobility:
    """M(c) = M0 (``constant``) or M0·c(1−c) (``quadratic``, degenerate at c = 0, 1)."""

    M0: float
    kind: str = "constant"

    def __post_init__(self):
        if not self.M0 > 0:
            raise InputError(f"mobility must be positive, got {self.M0}")
        if self.kind not in ("constant", "quadratic"):
            raise InputError(f"mobility kind {self.kind!r}: expected 'constant' or 'quadratic'")

    @property
    def constant(self) -> bool:
        return self.kind == "constant"

    def value(self, c):
        return self.M0 * c * (1 - c) if self.kind == "quadratic" else np.full_like(c, self.M0)

    def deriv(self, c):
        return self.M0 * (1 - 2 * c) if self.kind == "quadratic" else np.zeros_like(c)


@dataclass
class StepResult:
    converged: bool
    newton_its: int
    linear_its: int
    reason: int


@dataclass
class SolverOptions:
    scheme: str = "implicit"              # or "convex_splitting"
    snes_rtol: float = 1e-6
    snes_atol: float = 1e-11               # per sqrt(cell) (scaled by √N below)
    snes_max_it: int = 15
    ksp_rtol: float = 1e-2
    fft_shift: str = "max"                 # S in the FFT preconditioner: max or mean of ψ″_c
    petsc: dict = field(default_factory=dict)


class _FFTPC:
    """Exact inverse of the constant-coefficient Jacobian by FFT (periodic) / DCT-II (no-flux)."""

    def __init__(self, solver: "PhaseFieldSolver"):
        import scipy.fft as sf

        self.s = solver
        self.sf = sf
        g = solver.grid
        lam = 0.0
        for a in range(g.dim):
            n = g.shape[a]
            m = np.arange(n)
            if g.periodic:
                la = -(2 - 2 * np.cos(2 * np.pi * m / n)) / g.h[a] ** 2
            else:
                la = -(2 - 2 * np.cos(np.pi * m / n)) / g.h[a] ** 2
            shp = [1] * g.dim
            shp[a] = -1
            lam = lam + la.reshape(shp)
        self.lam = np.broadcast_to(lam, g.shape).copy()
        if g.periodic:  # real FFT keeps the last axis half spectrum
            self.lam = self.lam[..., : g.shape[-1] // 2 + 1]

    def _fwd(self, a):
        axes = tuple(range(a.ndim - self.s.grid.dim, a.ndim))
        if self.s.grid.periodic:
            return self.sf.rfftn(a, axes=axes, workers=1)
        return self.sf.dctn(a, type=2, norm="ortho", axes=axes, workers=1)

    def _inv(self, a):
        axes = tuple(range(a.ndim - self.s.grid.dim, a.ndim))
        if self.s.grid.periodic:
            return self.sf.irfftn(a, s=self.s.grid.shape, axes=axes, workers=1)
        return self.sf.idctn(a, type=2, norm="ortho", axes=axes, workers=1)

    def apply(self, pc, x, y) -> None:
        s, g = self.s, self.s.grid
        loc = g.owned_view(x, readonly=True)
        r = g.allgather(loc) if g.comm.size > 1 else loc
        lam, dt, S = self.lam, s.dt, s.pc_shift
        if s.model == "ch":
            rr = self._fwd(np.moveaxis(r, -1, 0))   # (2, ...) spectra of (−r_μ, r_c)
            rm, rc = -rr[0], rr[1]
            b = -dt * s.pc_mobility * lam          # ∂R_c/∂μ symbol
            cc = -S + s.kappa * lam                # ∂R_μ/∂c symbol
            det = 1.0 - b * cc
            rr[0] = (rc - b * rm) / det
            rr[1] = (rm - cc * rc) / det
            out = np.moveaxis(self._inv(rr), 0, -1)
        else:
            out = self._inv(self._fwd(r[..., 0]) / (1.0 + dt * s.mobility.M0 * (S - s.kappa * lam)))[..., None]
        g.owned_view(y)[...] = out[g.owned]


class PhaseFieldSolver:
    """One implicit step of Cahn–Hilliard (``model="ch"``) or Allen–Cahn (``model="ac"``).

    Parameters
    ----------
    comm: communicator; grid: cells (x, y[, z]); lengths: domain size; periodic: boundary type.
    energy: bulk density ψ; kappa: gradient coefficient κ (γ) [energy/length];
    mobility: M for CH [length²/(energy·time)] or L for AC [1/(energy·time)].
    source: optional f(x, y[, z], t) added to ∂c/∂t (manufactured solutions).
    terms: extra energy contributions (:class:`~hpcmsm.phasefield.energies.EnergyTerm`).
    prefix: PETSc options prefix (default ``ch_`` / ``ac_``).
    """

    def __init__(self, comm, model: str, shape: Sequence[int], lengths: Sequence[float], periodic: bool,
                 energy: FreeEnergy, kappa: float, mobility: Mobility | float,
                 source: Source | None = None, terms: Sequence[EnergyTerm] = (),
                 options: SolverOptions | None = None, prefix: str | None = None):
        from petsc4py import PETSc

        if model not in ("ch", "ac"):
            raise InputError(f"model must be 'ch' or 'ac', got {model!r}")
        if not kappa > 0:
            raise InputError(f"gradient coefficient kappa must be positive, got {kappa}")
        self.model = model
        self.mobility = mobility if isinstance(mobility, Mobility) else Mobility(float(mobility))
        if model == "ac" and not self.mobility.constant:
            raise InputError("Allen–Cahn: only a constant mobility L is supported")
        self.energy, self.kappa, self.source, self.terms = energy, float(kappa), source, list(terms)
        self.opts = options or SolverOptions()
        if self.opts.scheme not in ("convex_splitting", "implicit"):
            raise InputError(f"scheme {self.opts.scheme!r}: expected 'convex_splitting' or 'implicit'")
        self.split = self.opts.scheme == "convex_splitting"
        self.comm = comm
        self.dof = 2 if model == "ch" else 1
        self.grid = g = Grid(comm, shape, lengths, periodic, self.dof)
        self.prefix = prefix or f"{model}_"
        self.dt, self.t_new = 1.0, 0.0
        self.pc_shift, self.pc_mobility = 0.0, self.mobility.M0
        self.X = g.da.createGlobalVec()       # current iterate / solution (c, μ) or φ
        self.Xold = g.da.createGlobalVec()
        self.F = g.da.createGlobalVec()
        self._xyz = g.coordinates_xyz()
        self._src_cache: tuple[float, np.ndarray] | None = None
        self._build_structure()
        self.A = g.da.createMatrix()
        self._diag_vec = g.da.createGlobalVec()
        self._assembled_dt = None
        self._K0 = self._B = None
        self.A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        self.snes = PETSc.SNES().create(comm)
        self.snes.setOptionsPrefix(self.prefix)
        self.snes.setDM(g.da)
        self.snes.setFunction(self._residual, self.F)
        self.snes.setJacobian(self._jacobian, self.A, self.A)
        n = g.ncells * self.dof
        self.snes.setTolerances(rtol=self.opts.snes_rtol, atol=self.opts.snes_atol * np.sqrt(n),
                                stol=1e-14, max_it=self.opts.snes_max_it)
        ksp = self.snes.getKSP()
        ksp.setType("gmres")
        ksp.setTolerances(rtol=self.opts.ksp_rtol, atol=1e-50, max_it=500)
        ksp.setGMRESRestart(100)
        pc = ksp.getPC()
        pc.setType("python")
        self._fftpc = _FFTPC(self)
        pc.setPythonContext(self._fftpc)
        from ..parallel import petsc_options

        with petsc_options(self.prefix, self.opts.petsc):
            self.snes.setFromOptions()
        self.snes.setUp()

    # ------------------------------------------------------------------------------------------
    def _build_structure(self) -> None:
        """Column indices of the Jacobian rows (fixed), in PETSc global numbering."""
        g, d, dof = self.grid, self.grid.dim, self.dof
        own = g.gidx[g.interior]
        nbs = []
        for a in range(d):
            for s in (-1, 1):
                nb = g.neighbour(g.gidx, a, s)
                nbs.append(np.where(nb >= 0, nb, own))  # boundary: self column, value 0
        self._dirs = [(a, s) for a in range(d) for s in (-1, 1)]
        pts = own.ravel()
        nb = np.stack([x.ravel() for x in nbs], axis=1)  # (npts, 2d)
        npts = pts.size
        if dof == 2:
            # both rows: [c_p, μ_p, c_nb..., μ_nb...]
            cols = np.concatenate([2 * pts[:, None], 2 * pts[:, None] + 1, 2 * nb, 2 * nb + 1], axis=1)
            J = np.stack([cols, cols], axis=1).reshape(2 * npts, -1)
        else:
            J = np.concatenate([pts[:, None], nb], axis=1)
        self._csr_J = np.ascontiguousarray(J, dtype=np.int32)
        self._csr_I = np.arange(0, J.size + 1, J.shape[1], dtype=np.int32)
        self._rowlen = J.shape[1]

    # ------------------------------------------------------------------------------------------
    def _source(self) -> np.ndarray | float:
        if self.source is None:
            return 0.0
        if self._src_cache is None or self._src_cache[0] != self.t_new:
            self._src_cache = (self.t_new, np.asarray(self.source(*self._xyz, self.t_new), dtype=float))
        return self._src_cache[1]

    def _old_parts(self):
        """Explicit pieces of the step (depend on the old state only)."""
        old = self.grid.owned_view(self.Xold, readonly=True)
        c_old = old[..., 0].copy()
        return c_old, self.energy.explicit(c_old, self.split)

    def _terms_potential(self, c):
        mu = 0.0
        for t in self.terms:
            mu = mu + t.potential(c)
        return mu

    def _residual(self, snes, X, F) -> None:
        g = self.grid
        P = g.ghosted(X)
        c_p = P[..., 0]
        c = c_p[g.interior]
        h2 = [hh * hh for hh in g.h]
        R = g.owned_view(F)
        c_old, expl = self._old
        dpsi, _ = self.energy.implicit(c, self.split)
        lap_c = sum((g.neighbour(c_p, a, s) - c) / h2[a] for a, s in self._dirs)
        if self.model == "ch":
            m_p = P[..., 1]
            mu = m_p[g.interior]
            div = 0.0
            for a, s in self._dirs:
                cn = g.neighbour(c_p, a, s)
                Mf = self.mobility.value(0.5 * (c + cn)) if not self.mobility.constant else self.mobility.M0
                div = div + Mf * (g.neighbour(m_p, a, s) - mu) / h2[a]
            # equation order (R_μ, R_c) puts ∂R_μ/∂c and ∂R_c/∂μ on the matrix diagonal
            R[..., 1] = c - c_old - self.dt * (div + self._source())
            R[..., 0] = -(mu - dpsi - expl + self.kappa * lap_c - self._terms_potential(c))
        else:
            L = self.mobility.M0
            R[..., 0] = c - c_old + self.dt * (L * (dpsi + expl - self.kappa * lap_c + self._terms_potential(c))
                                               - self._source())

    def _jacobian(self, snes, X, A, P) -> None:
        """Assemble the exact Jacobian.  Rows per cell: (−R_μ, R_c) for CH, R for AC.

        With constant mobility only the diagonal depends on the iterate, so after the first
        Newton iteration of a step only the diagonal is rewritten (MatDiagonalSet, no MatSetValues).
        """
        from mpi4py import MPI

        g = self.grid
        Pg = g.ghosted(X)
        c_p = Pg[..., 0]
        c = c_p[g.interior]
        _, d2 = self.energy.implicit(c, self.split)
        for t in self.terms:
            d2 = d2 + t.potential_derivative(c)
        h2 = [hh * hh for hh in g.h]
        dt, kap = self.dt, self.kappa
        w = [g.valid[d] for d in self._dirs]
        lapdiag = sum(w[k] / h2[a] for k, (a, s) in enumerate(self._dirs))
        if self.opts.fft_shift == "max":
            S = self.comm.allreduce(float(np.max(d2)) if d2.size else -np.inf, op=MPI.MAX)
        else:
            S = g.sum(np.sum(d2)) / g.ncells
        self.pc_shift = max(S, 0.0)
        if self.model == "ch":
            diag = np.empty(c.shape + (2,))
            diag[..., 0] = d2 + kap * lapdiag
            if not self.mobility.constant:
                self._assemble_ch(Pg, c, d2, lapdiag, w, h2, P, dt)
            elif self._assembled_dt != dt:
                self._fast_assemble(P, dt)
            diag[..., 1] = self._diag_c * dt
        else:
            diag = (1 + dt * self.mobility.M0 * (d2 + kap * lapdiag))[..., None]
            if self._assembled_dt != dt:
                self._fast_assemble(P, dt)
        self._diag_vec.getArray().reshape(diag.shape)[...] = diag
        P.setDiagonal(self._diag_vec, addv=False)
        P.assemble()
        if A != P:
            A.assemble()

    def _fast_assemble(self, P, dt: float) -> None:
        """Constant coefficients: J = K0 + Δt·B (same nonzero pattern, MatCopy + MatAXPY in C);
        the iterate-dependent diagonal is written afterwards with MatDiagonalSet."""
        from petsc4py import PETSc

        if self._K0 is None:
            g = self.grid
            h2 = [hh * hh for hh in g.h]
            w = [g.valid[d] for d in self._dirs]
            npts = int(np.prod(g.local_shape))
            kap, M0 = self.kappa, self.mobility.M0
            K0 = np.zeros((npts, self.dof, self._rowlen))
            B = np.zeros_like(K0)
            nd = len(self._dirs)
            if self.model == "ch":
                K0[:, 0, 1] = -1.0
                K0[:, 1, 0] = 1.0
                dmp = 0.0
                for k, (a, s) in enumerate(self._dirs):
                    K0[:, 0, 2 + k] = (-kap * w[k] / h2[a]).ravel()
                    B[:, 1, 2 + nd + k] = (-M0 * w[k] / h2[a]).ravel()
                    dmp = dmp + M0 * w[k] / h2[a]
                self._diag_c = np.broadcast_to(dmp, g.local_shape).copy()
            else:
                K0[:, 0, 0] = 1.0
                for k, (a, s) in enumerate(self._dirs):
                    B[:, 0, 1 + k] = (-M0 * kap * w[k] / h2[a]).ravel()
            # diagonal entries must exist in the pattern: put a 1 there, zeroed below
            self._K0 = self.grid.da.createMatrix()
            self._B = self.grid.da.createMatrix()
            self._set_csr(self._K0, K0 + 1e-300)
            self._set_csr(self._B, B + 1e-300)
        self._K0.copy(P, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        P.axpy(dt, self._B, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        self._assembled_dt = dt

    def _set_csr(self, P, V) -> None:
        P.zeroEntries()
        P.setValuesCSR(self._csr_I, self._csr_J, V.reshape(-1), addv=True)
        P.assemble()

    def _assemble_ch(self, Pg, c, d2, lapdiag, w, h2, P, dt) -> None:
        g = self.grid
        kap = self.kappa
        c_p, m_p = Pg[..., 0], Pg[..., 1]
        mu = m_p[g.interior]
        nd = len(self._dirs)
        V = np.zeros((c.size, 2, self._rowlen))
        # columns: [c_p, μ_p, c_nb(nd), μ_nb(nd)]; row 0: −R_μ, row 1: R_c
        dcp = np.ones_like(c)
        dmp = np.zeros_like(c)
        Msum = 0.0
        for k, (a, s) in enumerate(self._dirs):
            avg = 0.5 * (c + g.neighbour(c_p, a, s))
            Mf = w[k] * self.mobility.value(avg)
            dM = w[k] * self.mobility.deriv(avg)
            grad = (g.neighbour(m_p, a, s) - mu) / h2[a]
            dcp = dcp - dt * 0.5 * dM * grad
            dmp = dmp + dt * Mf / h2[a]
            V[:, 0, 2 + k] = (-kap * w[k] / h2[a]).ravel()
            V[:, 1, 2 + k] = (-dt * 0.5 * dM * grad).ravel()
            V[:, 1, 2 + nd + k] = (-dt * Mf / h2[a]).ravel()
            Msum += float(np.sum(self.mobility.value(avg)))
        V[:, 0, 0] = (d2 + kap * lapdiag).ravel()
        V[:, 0, 1] = -1.0
        V[:, 1, 0] = dcp.ravel()
        V[:, 1, 1] = dmp.ravel()
        self._diag_c = dmp / dt  # diagonal of the R_c row (∂R_c/∂μ_p), per unit Δt
        self.pc_mobility = (g.sum(Msum) / (nd * g.ncells)) if not self.mobility.constant else self.mobility.M0
        self._set_csr(P, V)

    # ------------------------------------------------------------------------------------------
    # state access
    def set_state(self, c: np.ndarray, mu: np.ndarray | None = None) -> None:
        """Set the owned block (natural order) of c (and μ; computed from c if omitted)."""
        v = self.grid.owned_view(self.X)
        v[..., 0] = c
        if self.dof == 2:
            if mu is None:
                v[..., 1] = self.chemical_potential()
            else:
                v[..., 1] = mu

    def field(self, k: int = 0) -> np.ndarray:
        """Copy of component ``k`` (0: c/φ, 1: μ) on the owned block."""
        return self.grid.owned_view(self.X, readonly=True)[..., k].copy()

    def gather(self, k: int = 0) -> np.ndarray:
        """Component ``k`` on the whole grid (every rank), natural (z, y, x) order."""
        return self.grid.allgather(self.field(k))

    def chemical_potential(self) -> np.ndarray:
        """μ = ψ′(c) − κ Δ_h c (+ terms) of the current field, owned block."""
        g = self.grid
        P = g.ghosted(self.X)
        c_p = P[..., 0]
        c = c_p[g.interior]
        lap = sum((g.neighbour(c_p, a, s) - c) / (g.h[a] ** 2) for a, s in
                  [(a, s) for a in range(g.dim) for s in (-1, 1)])
        return self.energy.dpsi(c) - self.kappa * lap + self._terms_potential(c)

    def free_energy(self) -> float:
        """Discrete F = Σ_cells [ψ(c) + (κ/2) Σ_faces ((c_nb − c)/h)²] h^d (collective)."""
        g = self.grid
        P = g.ghosted(self.X)
        c_p = P[..., 0]
        c = c_p[g.interior]
        e = float(np.sum(self.energy.psi(c)))
        for a in range(g.dim):
            e += 0.5 * self.kappa * float(np.sum((g.neighbour(c_p, a, 1) - c) ** 2)) / g.h[a] ** 2
        e *= g.cell_volume
        for t in self.terms:
            e += t.energy(c)
        return g.sum(e)

    def mass(self) -> float:
        """∫ c dx (collective)."""
        return self.grid.sum(float(np.sum(self.field(0)))) * self.grid.cell_volume

    def dissipation(self) -> float:
        """Σ M_f |∇_h μ|² h^d (CH) or L Σ μ² h^d (AC): −dF/dt of the semi-discrete system."""
        g = self.grid
        if self.model == "ch":
            P = g.ghosted(self.X)
            c_p, m_p = P[..., 0], P[..., 1]
            c, mu = c_p[g.interior], m_p[g.interior]
            d = 0.0
            for a in range(g.dim):
                cn = g.neighbour(c_p, a, 1)
                Mf = self.mobility.value(0.5 * (c + cn)) * g.valid[(a, 1)]
                d += float(np.sum(Mf * (g.neighbour(m_p, a, 1) - mu) ** 2)) / g.h[a] ** 2
        else:
            mu = self.chemical_potential()
            d = self.mobility.M0 * float(np.sum(mu * mu))
        return g.sum(d * g.cell_volume)

    # ------------------------------------------------------------------------------------------
    def step(self, dt: float, t_new: float, guess: np.ndarray | None = None) -> StepResult:
        """Advance the current state by ``dt`` to time ``t_new``.  On failure the state is kept.

        ``guess``: optional initial guess for c (owned block); it must have the old mass, which
        any affine extrapolation of conserved states has, so Newton updates keep the mass exact.
        """
        self.dt, self.t_new = float(dt), float(t_new)
        self.X.copy(self.Xold)
        self._old = self._old_parts()
        if guess is not None:
            self.grid.owned_view(self.X)[..., 0] = guess
        self.snes.solve(None, self.X)
        reason = self.snes.getConvergedReason()
        its = self.snes.getIterationNumber()
        lits = self.snes.getLinearSolveIterations()
        ok = reason > 0 and np.isfinite(self.snes.getFunctionNorm())
        if not ok:
            self.Xold.copy(self.X)
        return StepResult(bool(ok), int(its), int(lits), int(reason))

    def undo(self) -> None:
        """Return to the state before the last step (after a rejected step)."""
        self.Xold.copy(self.X)

    def destroy(self) -> None:
        for o in (self.snes, self.A, self.X, self.Xold, self.F, self._diag_vec, self._K0, self._B):
            if o is None:
                continue
            o.destroy()
        self.grid.destroy()
