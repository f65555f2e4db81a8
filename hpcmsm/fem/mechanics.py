"""Solid mechanics on distributed meshes: small-strain (any material obeying the Mandel
interface, history-dependent included) with a Newton loop, load stepping and cut-back; finite
strain total Lagrangian with PETSc SNES (Newton + line search).

Quadrature-point data (for FE² and output) live per *material group* (cells of one region):
``problem.groups[k].cells`` (local cell indices), ``.state`` (committed), ``.strain``/``.stress``
(last evaluation, (ncell_k, nq, m)).  ``update`` is called on all points of a group at once and
its new state is committed only when the load step has converged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..audit import Audit
from ..errors import ConvergenceError, InputError
from ..parallel import check_all
from . import forms
from .bcs import Dirichlet, Neumann, dirichlet_dofs, neumann_vector
from .solvers import ELASTICITY_DEFAULTS, ksp_info, make_ksp, rigid_body_modes
from .space import ElasticBlock, FunctionSpace, det_inv
from .stepping import step_load


@dataclass
class MaterialGroup:
    material: object
    cells: np.ndarray               # local cell indices
    region: str
    state: dict = field(default_factory=dict)
    trial: dict | None = None
    strain: np.ndarray | None = None
    stress: np.ndarray | None = None
    tangent: np.ndarray | None = None


def _groups(mesh, materials, kind: str, nq: int) -> list[MaterialGroup]:
    if not isinstance(materials, dict):
        materials = {None: materials}
    groups = []
    covered = np.zeros(len(mesh.cells), bool)
    for region, mat in materials.items():
        if getattr(mat, "kind", None) != kind:
            raise InputError(f"material for region {region or 'all'!r} is a {getattr(mat, 'kind', '?')!r}-strain "
                             f"law; this problem needs kind {kind!r}")
        if getattr(mat, "dim", mesh.dim) != mesh.dim:
            raise InputError(f"material for region {region or 'all'!r} is {mat.dim}D but the mesh is {mesh.dim}D")
        if region is None:
            cells = np.arange(len(mesh.cells))
        else:
            cells = np.flatnonzero(mesh.cell_tags == mesh.region_tag(region))
        covered[cells] = True
        groups.append(MaterialGroup(mat, cells, region or "all", mat.initial_state(len(cells) * nq)))
    check_all(mesh.comm, bool(covered.all()), "some cells belong to no region with a material "
              f"(regions of the mesh: {', '.join(sorted(mesh.region_names))})")
    return groups


def _isotropic_lame(material):
    """(λ, μ) if ``material`` is a homogeneous isotropic LinearElastic (fast kernel), else None."""
    C = getattr(material, "C", None)
    if type(material).__name__ != "LinearElastic" or C is None or np.ndim(C) != 2:
        return None
    from ..materials.base import isotropic_stiffness

    d = 2 if C.shape[0] == 3 else 3
    lam, mu = C[0, 1], (C[0, 0] - C[0, 1]) / 2
    if mu <= 0 or not np.allclose(C, isotropic_stiffness(d, lam=lam, mu=mu), rtol=1e-12, atol=1e-14 * abs(C).max()):
        return None
    return float(lam), float(mu)


class _MechanicsBase:
    kind = "small"

    def __init__(self, mesh, materials, dirichlet: Sequence[Dirichlet] = (), traction: Sequence[Neumann] = (),
                 body_force=None, *, prefix: str = "macro_", petsc_options: dict | None = None,
                 quad_degree: int | None = None):
        from petsc4py import PETSc

        self.PETSc = PETSc
        self.mesh, self.comm = mesh, mesh.comm
        self.space = sp = FunctionSpace(mesh, mesh.dim, quad_degree)
        self.dim = mesh.dim
        self.groups = _groups(mesh, materials, self.kind, sp.nq)
        self.dirichlet = list(dirichlet)
        self.bdofs, self.bvals = dirichlet_dofs(sp, self.dirichlet)
        self.bdofs_all, self.bvals_all = dirichlet_dofs(sp, self.dirichlet, owned_only=False)
        self.rows = sp.owned_global_rows(self.bdofs)
        self.prefix, self.petsc_options = prefix, petsc_options
        # reference external load (scaled by the load factor)
        self.f_ext = sp.create_vec()
        if body_force is not None:
            def blocks():
                for sl in sp.chunks():
                    x, dNdx, w = sp.geometry(sl)
                    b = np.broadcast_to(np.asarray(body_force(x) if callable(body_force) else body_force, float),
                                        x.shape[:2] + (self.dim,))
                    yield sl, forms.source_vector(sp.N, np.asarray(b), w)
            sp.assemble_vector(self.f_ext, blocks())
        if traction:
            neumann_vector(sp, traction, self.f_ext)
        self.u = sp.create_vec()           # committed displacement
        self.f_int = sp.create_vec()
        self.A = sp.create_matrix()
        self.A.setNearNullSpace(rigid_body_modes(sp))
        self.lam = 0.0                     # committed load factor
        self.audit = Audit()
        self.history: list[dict] = []
        self.work = 0.0
        self.dissipation = 0.0
        self.f_int_committed = np.zeros(self.u.getLocalSize())
        self.ksp_iterations: list[int] = []

    # ----------------------------------------------------------------- helpers
    def _set_bc(self, vec, lam: float):
        arr = vec.getArray()
        arr[self.bdofs] = lam * self.bvals
        vec.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)

    def group_cell_slices(self, g: MaterialGroup):
        """(slice into the group's points, local cell indices) in chunks."""
        ch = self.space.chunk
        for s in range(0, len(g.cells), ch):
            yield slice(s * self.space.nq, min(s + ch, len(g.cells)) * self.space.nq), g.cells[s:s + ch]

    def reaction(self, region: str) -> np.ndarray:
        """Sum of the internal force over the owned nodes of a boundary region (d,), collective
        (= the reaction force the supports exert, at equilibrium)."""
        nodes = self.mesh.boundary_nodes(region, owned_only=True)
        fi = self.f_int.getArray(readonly=True).reshape(-1, self.dim)
        loc = fi[nodes].sum(axis=0) if len(nodes) else np.zeros(self.dim)
        from mpi4py import MPI

        return np.array(self.comm.allreduce(loc, op=MPI.SUM))

    def mean_displacement(self, region: str) -> np.ndarray:
        from mpi4py import MPI

        nodes = self.mesh.boundary_nodes(region, owned_only=True)
        u = self.u.getArray(readonly=True).reshape(-1, self.dim)
        s = self.comm.allreduce(u[nodes].sum(axis=0) if len(nodes) else np.zeros(self.dim), op=MPI.SUM)
        n = self.comm.allreduce(len(nodes))
        return np.asarray(s) / max(n, 1)

    def stored_energy(self) -> float:
        from mpi4py import MPI

        e = 0.0
        for g in self.groups:
            if not hasattr(g.material, "energy") or g.strain is None:
                continue
            w = self._wdet(g)
            nq = self.space.nq
            strain = g.strain.reshape(len(g.cells) * nq, *g.strain.shape[2:])
            e += float(np.dot(g.material.energy(strain, g.state), w.ravel()))
        return self.comm.allreduce(e, op=MPI.SUM)

    def _wdet(self, g):
        if not hasattr(g, "_wdet"):
            g._wdet = np.concatenate([self._geom_cells(c)[2] for _, c in self.group_cell_slices(g)]) \
                if len(g.cells) else np.zeros((0, self.space.nq))
        return g._wdet

    def _geom_cells(self, cells):
        sp = self.space
        X = self.mesh.points[self.mesh.cells[cells]]
        J = np.matmul(X.transpose(0, 2, 1)[:, None], sp.dN[None])
        det, invJ = det_inv(J)
        dNdx = np.matmul(sp.dN[None], invJ)
        return None, dNdx, det * sp.qwts

    # ----------------------------------------------------------------- checkpoint / restart
    def save_checkpoint(self, path: str, extra: dict | None = None, **stamp) -> None:
        """Collective: committed displacement, internal force and quadrature-point state in the
        natural (input) numbering, so a restart may use a different number of ranks."""
        from ..io import Checkpoint

        m, d = self.mesh, self.dim
        arrays = {"node_ids": m.node_ids[:m.n_owned].astype(np.int64),
                  "u": self.u.getArray(readonly=True).reshape(-1, d).copy(),
                  "f_int": self.f_int_committed.reshape(-1, d).copy() if self.kind == "small"
                  else self.f_int.getArray(readonly=True).reshape(-1, d).copy()}
        nq = self.space.nq
        for k, g in enumerate(self.groups):
            arrays[f"group{k}/cell_ids"] = m.cell_ids[g.cells].astype(np.int64)
            for name, val in g.state.items():
                arrays[f"group{k}/state/{name}"] = np.asarray(val).reshape((len(g.cells), nq) + np.shape(val)[1:])
        scalars = {"lam": self.lam, "work": self.work, "dissipation": self.dissipation}
        meta = {"history": self.history, "groups": [g.region for g in self.groups], "extra": extra or {}}
        Checkpoint(path, self.comm).save(len(self.history), arrays, scalars, meta, **stamp)

    def load_checkpoint(self, path: str) -> dict:
        """Collective: restore what :meth:`save_checkpoint` wrote (any rank count). Returns meta."""
        from ..errors import InputError
        from ..io import Checkpoint

        m, d = self.mesh, self.dim
        with Checkpoint(path, self.comm).load() as ck:
            if ck.meta.get("groups") != [g.region for g in self.groups]:
                raise InputError(f"{path}: checkpoint material regions {ck.meta.get('groups')} do not match")
            ids = ck.read("node_ids")
            if len(ids) != m.n_global:
                raise InputError(f"{path}: checkpoint has {len(ids)} nodes, the mesh {m.n_global}")
            order = np.argsort(ids)
            pos = order[np.searchsorted(ids[order], m.node_ids[:m.n_owned])]
            u = ck.read("u")[pos]
            fi = ck.read("f_int")[pos]
            nq = self.space.nq
            for k, g in enumerate(self.groups):
                cid = ck.read(f"group{k}/cell_ids")
                o = np.argsort(cid)
                cpos = o[np.searchsorted(cid[o], m.cell_ids[g.cells])]
                for name in list(g.state):
                    val = ck.read(f"group{k}/state/{name}")[cpos]
                    g.state[name] = val.reshape((len(g.cells) * nq,) + val.shape[2:])
            self.lam = float(ck.scalars["lam"])
            self.work = float(ck.scalars["work"])
            self.dissipation = float(ck.scalars["dissipation"])
            meta = ck.meta
        self.history = list(meta["history"])
        self.u.getArray()[:] = u.ravel()
        self.u.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)
        self.f_int_committed = fi.ravel().copy()
        self.f_int.getArray()[:] = fi.ravel()
        self.f_int.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)
        if self.kind == "small":       # re-evaluate strains/stresses of the committed state
            self.evaluate(self.space.local_array(self.u), want_matrix=False)
            self.f_int_committed = self.f_int.getArray(readonly=True).copy()
        return meta

    def destroy(self):
        for o in (self.u, self.f_int, self.f_ext, self.A):
            o.destroy()
        if getattr(self, "ksp", None) is not None:
            self.ksp.destroy()


class ElasticityProblem(_MechanicsBase):
    """Small-strain quasi-static equilibrium ∇·σ(ε(u)) + λ b = 0, tractions λ t, u = λ g on Γ_D.

    ``materials``: one material or ``{region: material}`` obeying the Mandel interface
    (``update(strain, state) -> stress, tangent, new_state``).  Newton with the consistent
    tangent; CG + GAMG (rigid-body near-nullspace) under the options prefix."""

    kind = "small"

    def __init__(self, *a, rtol: float = 1e-9, atol: float = 1e-12, max_it: int = 25, **kw):
        super().__init__(*a, **kw)
        self.rtol, self.atol, self.max_it = rtol, atol, max_it
        self.ksp = make_ksp(self.comm, self.A, self.prefix, ELASTICITY_DEFAULTS, self.petsc_options)
        self.du = self.space.create_vec()
        self.res = self.space.create_vec()
        self._linear = all(type(g.material).__name__ == "LinearElastic" for g in self.groups)
        self._A_ready = False

    # ------------------------------------------------------------ evaluation
    def evaluate(self, u_local: np.ndarray, want_matrix: bool) -> str:
        """Material update at every local point for displacement u: sets group.trial/strain/stress
        and assembles f_int (and the tangent matrix).  Collective; returns "" on success or the
        reason a material failed (on any rank), in which case nothing is assembled."""
        from mpi4py import MPI

        sp = self.space
        nq = sp.nq
        msg = ""
        for g in self.groups:
            strains = []
            for _, cells in self.group_cell_slices(g):
                _, dNdx, w = self._geom_cells(cells)
                B = forms.strain_operator(dNdx)
                strains.append(np.matmul(B, u_local[sp.cell_dofs[cells]][:, None, :, None])[..., 0])
            eps = np.concatenate(strains) if strains else np.zeros((0, nq, 3 if self.dim == 2 else 6))
            try:
                with np.errstate(invalid="raise", divide="raise", over="raise"):
                    sig, D, trial = g.material.update(eps.reshape(-1, eps.shape[-1]), g.state)
                if not (np.all(np.isfinite(sig)) and np.all(np.isfinite(D))):
                    raise FloatingPointError("non-finite stress or tangent")
            except (FloatingPointError, ConvergenceError, ArithmeticError) as e:
                msg = f"material in region {g.region!r} failed: {e}"
                continue
            g.strain, g.stress = eps, sig.reshape(eps.shape)
            g.tangent, g.trial = D.reshape(eps.shape[:2] + D.shape[-2:]), trial
        # every rank must agree before the collective assembly
        failed = self.comm.allreduce(1 if msg else 0, op=MPI.SUM)
        if failed:
            return msg or f"a material update failed on {failed} other rank(s)"
        Fe_blocks, Ke_blocks = [], []
        for g in self.groups:
            lame = _isotropic_lame(g.material) if want_matrix else None
            # identical cells (structured box) and a constant isotropic tangent: one element
            # matrix for all cells (tests/fem/test_fem_assembly.py checks it against the general path)
            same = lame is not None and sp.identical_cells()
            for ps, cells in self.group_cell_slices(g):
                _, dNdx, w = self._geom_cells(cells)
                B = forms.strain_operator(dNdx)
                k0 = ps.start // nq
                Fe_blocks.append((cells, forms.internal_force_small(B, g.stress[k0:k0 + len(cells)], w)))
                if want_matrix:
                    if same:
                        Ke0 = forms.stiffness_isotropic(dNdx[:1], *lame, w[:1])
                        Ke_blocks.append((cells, np.broadcast_to(Ke0, (len(cells),) + Ke0.shape[1:])))
                    else:       # element matrices computed inside the assembly (fused compiled kernel)
                        Ke_blocks.append(ElasticBlock(cells, *lame) if lame else
                                         ElasticBlock(cells, D=g.tangent[k0:k0 + len(cells)]))
        self._assemble_cells_vec(self.f_int, Fe_blocks)
        if want_matrix:     # Dirichlet rows/columns eliminated inside the assembly pass (diagonal 1)
            self._assemble_cells_mat(self.A, Ke_blocks, bc_dofs=self.bdofs)
        return ""

    def _assemble_cells_vec(self, vec, blocks):
        sp = self.space
        nloc = len(self.mesh.points) * sp.bs
        acc = np.zeros(nloc)
        for cells, Fe in blocks:
            acc += np.bincount(sp.cell_dofs[cells].ravel(), weights=Fe.ravel(), minlength=nloc)
        with vec.localForm() as loc:
            loc.getArray()[:] = acc
        vec.ghostUpdate(self.PETSc.InsertMode.ADD, self.PETSc.ScatterMode.REVERSE)
        vec.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)

    def _assemble_cells_mat(self, A, blocks, bc_dofs=None):
        """Sum the blocks into A; with ``bc_dofs`` (owned local dofs) their rows and columns are
        eliminated in the same pass (= A.zeroRowsColumns(rows, 1.0) afterwards)."""
        sp = self.space
        kw = {} if bc_dofs is None else {"bc_dofs": bc_dofs}
        if any(isinstance(b, ElasticBlock) for b in blocks):
            # fused blocks and (cells, Ke) pairs are summed in any order: no reordering copy
            sp.assemble_matrix(A, [b if isinstance(b, ElasticBlock) else (np.asarray(b[0]), b[1])
                                   for b in blocks], **kw)
            return
        runs = []           # blocks of consecutive cells (one material group): no reordering copy
        for cells, Ke in blocks:
            if len(cells) == 0:
                continue
            if not np.all(np.diff(cells) == 1):
                break
            runs.append((slice(int(cells[0]), int(cells[-1]) + 1), Ke))
        else:
            sp.assemble_matrix(A, runs, **kw)
            return
        # reorder into cell order (groups can interleave)
        K = np.zeros((sp.ncells, sp.ndofe, sp.ndofe))
        for cells, Ke in blocks:
            K[cells] = Ke
        sp.assemble_matrix(A, [(sl, K[sl]) for sl in sp.chunks()], **kw)

    # ------------------------------------------------------------ one load step
    def _newton(self, lam: float) -> tuple[bool, int, str]:
        PETSc = self.PETSc
        sp = self.space
        u = self.u.copy()
        self._set_bc(u, lam)
        free = np.ones(u.getLocalSize(), bool)
        free[self.bdofs] = False
        ref = None
        self.residuals = []
        for it in range(self.max_it + 1):
            ul = sp.local_array(u)
            msg = self.evaluate(ul, want_matrix=not (self._linear and self._A_ready))
            if msg:
                u.destroy()
                return False, it, msg
            self.f_int.copy(self.res)
            self.res.axpy(-lam, self.f_ext)
            ra = self.res.getArray()
            ra[~free] = 0.0
            rnorm = self.res.norm()
            self.residuals.append(rnorm)
            fnorm = max(self.f_int.norm(), abs(lam) * self.f_ext.norm())
            if ref is None:
                ref = max(fnorm, 1e-300)
            if not np.isfinite(rnorm):
                u.destroy()
                return False, it, "residual is not finite"
            if rnorm <= self.rtol * max(fnorm, ref) or rnorm <= self.atol:
                self.u.destroy()
                self.u = u
                return True, it, ""
            if it == self.max_it:
                break
            if not (self._linear and self._A_ready):
                self.ksp.setOperators(self.A)     # Dirichlet rows/columns already eliminated
                self._A_ready = True
            self.res.scale(-1.0)
            self.du.set(0.0)
            self.ksp.solve(self.res, self.du)
            self.ksp_iterations.append(self.ksp.getIterationNumber())
            reason = self.ksp.getConvergedReason()
            if self.comm.allreduce(0 if reason > 0 else 1):
                u.destroy()
                return False, it, f"linear solver failed (KSP reason {reason})"
            u.axpy(1.0, self.du)
        u.destroy()
        return False, self.max_it, f"Newton did not converge in {self.max_it} iterations"

    def commit(self, lam: float) -> None:
        """Accept the trial state of the converged step and update the energy bookkeeping."""
        from mpi4py import MPI

        fi = self.f_int.getArray(readonly=True)
        du = self.u.getArray(readonly=True) - self._u_committed
        dW = 0.5 * float(np.dot(fi + self.f_int_committed, du))
        self.work += self.comm.allreduce(dW, op=MPI.SUM)
        d = 0.0
        for g in self.groups:
            mat = g.material
            if hasattr(mat, "dissipation_increment") and len(g.cells):
                strain = g.strain.reshape(-1, g.strain.shape[-1])
                d += float(np.dot(mat.dissipation_increment(strain, g.state, g.trial), self._wdet(g).ravel()))
            g.state = g.trial
        self.dissipation += self.comm.allreduce(d, op=MPI.SUM)
        self.f_int_committed = fi.copy()
        self.lam = lam

    def try_step(self, target: float) -> tuple[bool, int, str]:
        """Newton from the committed state to load factor ``target`` (the stepping protocol of
        :mod:`hpcmsm.fem.stepping`); material states stay trial until :meth:`commit`."""
        self._u_committed = self.u.getArray(readonly=True).copy()
        return self._newton(target)

    def solve(self, nsteps: int = 1, lam_end: float = 1.0, min_step: float = 1e-4, max_cuts: int = 8,
              callback: Callable | None = None, log=None, max_steps: int | None = None) -> list[dict]:
        """Load stepping from the committed load factor to ``lam_end`` in ``nsteps`` equal steps;
        a failed step is retried with half the increment (up to ``max_cuts`` times)
        (:func:`hpcmsm.fem.stepping.step_load`)."""
        return step_load(self, nsteps, lam_end, min_step=min_step, max_cuts=max_cuts, callback=callback,
                         log=log, max_steps=max_steps, solver="Newton")

    def energy_audit(self) -> Audit:
        """External work = stored energy + dissipation (≥ 0)."""
        stored = self.stored_energy()
        scale = max(abs(self.work), 1e-300)
        self.audit.add("energy balance |W_ext - (stored + dissipation)| / W_ext",
                       (self.work - stored - self.dissipation) / scale, 1e-8)
        self.audit.add("dissipation >= 0 (relative to W_ext)", self.dissipation / scale, 1e-12, ">=")
        self.energies = {"external_work": self.work, "stored": stored, "dissipation": self.dissipation}
        return self.audit

    def destroy(self):
        super().destroy()
        self.du.destroy()
        self.res.destroy()


class HyperelasticProblem(_MechanicsBase):
    """Finite-strain total Lagrangian quasi-statics, Div P(F) + λ b₀ = 0 on the reference
    configuration, solved by PETSc SNES (Newton + line search, prefix ``macro_``).  A step that
    makes det F ≤ 0 anywhere or fails to converge is cut back.

    Any ``kind == "finite"`` material: hyperelastic W(F) or history-dependent (e.g.
    :class:`hpcmsm.materials.logstrain.LogStrainJ2`).  Every evaluation starts from the committed
    state ``group.state``; the state of the converged iterate becomes ``group.trial`` and is
    committed (with its dissipation) only in :meth:`commit`, so a failed step leaves it alone."""

    kind = "finite"

    def __init__(self, *a, rtol: float = 1e-10, atol: float = 1e-10, max_it: int = 30,
                 predictor: bool | None = None, **kw):
        super().__init__(*a, **kw)
        PETSc = self.PETSc
        history = any(hasattr(g.material, "dissipation_increment") for g in self.groups)
        # tangent predictor (see _predict): default for history-dependent laws, whose Newton
        # from "old u + boundary jump" starts far from the plastic solution
        self.predictor = history if predictor is None else bool(predictor)
        self.snes = PETSc.SNES().create(comm=self.comm)
        self.snes.setOptionsPrefix(self.prefix)
        self.F = self.space.create_vec()
        self.snes.setFunction(self._residual, self.F)
        self.snes.setJacobian(self._jacobian, self.A, self.A)
        self.snes.setTolerances(rtol=rtol, atol=atol, max_it=max_it)
        defaults = dict(ELASTICITY_DEFAULTS)
        defaults.update({"snes_type": "newtonls", "snes_linesearch_type": "bt", "ksp_rtol": "1e-10"})
        if history:
            # the consistent tangent of finite-strain plasticity is symmetric but can be indefinite
            # on large trial iterates (CG breaks down there; GMRES does not).  Plastic flow is nearly
            # incompressible, so GAMG needs ~10² iterations: a long restart avoids GMRES(30) stagnation
            defaults.update({"ksp_type": "gmres", "ksp_gmres_restart": "100"})
        defaults.update(self.petsc_options or {})
        from ..parallel import petsc_options

        with petsc_options(self.prefix, defaults):
            self.snes.setFromOptions()
        self._lam_trial = 0.0
        self._eval_cache = None
        self.work_u = self.space.create_vec()
        self.detF_min = np.inf

    def _deformation(self, x):
        x.copy(self.work_u)
        ul = self._ul = self.space.local_array(self.work_u)
        out = []
        for g in self.groups:
            Fs, geo = [], []
            for ps, cells in self.group_cell_slices(g):
                _, dNdX, w = self._geom_cells(cells)
                ue = ul[self.space.cell_dofs[cells]].reshape(len(cells), -1, self.dim)
                Fs.append(forms.deformation_gradient(dNdX, ue))
                geo.append((cells, dNdX, w, ps))
            out.append((g, Fs, geo))
        return out

    def _eval(self, x, want_matrix, keep_trial: bool = False):
        """Internal force (and tangent) blocks at displacement x from the committed material
        states; ``keep_trial`` stores each group's new state in ``group.trial`` and its F in
        ``group.F`` ((ncell, nq, d, d)).  Collective; (None, None) if det F ≤ 0 or a material
        failed anywhere."""
        from mpi4py import MPI

        data = self._deformation(x)
        jmin = min([float(np.linalg.det(F).min(initial=np.inf)) for _, Fs, _ in data for F in Fs] + [np.inf])
        jmin = self.comm.allreduce(jmin, op=MPI.MIN)
        self.detF_min = jmin
        if not jmin > 0:
            return None, None
        Fe, Ke = [], []
        bad = 0
        # SNES evaluates the Jacobian at the point of its last residual: reuse that material
        # update (P, A, state) and internal force instead of recomputing them (same x, same
        # committed states; commit() and load_checkpoint() drop the cache)
        c = self._eval_cache
        hit = c is not None and c[1] == [id(g.state) for g in self.groups] and np.array_equal(c[0], self._ul)
        cache = c[2] if hit else {}
        for gi, (g, Fs, geo) in enumerate(data):
            trial = []
            for ci, (F, (cells, dNdX, w, ps)) in enumerate(zip(Fs, geo)):
                if (gi, ci) in cache:
                    A, new, fe = cache[gi, ci]
                else:
                    try:
                        with np.errstate(invalid="raise", divide="raise", over="raise"):
                            P, A, new = g.material.update(F.reshape(-1, self.dim, self.dim),
                                                          {k: v[ps] for k, v in g.state.items()})
                    except (FloatingPointError, ConvergenceError, ArithmeticError):
                        bad = 1
                        continue
                    fe = forms.internal_force_finite(dNdX, P.reshape(F.shape), w)
                    cache[gi, ci] = (A, new, fe)
                trial.append(new)
                Fe.append((cells, fe))
                if want_matrix:
                    Ke.append((cells, forms.stiffness_finite(dNdX, A.reshape(F.shape[:2] + (self.dim,) * 4), w)))
            if keep_trial and not bad:
                g.trial = {k: np.concatenate([t[k] for t in trial]) for k in g.state} if trial else g.state
                g.F = np.concatenate(Fs) if Fs else np.zeros((0, self.space.nq, self.dim, self.dim))
        if self.comm.allreduce(bad, op=MPI.SUM):      # agree before any collective assembly
            self.detF_min = -np.inf if not self.detF_min > 0 else self.detF_min
            self.material_failed = True
            self._eval_cache = None
            return None, None
        self._eval_cache = (self._ul, [id(g.state) for g in self.groups], cache)
        return Fe, Ke

    def _residual(self, snes, x, f):
        Fe, _ = self._eval(x, False)
        if Fe is None:
            f.set(np.nan)          # det F <= 0: SNES line search backs off, else the step is cut
            return
        ElasticityProblem._assemble_cells_vec(self, f, Fe)
        f.axpy(-self._lam_trial, self.f_ext)
        fa = f.getArray()
        fa[self.bdofs] = 0.0

    def _jacobian(self, snes, x, J, P):
        _, Ke = self._eval(x, True)
        if Ke is None:
            return
        ElasticityProblem._assemble_cells_mat(self, P, Ke)
        P.zeroRowsColumns(self.rows, 1.0)

    def _predict(self, target: float):
        """Tangent predictor from the committed state: x = u + δ with J(u) δ = −R(u; λ_target)
        on the free rows and δ = (λ_target − λ) g on the Dirichlet rows, i.e. the boundary and
        load increment spread over the body by the committed consistent tangent (instead of
        a jump in the boundary cells only).  Depends on the committed state alone, so restarts
        reproduce it.  Collective; None if the tangent or its solve fails (then no predictor)."""
        _, Ke = self._eval(self.u, True)
        if Ke is None:
            return None
        ElasticityProblem._assemble_cells_mat(self, self.A, Ke)
        rhs, d = self.space.create_vec(), self.space.create_vec()
        self._lam_trial = target
        self._residual(None, self.u, rhs)
        rhs.scale(-1.0)
        d.getArray()[self.bdofs] = (target - self.lam) * self.bvals
        self.A.zeroRowsColumns(self.rows, 1.0, d, rhs)
        ksp = self.snes.getKSP()
        ksp.setOperators(self.A, self.A)
        ksp.solve(rhs, d)
        x = None
        if ksp.getConvergedReason() > 0:
            x = self.u.copy()
            x.axpy(1.0, d)
        rhs.destroy()
        d.destroy()
        return x

    def try_step(self, target: float) -> tuple[bool, int, str]:
        """SNES from the committed displacement (or the tangent predictor, :meth:`_predict`) to
        load factor ``target``; the converged iterate is kept as the trial until :meth:`commit`
        (the protocol of :mod:`hpcmsm.fem.stepping`)."""
        x = self._predict(target) if self.predictor else None
        if x is None:
            x = self.u.copy()
        self._set_bc(x, target)
        self._lam_trial = target
        self.snes.solve(None, x)
        reason = self.snes.getConvergedReason()
        its = self.snes.getIterationNumber()
        if reason <= 0:
            x.destroy()
            return False, its, "det F <= 0" if not self.detF_min > 0 else f"SNES reason {reason}"
        if getattr(self, "_x_trial", None) is not None:
            self._x_trial.destroy()
        self._x_trial = x
        return True, its, ""

    def commit(self, target: float) -> None:
        """Accept the trial displacement and the material states of its evaluation: internal
        force, trapezoidal external work and the dissipation of history-dependent laws."""
        from mpi4py import MPI

        x, self._x_trial = self._x_trial, None
        u_old = self.u.getArray(readonly=True).copy()
        x.copy(self.u)
        x.destroy()
        self.u.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)
        Fe, _ = self._eval(self.u, False, keep_trial=True)
        if Fe is None:          # cannot happen after a converged SNES solve at the same u
            raise ConvergenceError("material evaluation failed at the converged displacement")
        fi_old = self.f_int.getArray(readonly=True).copy()
        ElasticityProblem._assemble_cells_vec(self, self.f_int, Fe)
        dW = 0.5 * float(np.dot(self.f_int.getArray(readonly=True) + fi_old, self.u.getArray(readonly=True) - u_old))
        self.work += self.comm.allreduce(dW, op=MPI.SUM)
        d = 0.0
        for g in self.groups:
            if hasattr(g.material, "dissipation_increment") and len(g.cells):
                d += float(np.dot(g.material.dissipation_increment(g.F.reshape(-1, self.dim, self.dim), g.state,
                                                                   g.trial), self._wdet(g).ravel()))
            g.state, g.trial = g.trial, None
        self._eval_cache = None
        self.dissipation += self.comm.allreduce(d, op=MPI.SUM)
        self.lam = target

    def load_checkpoint(self, path: str) -> dict:
        self._eval_cache = None          # the committed states change in place
        return super().load_checkpoint(path)

    def solve(self, nsteps: int = 1, lam_end: float = 1.0, min_step: float = 1e-4, max_cuts: int = 8,
              callback: Callable | None = None, log=None, max_steps: int | None = None) -> list[dict]:
        """Load stepping with cut-back (:func:`hpcmsm.fem.stepping.step_load`); a step whose Newton
        iterates make det F ≤ 0 or whose SNES diverges is retried with half the increment."""
        return step_load(self, nsteps, lam_end, min_step=min_step, max_cuts=max_cuts, callback=callback,
                         log=log, max_steps=max_steps, solver="SNES")

    def deformation_gradients(self):
        """F at every local point per group: list of (group, (ncell, nq, d, d))."""
        return [(g, np.concatenate(Fs) if Fs else np.zeros((0, self.space.nq, self.dim, self.dim)))
                for g, Fs, _ in self._deformation(self.u)]

    def stored_energy(self) -> float:
        from mpi4py import MPI

        e = 0.0
        for g, F in self.deformation_gradients():
            if len(F):
                e += float(np.dot(g.material.energy(F.reshape(-1, self.dim, self.dim), g.state),
                                  self._wdet(g).ravel()))
        return self.comm.allreduce(e, op=MPI.SUM)

    def plastic_strain_eq(self) -> list:
        """Equivalent plastic strain per group: list of (group, (ncell, nq)) (zeros for laws
        without ``plastic_strain_eq``)."""
        nq = self.space.nq
        return [(g, np.asarray(g.material.plastic_strain_eq(g.state)).reshape(len(g.cells), nq)
                 if hasattr(g.material, "plastic_strain_eq") else np.zeros((len(g.cells), nq))) for g in self.groups]

    def energy_audit(self) -> Audit:
        """Trapezoidal external work ≈ stored energy + dissipation (O(Δλ²) quadrature error of
        the work along the load path; the dissipation is ≥ 0)."""
        stored = self.stored_energy()
        scale = max(abs(self.work), 1e-300)
        self.audit.add("energy balance |W_ext(trapezoid) - (stored + dissipation)| / W_ext",
                       (self.work - stored - self.dissipation) / scale, 5e-2,
                       note="trapezoidal work of the load path; O(Δλ²)")
        if any(hasattr(g.material, "dissipation_increment") for g in self.groups):
            self.audit.add("dissipation >= 0 (relative to W_ext)", self.dissipation / scale, 1e-12, ">=")
        self.energies = {"external_work": self.work, "stored": stored, "dissipation": self.dissipation}
        return self.audit

    def destroy(self):
        super().destroy()
        if getattr(self, "_x_trial", None) is not None:
            self._x_trial.destroy()
        self.snes.destroy()
        self.F.destroy()
        self.work_u.destroy()
