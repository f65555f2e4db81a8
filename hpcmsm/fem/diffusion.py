"""Scalar diffusion / heat conduction: steady (``solve_diffusion``) and transient backward Euler
(:class:`HeatProblem`).  -∇·(κ∇u) = f, κ a scalar or a (d, d) tensor per quadrature point."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..audit import Audit
from ..errors import ConvergenceError, InputError
from ..parallel import check_all
from . import forms
from .bcs import Dirichlet, Neumann, dirichlet_dofs, neumann_vector
from .solvers import DIFFUSION_DEFAULTS, ksp_info, make_ksp
from .space import FunctionSpace


def _coef(value, x: np.ndarray, name: str):
    """Coefficient at quadrature points: number, (d, d) tensor, or f(x)."""
    v = np.asarray(value(x) if callable(value) else value, dtype=float)
    return v


def _check_kappa(comm, kappa, dim):
    if callable(kappa):
        return
    k = np.asarray(kappa, float)
    if k.ndim == 0:
        ok = k > 0
    elif k.shape == (dim, dim):
        ok = np.allclose(k, k.T) and np.linalg.eigvalsh(k).min() > 0
    else:
        raise InputError(f"conductivity must be a number or a {dim}x{dim} matrix, got shape {k.shape}")
    if not ok:
        raise InputError("conductivity must be symmetric positive definite")


@dataclass
class DiffusionResult:
    space: FunctionSpace
    u: object                     # ghosted PETSc Vec
    u_local: np.ndarray           # owned + ghost values
    ksp: dict = field(default_factory=dict)


def _assemble_stiffness(space, kappa, A, extra_mass=None, dt=None):
    def blocks():
        for sl in space.chunks():
            x, dNdx, w = space.geometry(sl)
            k = _coef(kappa, x, "kappa")
            if k.ndim == 2 and k.shape == (space.dim, space.dim):
                k = np.broadcast_to(k, x.shape[:2] + k.shape)
            Ke = forms.diffusion_matrix(dNdx, k, w)
            if extra_mass is not None:
                Ke = dt * Ke + forms.mass_matrix(space.N, _coef(extra_mass, x, "rho_c"), w)
            yield sl, Ke
    return space.assemble_matrix(A, blocks())


def _source(space, source, vec):
    def blocks():
        for sl in space.chunks():
            x, dNdx, w = space.geometry(sl)
            f = np.broadcast_to(_coef(source, x, "source"), x.shape[:2])
            yield sl, forms.source_vector(space.N, np.asarray(f), w)
    return space.assemble_vector(vec, blocks())


def solve_diffusion(mesh, kappa=1.0, source=0.0, dirichlet: Sequence[Dirichlet] = (),
                    neumann: Sequence[Neumann] = (), *, prefix: str = "macro_",
                    petsc_options: dict | None = None, quad_degree: int | None = None) -> DiffusionResult:
    """Solve -∇·(κ∇u) = f with Dirichlet/Neumann conditions (collective). Returns the field."""
    from petsc4py import PETSc

    _check_kappa(mesh.comm, kappa, mesh.dim)
    space = FunctionSpace(mesh, 1, quad_degree)
    bdofs, bvals = dirichlet_dofs(space, dirichlet)
    A = space.create_matrix()
    _assemble_stiffness(space, kappa, A)
    b = space.create_vec()
    _source(space, source, b)
    if neumann:
        neumann_vector(space, neumann, b)
    u = space.create_vec()
    rows = space.owned_global_rows(bdofs)
    ua = u.getArray()
    ua[bdofs] = bvals
    u.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
    A.zeroRowsColumns(rows, 1.0, u, b)     # symmetric elimination; b gets the lifting
    ksp = make_ksp(mesh.comm, A, prefix, DIFFUSION_DEFAULTS, petsc_options)
    ksp.solve(b, u)
    info = ksp_info(ksp)
    if info["reason"] < 0:
        raise ConvergenceError(f"diffusion solve did not converge (KSP reason {info['reason']})")
    u.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
    res = DiffusionResult(space, u, space.local_array(u), info)
    ksp.destroy()
    A.destroy()
    b.destroy()
    return res


class HeatProblem:
    """ρc ∂u/∂t - ∇·(κ∇u) = f, backward Euler with a fixed step ``dt`` (matrix assembled once).

    Audit: the discrete heat balance  Σ ρc Δu = dt (∫f + boundary fluxes + Dirichlet reactions)
    holds to round-off at every step (partition of unity)."""

    def __init__(self, mesh, kappa=1.0, rho_c=1.0, source=0.0, dirichlet: Sequence[Dirichlet] = (),
                 neumann: Sequence[Neumann] = (), *, dt: float, prefix: str = "macro_",
                 petsc_options: dict | None = None):
        from petsc4py import PETSc

        if not dt > 0:
            raise InputError(f"time step must be positive (got {dt})")
        _check_kappa(mesh.comm, kappa, mesh.dim)
        if not callable(rho_c) and not float(rho_c) > 0:
            raise InputError("heat capacity rho_c must be positive")
        self.PETSc = PETSc
        self.mesh, self.dt, self.source, self.neumann = mesh, dt, source, neumann
        self.space = space = FunctionSpace(mesh, 1)
        self.bdofs, self.bvals = dirichlet_dofs(space, dirichlet)
        self.rows = space.owned_global_rows(self.bdofs)
        self.M = space.create_matrix()
        space.assemble_matrix(self.M, ((sl, forms.mass_matrix(space.N, _coef(rho_c, g[0], ""), g[2]))
                                       for sl in space.chunks() for g in [space.geometry(sl)]))
        self.K = space.create_matrix()
        _assemble_stiffness(space, kappa, self.K)
        self.A = self.M.duplicate(copy=True)
        self.A.axpy(dt, self.K)
        self.Afull = self.A.duplicate(copy=True)       # before elimination (for reactions)
        self.A.zeroRowsColumns(self.rows, 1.0)
        self.f = space.create_vec()
        _source(space, source, self.f)
        if neumann:
            neumann_vector(space, neumann, self.f)
        self.u = space.create_vec()
        self.b = space.create_vec()
        self.r = space.create_vec()
        self.ksp = make_ksp(mesh.comm, self.A, prefix, DIFFUSION_DEFAULTS, petsc_options)
        self.audit = Audit()
        self.t = 0.0
        self.step_count = 0
        self.iterations: list[int] = []
        self.max_balance = 0.0

    def set_initial(self, u0):
        """Initial field: number or f(x) (Dirichlet values are imposed from the first step on)."""
        self.space.interpolate(lambda x: np.broadcast_to(np.asarray(u0(x) if callable(u0) else u0, float),
                                                         (len(x),)), self.u)

    def step(self) -> None:
        PETSc = self.PETSc
        uold = self.u.copy()
        self.M.mult(uold, self.b)
        self.b.axpy(self.dt, self.f)
        # lift the Dirichlet values symmetrically: b -= A_full[:, bc] g, then b[bc] = g
        g = self.space.create_vec()
        g.getArray()[self.bdofs] = self.bvals
        tmp = self.b.duplicate()
        self.Afull.mult(g, tmp)
        self.b.axpy(-1.0, tmp)
        ba = self.b.getArray()
        ba[self.bdofs] = self.bvals
        self.ksp.solve(self.b, self.u)
        reason = self.ksp.getConvergedReason()
        self.iterations.append(self.ksp.getIterationNumber())
        if reason < 0:
            raise ConvergenceError(f"heat step {self.step_count + 1}: KSP diverged (reason {reason})")
        self.u.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        # heat balance: r = M(u - uold) + dt K u - dt f ; zero on free rows, reactions on Dirichlet rows
        du = self.u.copy()
        du.axpy(-1.0, uold)
        self.M.mult(du, self.r)
        self.K.mult(self.u, tmp)
        self.r.axpy(self.dt, tmp)
        self.r.axpy(-self.dt, self.f)
        ra = self.r.getArray(readonly=True)
        free = np.ones(len(ra), bool)
        free[self.bdofs] = False
        from mpi4py import MPI

        free_res = self.mesh.comm.allreduce(float(np.abs(ra[free]).max(initial=0.0)), op=MPI.MAX)
        heat = du.dot(self._ones_M())                              # Σ ρcΔu = 1ᵀM Δu
        reactions = self.mesh.comm.allreduce(float(ra[self.bdofs].sum()))
        fsum = self.f.sum()
        bal = heat - self.dt * fsum - reactions
        scale = max(abs(heat), abs(self.dt * fsum), abs(reactions), 1e-300)
        self.max_balance = max(self.max_balance, abs(bal) / scale, free_res / scale)
        for v in (uold, g, tmp, du):
            v.destroy()
        self.t += self.dt
        self.step_count += 1

    def _ones_M(self):
        if not hasattr(self, "_m1"):
            one = self.space.create_vec()
            one.set(1.0)
            self._m1 = self.space.create_vec()
            self.M.mult(one, self._m1)
            one.destroy()
        return self._m1

    def finish_audit(self) -> Audit:
        self.audit.add("heat balance (relative, max over steps)", self.max_balance, 1e-8)
        return self.audit

    def destroy(self):
        for o in (self.M, self.K, self.A, self.Afull, self.f, self.u, self.b, self.r, self.ksp):
            o.destroy()
