"""Distributed voxel RVE for the FE² pool: the micro-model protocol on top of the DMDA/KSP backend.

:class:`DistributedRVE` is the micro model of ``[micro] solver = "distributed"``.  It runs the
shared cell Newton (:func:`hpcmsm.homogenization.newton.cell_newton`) with
:class:`hpcmsm.homogenization.rve.RVEProblem` as linear algebra: every rank of the RVE group owns
a box of DMDA node rows, the micro tangent is a distributed PETSc matrix and every linear solve
(Newton corrections and the m condensation solves) is a Krylov solve (prefix ``micro_``, default
GMRES + unsmoothed-aggregation GAMG with the rigid-body near-nullspace, relative tolerance 1e-12,
:data:`DEFAULT_OPTIONS`).  Nothing is gathered
to one rank except the flat state (below), so the RVE size is limited by the group's memory, not
one rank's factorization.

Same cell problem as :class:`hpcmsm.fe2.rve.VoxelRVE`: the unit cell [0,1]^d, one Q1 voxel
element of :mod:`hpcmsm.homogenization.element` per voxel (same shape functions, same quadrature
order), periodic (node 0 pinned) or KUBC (boundary nodes fixed).  Small strain only: finite
strain and TUBC are refused with an InputError (the DMDA backend has no F-based element and TUBC
is traction driven there).

**State** (flat, rank-independent, byte-for-byte the layout of ``VoxelRVE``'s state)::

    [E_n (m), w (nnodes*d, natural node order x fastest, DOF-interleaved),
     material state of phase 0 (its QPs in global element order, point-minor, fields sorted),
     phase 1, ...]

so the pool can move it between groups of any size, checkpoint it, and even hand it to a
``VoxelRVE`` of the same cell.  Every group rank holds the whole vector (as with VoxelRVE); a
solve scatters its owned node rows / element box out of it and allgathers the new one.

Warm start, step policy, convergence test (relative to the assembled |internal force|), final
correction (one more Krylov solve with the condensation's preconditioner, so stresses are exact
to the Krylov tolerance rather than the Newton one) and Hill–Mandel are the shared Newton's.
Exact elastic reuse (``try_elastic``): the elastic correctors χ (one per unit macro strain,
owned rows) are computed once; for a new macro strain the prediction w = w_n + χ ΔE is checked
point by point with the yield function; if no point yields it is the exact solution (one ghost
exchange, no assembly, no solve).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..errors import ConvergenceError, InputError
from ..homogenization.newton import cell_newton, hill_mandel
from .micro import dissipation, energy, pack_state, state_fields, unpack_state

#: default Krylov method of the distributed RVE (measured choice, see docs/fe2.md "Large RVEs"):
#: CG + GAMG stops with KSP_DIVERGED_INDEFINITE_PC on plastic J2 tangents (12³, H = 0: after the
#: first plastic step), so GMRES; smoothed aggregation stalls at 1000 GMRES iterations on the
#: nearly singular tangent of a perfectly plastic matrix (16³, H = 0, 0.8 % strain) while plain
#: (unsmoothed) aggregation converges there in ~60 iterations per solve
DEFAULT_OPTIONS = {"ksp_type": "gmres", "ksp_gmres_restart": 100, "pc_type": "gamg",
                   "pc_gamg_agg_nsmooths": 0, "ksp_rtol": 1e-12, "ksp_atol": 1e-50, "ksp_max_it": 1000}


class DistributedRVE:
    """Voxel RVE on a group communicator with distributed DMDA/KSP linear algebra (small strain).

    Parameters as :class:`hpcmsm.fe2.rve.VoxelRVE`: ``phases`` int array (n,)*d indexed
    [ix, iy(, iz)], one material per phase, the group communicator ``comm``, ``bc`` "periodic" or
    "kubc", Newton ``rtol`` (relative to the assembled internal-force magnitude), PETSc options
    under ``prefix`` (defaults :data:`DEFAULT_OPTIONS`).
    """

    warm_start = True
    kinematics = "small"

    def __init__(self, phases: np.ndarray, materials: list, comm, bc: str = "periodic",
                 rtol: float = 1e-10, max_iterations: int = 25, prefix: str = "micro_",
                 petsc_options: dict | None = None):
        from ..homogenization.microstructure import Microstructure
        from ..homogenization.rve import RVEProblem

        from .rve import check_voxel_grid

        phases = np.asarray(phases)
        d = check_voxel_grid(phases, materials)
        kinds = {getattr(mat, "kind", "small") for mat in materials}
        if kinds != {"small"}:
            raise InputError("RVE solver 'distributed' is small strain only (its DMDA backend has no "
                             "deformation-gradient element); use solver = \"direct\" for finite strain")
        if bc not in ("periodic", "kubc"):
            raise InputError(f"RVE solver 'distributed' supports bc = periodic or kubc, not {bc!r} "
                             "(use solver = \"direct\" for TUBC)")
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_SELF
        self.comm, self.dim, self.n, self.bc = comm, d, phases.shape[0], bc
        self.m = 3 if d == 2 else 6
        self.materials = list(materials)
        self.rtol, self.max_iterations = rtol, max_iterations
        n, m = self.n, self.m
        opts = {**DEFAULT_OPTIONS, **dict(petsc_options or {})}
        self.prob = p = RVEProblem(Microstructure(phases.astype(np.int32), voxel_size=1.0 / n), materials,
                                   bc, comm, kind="elasticity", prefix=prefix, options=opts,
                                   newton_rtol=rtol, newton_max_it=max_iterations)
        # --- natural (rank-independent) numbering of what this rank touches
        nside = n if bc == "periodic" else n + 1
        self.nnodes = nside ** d
        self.ndof = self.nnodes * d
        own_nat = p.own_gcoords @ (nside ** np.arange(d))                       # owned nodes
        self._own_dofs = (own_nat[:, None] * d + np.arange(d)).ravel()
        ecoords = []
        for i in range(d):
            g = np.arange(p.own_start[i] - 1, p.own_start[i] + p.own_n[i])
            ecoords.append(np.mod(g, n) if bc == "periodic" else np.clip(g, 0, n - 1))
        grids = np.meshgrid(*ecoords[::-1], indexing="ij")                       # C order (z, y, x)
        gid = sum(grids[d - 1 - i].ravel() * n ** i for i in range(d))          # e = ix + n iy + n² iz
        self.phase_e = phases.ravel(order="F").astype(int)
        valid = p.elab.ravel() >= 0
        if not np.array_equal(self.phase_e[gid[valid]], p.elab.ravel()[valid]):
            raise AssertionError("DistributedRVE: element box does not map onto the natural element order")
        self._own_elem = p.eowned.ravel()
        self._own_gid = gid[self._own_elem]
        self.nq = p.nq
        self.fields = [state_fields(mat) for mat in materials]
        self.mat_width = [sum(f.values()) for f in self.fields]
        self._pos, self._own_sel, self._gpos, self._nk = [], [], [], []
        for k in range(len(materials)):
            gel = np.flatnonzero(self.phase_e == k)                            # phase k, natural order
            ids = p.phase_elems[k]
            pos = np.searchsorted(gel, gid[ids])
            own = self._own_elem[ids]
            self._pos.append(pos)
            self._own_sel.append(own)
            self._gpos.append(np.concatenate(comm.allgather(pos[own])).astype(np.int64))
            self._nk.append(len(gel))
        self._gown_dofs = np.concatenate(comm.allgather(self._own_dofs))
        self._gown_gid = np.concatenate(comm.allgather(self._own_gid))
        self.state_size = m + self.ndof + sum(nk * self.nq * wd for nk, wd in zip(self._nk, self.mat_width))
        self.ksp_iterations = 0            # Krylov iterations of all solves so far (diagnostics)
        self._elastic_setup()

    # ------------------------------------------------------------------------------------------
    # flat state ↔ this rank's pieces
    def _split_state(self, state):
        m, nd = self.m, self.ndof
        E_n = np.asarray(state[:m], float)
        w_own = state[m:m + nd][self._own_dofs]
        c = m + nd
        mats = {}
        for k in range(len(self.materials)):
            wd, nk = self.mat_width[k], self._nk[k]
            full = state[c:c + nk * self.nq * wd].reshape(nk, self.nq * wd)
            pos = self._pos[k]
            mats[k] = unpack_state(full[pos].ravel(), self.fields[k], len(pos) * self.nq)
            c += nk * self.nq * wd
        return E_n, w_own, mats

    def _join_state(self, E, w_own, mats) -> np.ndarray:
        w = np.zeros(self.ndof)
        w[self._gown_dofs] = np.concatenate(self.comm.allgather(np.asarray(w_own, float)))
        parts = [np.asarray(E, float), w]
        for k in range(len(self.materials)):
            wd, nk, pos = self.mat_width[k], self._nk[k], self._pos[k]
            full = np.zeros((nk, self.nq * wd))
            if wd:
                mine = (pack_state(mats[k], self.fields[k], len(pos) * self.nq).reshape(len(pos), -1)
                        if len(pos) else np.zeros((0, self.nq * wd)))
                full[self._gpos[k]] = np.concatenate(self.comm.allgather(mine[self._own_sel[k]]))
            parts.append(full.ravel())
        return np.concatenate(parts)

    def initial_state(self) -> np.ndarray:
        mats = [pack_state(mat.initial_state(nk * self.nq), f, nk * self.nq) if nk * wd else np.zeros(0)
                for mat, f, nk, wd in zip(self.materials, self.fields, self._nk, self.mat_width)]
        return np.concatenate([np.zeros(self.m), np.zeros(self.ndof)] + mats)

    # ------------------------------------------------------------------------------------------
    def _info(self):
        from ..homogenization.rve import SolveInfo

        return SolveInfo()

    def _condense_D(self, D, rhs_extra=None):
        """C_hom = ⟨D (I + Bχ)⟩ with K(D) χ_k = −f(D e_k) (m Krylov solves, one preconditioner);
        also χ (owned rows, (nown*nd, m)) and, with ``rhs_extra`` (owned internal force), the
        correction −K⁻¹ f."""
        p, m = self.prob, self.m
        info = self._info()
        if not (p._linear and p._assembled):
            p._assemble(None if p._linear else D)
            p._setup_pc(info)
        C = np.zeros((m, m))
        chi = np.zeros((p.nown * p.ndof, m))
        for k in range(m):
            sk = D[..., k]                                     # D e_k, (nel, nq, m)
            p._set_rhs(p._internal_force(sk))
            p._solve_linear(info)
            chi[:, k] = p.x.getArray(readonly=True)
            C[:, k] = p._average(np.einsum("eqmn,eqn->eqm", D, np.eye(m)[k] + p._element_strain(p._nodal_local(p.x))))
        dw = None
        if rhs_extra is not None:
            p._set_rhs(rhs_extra)
            p._solve_linear(info)
            dw = p.x.getArray(readonly=True).copy()
        self.ksp_iterations += int(sum(info.iterations))
        return 0.5 * (C + C.T), chi, dw

    def _elastic_setup(self):
        _, _, mats = self._split_state(self.initial_state())
        strain = self.prob._strain(np.zeros(self.m), None)
        _, D, _ = self.prob._evaluate(strain, mats)
        self.C_elastic, self.chi, _ = self._condense_D(D)

    def elastic_tangent(self) -> np.ndarray:
        return self.C_elastic.copy()

    # ------------------------------------------------------------------------------------------
    def _averages(self, E, eps, sig, old, new):
        """Σ, Hill–Mandel residual and energies over the owned elements (one reduction)."""
        p, m = self.prob, self.m
        nel = eps.shape[0]
        extra = np.zeros((nel, self.nq, 6))        # σ:ε, ψ, dissipation, peeq, yielding, |σ||ε|
        extra[..., 0] = np.einsum("eqm,eqm->eq", sig, eps)
        extra[..., 5] = np.linalg.norm(sig, axis=-1) * np.linalg.norm(eps, axis=-1)
        for k, mat in enumerate(self.materials):
            ids = p.phase_elems[k]
            if not len(ids):
                continue
            x = eps[ids].reshape(-1, m)
            cols = [energy(mat, x, new[k]), dissipation(mat, x, old[k], new[k])]
            if hasattr(mat, "plastic_strain_eq"):
                pe = mat.plastic_strain_eq(new[k])
                cols += [pe, pe > mat.plastic_strain_eq(old[k])]
            else:
                cols += [np.zeros(len(x)), np.zeros(len(x))]
            extra[ids, :, 1:5] = np.stack(cols, axis=-1).reshape(len(ids), self.nq, 4)
        tot = p._average(np.concatenate([sig, extra], axis=-1))
        S = tot[:m]
        sde, psi, dis, peeq, pl, mag = tot[m:]
        return S, dict(hill_mandel=hill_mandel(sde, S, E, mag), psi=float(psi), dissipation=float(dis),
                       peeq=float(peeq), plastic=float(pl))

    def try_elastic(self, E, state):
        """Exact result without a solve if w_n + χ ΔE keeps every point elastic, else None."""
        E = np.asarray(E, dtype=float)
        E_n, w_n, mats = self._split_state(state)
        w = w_n + self.chi @ (E - E_n)
        eps = self.prob._strain(E, w)
        ok = True
        for k, mat in enumerate(self.materials):
            ids = self.prob.phase_elems[k]
            if not self.mat_width[k] or not len(ids):
                continue
            if not hasattr(mat, "elastic_ok") or not np.all(mat.elastic_ok(eps[ids].reshape(-1, self.m), mats[k])):
                ok = False
                break
        from mpi4py import MPI

        if not self.comm.allreduce(ok, op=MPI.LAND):
            return None
        sig, _, new = self.prob._evaluate(eps, mats)
        S, info = self._averages(E, eps, sig, mats, new)
        info.update(converged=True, iterations=0, reused=True)
        return S, self.C_elastic.copy(), self._join_state(E, w, new), info

    def solve(self, E, state, guess=None):
        """Newton on the cell for macro strain E from the committed ``state`` (``guess``: a state
        of the same step whose fluctuation, shifted by χ(E − E_guess), is tried first, capped)."""
        E = np.asarray(E, dtype=float)
        E_n, w_n, mats = self._split_state(state)
        self._mats = mats
        starts = [(w_n, self.chi @ (E - E_n))]
        k = self.m + self.ndof
        if guess is not None and not np.array_equal(guess[:k], state[:k]):
            wg = guess[self.m:k][self._own_dofs]
            starts.insert(0, (wg, self.chi @ (E - guess[:self.m])))
        try:
            res = cell_newton(self, E, starts, rtol=self.rtol, max_iterations=self.max_iterations)
        except ConvergenceError as exc:   # a diverged Krylov solve: collective (same reason on every rank)
            self.last_error = str(exc)
            info = dict(converged=False, iterations=self.max_iterations, plastic=0.0, psi=0.0,
                        dissipation=0.0, hill_mandel=0.0, peeq=0.0, reused=False, residuals=[])
            return np.zeros(self.m), self.C_elastic.copy(), state.copy(), info
        ev = res.ev
        C = res.C if res.converged else self.C_elastic.copy()
        S, info = self._averages(E, ev.strain, ev.stress, mats, ev.new_state)
        info.update(converged=res.converged, iterations=res.iterations, reused=False, residuals=res.residuals)
        return S, C, self._join_state(E, res.w, ev.new_state), info

    # --- backend of cell_newton: owned DMDA rows, PETSc KSP ------------------------------------
    def evaluate(self, E, w):
        p = self.prob
        strain = p._strain(E, w)
        stress, D, new = p._evaluate(strain, self._mats)
        f, fa = p._internal_force(stress, magnitude=True)
        f[p.cons_own] = 0.0
        fa[p.cons_own] = 0.0
        r2, a2 = self.comm.allreduce(np.array([np.sum(f * f), np.sum(fa * fa)]))
        return SimpleNamespace(strain=strain, stress=stress, D=D, new_state=new, f=f,
                               rnorm=float(np.sqrt(r2)), ref=float(np.sqrt(a2)))

    def correction(self, ev) -> np.ndarray:
        p = self.prob
        p._info = info = self._info()              # RVEProblem's Newton correction, own record
        dw = p.correction(ev)
        self.ksp_iterations += int(sum(info.iterations))
        return dw

    def add(self, w, dw, alpha=1.0):
        return w + alpha * dw

    def condense(self, ev, extra: bool):
        C, _, dw = self._condense_D(ev.D, ev.f if extra else None)
        return C, dw

    def refresh(self, E, w):
        return self.evaluate(E, w)

    # ------------------------------------------------------------------------------------------
    def micro_fields(self, state) -> dict:
        """Per-voxel (QP-averaged) strain, stress, peeq in natural element order, the phase, the
        nodal fluctuation (nnodes, d) and E — on every group rank."""
        p, m, d = self.prob, self.m, self.dim
        E, w_own, mats = self._split_state(state)
        eps = self.prob._strain(E, w_own)
        sig, _, _ = p._evaluate(eps, mats)
        peeq = np.zeros(eps.shape[:2])
        for k, mat in enumerate(self.materials):
            ids = p.phase_elems[k]
            if len(ids) and hasattr(mat, "plastic_strain_eq"):
                peeq[ids] = mat.plastic_strain_eq(mats[k]).reshape(len(ids), self.nq)
        own = self._own_elem
        loc = np.concatenate([eps[own].mean(1), sig[own].mean(1), peeq[own].mean(1)[:, None]], axis=1)
        out = np.zeros((self.n ** d, 2 * m + 1))
        out[self._gown_gid] = np.concatenate(self.comm.allgather(loc))
        return {"strain": out[:, :m], "stress": out[:, m:2 * m], "peeq": out[:, 2 * m],
                "phase": self.phase_e.astype(np.int32),
                "fluctuation": np.asarray(state[m:m + self.ndof]).reshape(-1, d), "E": E}

    def destroy(self) -> None:
        self.prob.destroy()
