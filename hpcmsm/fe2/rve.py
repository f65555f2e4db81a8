"""Nonlinear voxel RVE: small- or finite-strain Newton on a periodic, KUBC or TUBC cell, condensed tangent.

One Q1 element per voxel (the voxel element of :mod:`hpcmsm.homogenization.element`), phase per
element, any material of :mod:`hpcmsm.materials.base` per phase (J2 plasticity, linear
elasticity, ...).  The unit cell [0,1]^d carries the macro strain E plus a fluctuation w:
ε(x) = E + ∇ˢw.  PBC identifies periodic nodes (no penalty) and fixes one node against rigid
translation; KUBC sets w = 0 on the boundary; TUBC imposes ⟨ε(w)⟩ = 0 by a Lagrange multiplier
(the uniform boundary traction), eliminated with a Schur complement on the same factorization.

Homogenized quantities (the cell has unit volume):

* stress Σ = ⟨σ⟩,
* consistent tangent by static condensation of the converged micro tangent:
  C_hom = ⟨C_T⟩ − Fᵀ K_T⁻¹ F with F = ∫ Bᵀ C_T dV (m right-hand sides, one factorization),
* Hill–Mandel residual |⟨σ:ε⟩ − Σ:E| / (|Σ||E|) of every solve.

The Newton iteration itself (convergence test, warm start with fall-back, step halving, final
correction) is :func:`hpcmsm.homogenization.newton.cell_newton`, shared with the distributed
:class:`hpcmsm.homogenization.RVEProblem`; this class is its gathered-direct-solve backend
(``evaluate``/``correction``/``add``/``condense``/``refresh``).

Cost of a solve: k Newton iterations = k + 1 numeric Cholesky factorizations (the symbolic one
is done once per group: every RVE and iteration has the same pattern).  The pool passes the QP's
trial state of the previous macro iteration as the Newton start (``solve(..., guess=)``), and
the condensation factorization also gives one last Newton correction, so stresses are exact to
round-off however few iterations a warm start needed.

Work sharing on a group communicator of g ranks: every rank updates the materials and builds
element matrices for its block of voxels (the expensive part for plasticity), the assembled
matrix/residual are summed over the group, and group rank 0 factorizes (PETSc sparse Cholesky,
AMD ordering, prefix ``micro_``; dense LAPACK for small 3D cells) and broadcasts the
correction.  The linear solve itself is therefore not distributed: right for 2D and small-3D
RVEs.  For 3D cells from about 8³ on, :class:`hpcmsm.fe2.rve_dist.DistributedRVE`
(``[micro] solver = "distributed"``) runs the same Newton on the distributed DMDA/KSP backend
:class:`hpcmsm.homogenization.RVEProblem`, with the same flat state layout (small strain,
PBC/KUBC).

Finite strain (chosen when every phase has ``kind == "finite"``; mixing kinds is an InputError):
the same machinery with the deformation gradient as the strain measure.  x = F̄X + w, the "strain"
vector is F = F̄ + ∇w flattened row-major (m = d², index i*d + J), the "stress" is the first
Piola–Kirchhoff P, the "tangent" A = ∂P/∂F as a (d², d²) matrix; the B matrices become the
displacement-gradient matrices, so K = Σ Gᵀ A G, P̄ = ⟨P⟩, Ā = ⟨A⟩ − Fᵀ K⁻¹ F, Hill–Mandel
|⟨P:F⟩ − P̄:F̄| / (|P̄||F̄|).

Non-symmetric micro tangents (small or finite strain): the symmetry of the converged tangent is
checked once per solve; if it is not symmetric, LU replaces the Cholesky and the condensation is
two-sided, Ā = ⟨A⟩ − (∫Bᵀ Aᵀ)ᵀ K⁻¹ ∫Bᵀ A.  A micro point with det F ≤ 0
poisons the residual with NaN on every group rank; the Newton step (or the linearized predictor
w = w_n + χ(F̄ − F̄_n), χ from F̄ = I) is then halved, at most 10 times, before the solve is
reported unconverged.  PBC and KUBC only: TUBC at finite strain (⟨∇w⟩ = 0 with the full
nonsymmetric multiplier and without the small-strain rotation pin) is refused with an InputError.
No exact elastic reuse at finite strain (``try_elastic`` returns None).

Exact elastic reuse (:meth:`VoxelRVE.try_elastic`): the elastic corrector χ (K_e χ = −F_e) and the
strain-localization field L(x) = I + Bχ are computed once per microstructure.  For a new macro
strain the elastic prediction ε(x) = ε_n(x) + L(x)ΔE is checked point by point with the yield
function (``material.elastic_ok``); if no point yields, this prediction *is* the solution of the
nonlinear cell problem and the homogenized tangent is the elastic C_hom — no assembly, no
factorization.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..parallel import block_range
from ..homogenization import element as voxel
from ..homogenization.newton import cell_newton, hill_mandel
from .micro import dissipation, energy, pack_state, state_fields, unpack_state


class _SerialComm:
    rank, size = 0, 1

    def allreduce(self, x, op=None):
        return x

    def Allreduce(self, a, b, op=None):
        b[...] = a

    def bcast(self, x, root=0):
        return x

    def Bcast(self, a, root=0):
        pass

    def allgather(self, x):
        return [x]


def check_voxel_grid(phases: np.ndarray, materials: list) -> int:
    """Validate a voxel phase array against its phase materials (clear InputErrors); returns d."""
    d = phases.ndim
    if d not in (2, 3) or len(set(phases.shape)) != 1:
        raise InputError(f"RVE: phases must be an n^2 or n^3 voxel array, got shape {phases.shape}")
    if phases.min() < 0 or phases.max() >= len(materials):
        raise InputError(f"RVE: phase labels must be in 0..{len(materials) - 1}")
    for k, mat in enumerate(materials):
        if mat.dim != d:
            raise InputError(f"RVE: material of phase {k} is {mat.dim}D but the voxel grid is {d}D")
    return d


class VoxelRVE:
    """Periodic voxel cell with one material per phase; a micro model for :mod:`hpcmsm.fe2.pool`.

    Parameters
    ----------
    phases : int array of shape (n,)*d, indexed [ix, iy(, iz)], values 0..len(materials)-1
    materials : one material per phase (all of the same ``dim`` as the cell)
    comm : the group communicator (``None`` for serial)
    bc : ``"periodic"`` (default), ``"kubc"`` or ``"tubc"``
    rtol : Newton tolerance on ‖r‖ relative to the assembled magnitude of the internal forces
    """

    def __init__(self, phases: np.ndarray, materials: list, comm=None, bc: str = "periodic",
                 rtol: float = 1e-10, max_iterations: int = 25, prefix: str = "micro_",
                 petsc_options: dict | None = None, dense_limit: int = 1100):
        phases = np.asarray(phases)
        d = check_voxel_grid(phases, materials)
        if bc not in ("periodic", "kubc", "tubc"):
            raise InputError(f"RVE: unknown boundary condition {bc!r} (periodic, kubc or tubc)")
        kinds = [getattr(mat, "kind", "small") for mat in materials]
        if len(set(kinds)) != 1 or kinds[0] not in ("small", "finite"):
            raise InputError("RVE: all phase materials must be of the same kind, small or finite strain "
                             f"(got {', '.join(f'phase {k}: {kd}' for k, kd in enumerate(kinds))})")
        self.kinematics = kinds[0]
        finite = self.kinematics == "finite"
        if finite and bc == "tubc":
            raise InputError("RVE: TUBC is implemented for small strain only; use periodic or kubc "
                             "boundary conditions with finite-strain (kind = \"finite\") phases")
        self.comm = comm if comm is not None else _SerialComm()
        # PETSc initializes collectively on COMM_WORLD: import it here, where every rank
        # constructs its micro model, not first in _factor, which only group root ranks reach
        from petsc4py import PETSc  # noqa: F401
        self.dim, self.n, self.bc = d, phases.shape[0], bc
        # strain measure: Mandel small strain (m = 3 / 6) or the deformation gradient F
        # flattened row-major (m = d², index i*d + J)
        self.m = d * d if finite else (3 if d == 2 else 6)
        self._E0 = np.eye(d).ravel() if finite else np.zeros(self.m)     # the undeformed macro strain
        self.materials = list(materials)
        self.rtol, self.max_iterations = rtol, max_iterations
        self.prefix, self.petsc_options = prefix, dict(petsc_options or {})
        self.dense_limit = dense_limit
        self._ksp = self._A = self._b = self._x = self._B = self._X = None
        self._dense = self._pdof = None
        self._lu = None            # AIJ + LU solver, used while the micro tangent is non-symmetric
        self._nonsym = False
        n, m = self.n, self.m
        self.ne = n ** d
        self.phase_e = phases.ravel(order="F").astype(int)          # e = ix + n*iy + n²*iz
        h = 1.0 / n
        # the voxel element of hpcmsm.homogenization (shared with RVEProblem): local node
        # a = (a_x, a_y[, a_z]) has index a_x + 2a_y + 4a_z, DOFs node-major, Mandel strains
        if finite:
            # displacement-gradient matrices: (∇w)_iJ = Σ_a dN_a/dX_J w_{a,i}, rows i*d + J
            G = voxel.shape_gradients(d, h)                           # (nq, nn, d)
            nq_, nn_ = G.shape[:2]
            B = np.zeros((nq_, d, d, nn_, d))
            for i in range(d):
                B[:, i, :, :, i] = np.transpose(G, (0, 2, 1))
            self.B = B.reshape(nq_, d * d, nn_ * d)
        else:
            self.B = voxel.b_matrices("elasticity", d, h)             # (nq, m, nn*d), same for every voxel
        self.wq = voxel.quadrature_weights(d, h)                      # quadrature weights (cell volume 1)
        self.nq = len(self.wq)
        # every voxel has the same B: contractions with it become single GEMMs over all voxels
        nq, m_, na = self.B.shape
        self._Bstrain = self.B.transpose(2, 0, 1).reshape(na, nq * m_)                 # ue @ → eps
        self._Bforce = (self.B * self.wq[:, None, None]).reshape(nq * m_, na)           # sig @ → fe
        BB = np.einsum("qia,qjb,q->qijab", self.B, self.B, self.wq)
        self._Bstiff = BB.reshape(nq * m_ * m_, na * na)                                # C @ → Ke
        self._Bcoup = np.einsum("qia,jk,q->qijak", self.B, np.eye(m_), self.wq).reshape(nq * m_ * m_, na * m_)
        # connectivity
        idx = np.stack(np.unravel_index(np.arange(self.ne), (n,) * d, order="F"), axis=1)   # (ne, d)
        corners = voxel.local_nodes(d)
        ijk = idx[:, None, :] + corners[None]                         # (ne, nn, d)
        if bc == "periodic":
            ijk = ijk % n
            nside = n
        else:
            nside = n + 1
        strides = nside ** np.arange(d)
        self.enodes = (ijk * strides).sum(-1)                         # (ne, nn)
        self.nnodes = nside ** d
        nn = corners.shape[0]
        self.nn = nn
        self.edofs = (self.enodes[:, :, None] * d + np.arange(d)).reshape(self.ne, nn * d)
        self.ndof = self.nnodes * d
        if bc == "periodic":
            fixed = np.arange(d)                                        # node 0: translation
        elif bc == "kubc":
            allijk = np.stack(np.unravel_index(np.arange(self.nnodes), (nside,) * d, order="F"), axis=1)
            fixed_nodes = np.flatnonzero(((allijk == 0) | (allijk == n)).any(axis=1))
            fixed = (fixed_nodes[:, None] * d + np.arange(d)).ravel()
        else:
            # TUBC: only the rigid modes are pinned (3-2-1 / 2-1 rule); their reactions vanish
            # because internal forces and the uniform boundary traction are self-equilibrated
            fixed = [0, 1, n * d + 1] if d == 2 else \
                [0, 1, 2, n * d + 1, n * d + 2, n * nside * d + 2]
            fixed = np.array(fixed)
        self.red = np.full(self.ndof, -1)
        free = np.setdiff1d(np.arange(self.ndof), fixed)
        self.red[free] = np.arange(len(free))
        self.free = free
        self.nred = len(free)
        # work split over the group: a block of voxels per rank
        self.e0, self.e1 = block_range(self.ne, self.comm.size, self.comm.rank)
        self._pattern()
        self.GT = None
        if bc == "tubc":
            # ⟨ε(w)⟩ = 0 as m linear constraints G w = 0 (columns of Gᵀ: Σ_q w_q B_qᵀ e_k assembled);
            # the Lagrange multiplier is the uniform boundary traction Σ·n
            ne_loc = self.e1 - self.e0
            Iq = np.broadcast_to(np.eye(self.m).ravel(), (ne_loc, self.nq, self.m * self.m)).reshape(ne_loc, -1)
            Ge = (Iq @ self._Bcoup).reshape(ne_loc, -1, self.m)
            self.GT = self._assemble_vec(Ge)[self.free]                  # (nred, m)
        # per-phase QP index lists (global order = element-major, point-minor)
        qp_phase = np.repeat(self.phase_e, self.nq)
        self.phase_qp = [np.flatnonzero(qp_phase == k) for k in range(len(materials))]
        self.fields = [state_fields(mat) for mat in materials]
        self.mat_width = [sum(f.values()) for f in self.fields]
        self.state_size = m + self.ndof + sum(len(q) * wd for q, wd in zip(self.phase_qp, self.mat_width))
        lo, hi = self.e0 * self.nq, self.e1 * self.nq
        self.my_phase_slice = [(np.searchsorted(q, lo), np.searchsorted(q, hi)) for q in self.phase_qp]
        self._elastic_setup()

    # ------------------------------------------------------------------------------------------
    def _pattern(self):
        """CSR pattern of the reduced stiffness and the map element entry → CSR data index."""
        ed = self.edofs[self.e0:self.e1]
        rows = np.repeat(ed, ed.shape[1], axis=1).ravel()
        cols = np.tile(ed, (1, ed.shape[1])).ravel()
        rr, cc = self.red[rows], self.red[cols]
        keep = (rr >= 0) & (cc >= 0)
        # global pattern (all elements) so every rank of the group has the same CSR layout
        eda = self.edofs
        ra = self.red[np.repeat(eda, eda.shape[1], axis=1).ravel()]
        ca = self.red[np.tile(eda, (1, eda.shape[1])).ravel()]
        ka = (ra >= 0) & (ca >= 0)
        keys = np.unique(ra[ka].astype(np.int64) * self.nred + ca[ka])
        self.indices = (keys % self.nred).astype(np.int32)
        r_of = (keys // self.nred).astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(r_of, minlength=self.nred))]).astype(np.int32)
        self.nnz = len(keys)
        mykeys = rr[keep].astype(np.int64) * self.nred + cc[keep]
        self.kmap = np.searchsorted(keys, mykeys)
        self.kkeep = keep

    def _local_K(self, Ke: np.ndarray) -> np.ndarray:
        """This rank's element matrices summed into the CSR data array (not reduced)."""
        return np.bincount(self.kmap, weights=Ke.reshape(-1)[self.kkeep], minlength=self.nnz)

    def _csr(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.nred, self.nred))

    def _assemble_K(self, Ke: np.ndarray) -> sp.csr_matrix:
        return self._csr(self._sum(self._local_K(Ke)))

    def _local_vec(self, fe: np.ndarray) -> np.ndarray:
        ed = self.edofs[self.e0:self.e1].ravel()
        if fe.ndim == 2:
            return np.bincount(ed, weights=fe.ravel(), minlength=self.ndof)
        k = fe.shape[2]
        return np.stack([np.bincount(ed, weights=fe[:, :, j].ravel(), minlength=self.ndof) for j in range(k)], 1)

    def _assemble_vec(self, fe: np.ndarray) -> np.ndarray:
        """Element vectors (ne_loc, nn*d[, k]) → full DOF vector(s), summed over the group."""
        return self._sum(self._local_vec(fe))

    def _sum(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.comm.size > 1:
            tot = np.empty_like(x)
            self.comm.Allreduce(x, tot)
            return tot
        return x

    def _factor(self, K: sp.csr_matrix) -> None:
        """(Group rank 0) factorization of K.  Small systems (3D cells up to ~7³ voxels, where fill
        makes the factor nearly dense): dense LAPACK Cholesky.  Larger: PETSc sparse Cholesky whose
        symbolic factorization is reused, since every RVE of the group and every Newton iteration
        has the same pattern."""
        from petsc4py import PETSc

        if self.dim == 3 and self.nred <= self.dense_limit:
            import scipy.linalg as sla

            Kd = K.toarray()
            if self._nonsym:
                self._dense = ("lu", sla.lu_factor(Kd, check_finite=False))
                return
            try:
                self._dense = ("chol", sla.cho_factor(Kd, lower=False, check_finite=False))
            except np.linalg.LinAlgError:   # not positive definite (softening): LU
                self._dense = ("lu", sla.lu_factor(Kd, check_finite=False))
            return
        if self._nonsym:
            self._factor_lu(K)
            return
        if self._ksp is None:
            from ..parallel import petsc_options

            self._pdof = self._block_ordering()
            if self._pdof is not None:     # node-block symmetric storage, AMD-ordered by us
                self._A = PETSc.Mat().create(PETSc.COMM_SELF)
                self._A.setSizes(K.shape)
                self._A.setType("sbaij")
                self._A.setBlockSize(self.dim)
                self._A.setPreallocationCSR((self._bptr, self._bind))
                self._A.setValuesBlockedCSR(self._bptr, self._bind, self._block_values(K.data))
                self._A.assemble()
                opts = {"ksp_type": "preonly", "pc_type": "cholesky", "pc_factor_mat_ordering_type": "natural"}
            else:
                self._A = PETSc.Mat().createAIJ(K.shape, csr=(self.indptr, self.indices, K.data),
                                                comm=PETSc.COMM_SELF)
                opts = {"ksp_type": "preonly", "pc_type": "cholesky", "pc_factor_mat_ordering_type": "amd",
                        **self.petsc_options}
            self._ksp = PETSc.KSP().create(PETSc.COMM_SELF)
            self._ksp.setOptionsPrefix(self.prefix)
            with petsc_options(self.prefix, opts):
                self._ksp.setOperators(self._A)
                self._ksp.setFromOptions()
            self._b = self._A.createVecLeft()
            self._x = self._A.createVecRight()
        elif self._pdof is not None:
            self._A.setValuesBlockedCSR(self._bptr, self._bind, self._block_values(K.data))
            self._A.assemble()
            self._ksp.setOperators(self._A)
        else:
            self._A.setValuesCSR(self.indptr, self.indices, K.data)
            self._A.assemble()
            self._ksp.setOperators(self._A)
        self._ksp.setUp()

    def _factor_lu(self, K: sp.csr_matrix) -> None:
        """Sparse LU (PETSc AIJ, nested dissection) for a non-symmetric micro tangent."""
        from petsc4py import PETSc

        from ..parallel import petsc_options

        if self._lu is None:
            A = PETSc.Mat().createAIJ(K.shape, csr=(self.indptr, self.indices, K.data), comm=PETSc.COMM_SELF)
            ksp = PETSc.KSP().create(PETSc.COMM_SELF)
            ksp.setOptionsPrefix(self.prefix + "lu_")
            with petsc_options(self.prefix + "lu_", {"ksp_type": "preonly", "pc_type": "lu",
                                                     "pc_factor_mat_ordering_type": "nd"}):
                ksp.setOperators(A)
                ksp.setFromOptions()
            self._lu = (ksp, A, A.createVecLeft(), A.createVecRight())
        else:
            ksp, A = self._lu[:2]
            A.setValuesCSR(self.indptr, self.indices, K.data)
            A.assemble()
            ksp.setOperators(A)
        self._lu[0].setUp()

    def _block_ordering(self):
        """Node-block Cholesky set-up (PBC, KUBC: every free node has all d DOFs free; no user
        ``[petsc.micro]`` options).  PETSc's SBAIJ Cholesky with d×d block kernels factorizes
        ≈ 2× faster than AIJ, but supports only the natural ordering, so the nodes are AMD-ordered
        here (on the node graph) and the block upper triangle is stored in that order.  Returns the
        new → old reduced-DOF permutation, or None for the AIJ path."""
        from petsc4py import PETSc

        d = self.dim
        fr = self.free.reshape(-1, d) if len(self.free) % d == 0 else None
        if self.petsc_options or fr is None or not np.array_equal(fr, fr[:, :1] + np.arange(d)):
            return None
        nb = self.nred // d
        rows = np.repeat(np.arange(self.nred), np.diff(self.indptr))
        rn, cn = rows // d, self.indices // d
        gkeys = np.unique(rn.astype(np.int64) * nb + cn)
        gptr = np.concatenate([[0], np.cumsum(np.bincount(gkeys // nb, minlength=nb))]).astype(PETSc.IntType)
        g = PETSc.Mat().createAIJ((nb, nb), csr=(gptr, (gkeys % nb).astype(PETSc.IntType), np.ones(len(gkeys))),
                                  comm=PETSc.COMM_SELF)
        rperm, cperm = g.getOrdering("amd")
        new2old = rperm.getIndices().copy()
        for o in (rperm, cperm, g):
            o.destroy()
        old2new = np.empty(nb, dtype=np.int64)
        old2new[new2old] = np.arange(nb)
        I, J = old2new[rn], old2new[cn]
        keep = I <= J                                                   # block upper triangle
        bkeys = I[keep] * nb + J[keep]
        ub, blk = np.unique(bkeys, return_inverse=True)
        self._bptr = np.concatenate([[0], np.cumsum(np.bincount(ub // nb, minlength=nb))]).astype(PETSc.IntType)
        self._bind = (ub % nb).astype(PETSc.IntType)
        # CSR data index → position in the row-major d×d blocks of the block-CSR value array
        self._bsrc = np.flatnonzero(keep)
        self._bdst = blk * d * d + (rows[keep] % d) * d + (self.indices[keep] % d)
        self._bsize = len(ub) * d * d
        return (new2old[:, None] * d + np.arange(d)).ravel()

    def _block_values(self, data: np.ndarray) -> np.ndarray:
        v = np.empty(self._bsize)
        v[self._bdst] = data[self._bsrc]
        return v

    def _backsolve(self, rhs: np.ndarray) -> np.ndarray:
        if self.dim == 3 and self.nred <= self.dense_limit:
            import scipy.linalg as sla

            kind, fac = self._dense
            return sla.cho_solve(fac, rhs, check_finite=False) if kind == "chol" else \
                sla.lu_solve(fac, rhs, check_finite=False)
        if self._nonsym:
            ksp, _, b, x = self._lu
            out = np.empty(rhs.shape)
            for j, col in enumerate(rhs.reshape(len(rhs), -1).T):     # m ≤ 9 (+1) columns
                b.array[:] = col
                ksp.solve(b, x)
                out.reshape(len(rhs), -1)[:, j] = x.array
            return out
        p = self._pdof
        if rhs.ndim == 1:
            self._b.array[:] = rhs if p is None else rhs[p]
            self._ksp.solve(self._b, self._x)
            if p is None:
                return self._x.array.copy()
            out = np.empty(len(rhs))
            out[p] = self._x.array
            return out
        # several right-hand sides (condensation): one multi-RHS triangular solve
        from petsc4py import PETSc

        k = rhs.shape[1]
        if self._B is None or self._B.getSize()[1] != k:
            for o in (self._B, self._X):
                if o is not None:
                    o.destroy()
            self._B = PETSc.Mat().createDense((self.nred, k), comm=PETSc.COMM_SELF)
            self._B.setUp()
            self._X = PETSc.Mat().createDense((self.nred, k), comm=PETSc.COMM_SELF)
            self._X.setUp()
        # dense PETSc matrices are column-major
        self._B.getDenseArray()[:] = rhs if p is None else rhs[p]
        self._B.assemble()
        self._ksp.getPC().getFactorMatrix().matSolve(self._B, self._X)
        if p is None:
            return np.ascontiguousarray(self._X.getDenseArray())     # C order: it is broadcast as a buffer
        out = np.empty(rhs.shape)
        out[p] = self._X.getDenseArray()
        return out

    def _solve_root(self, K, rhs):
        """Factorize on group rank 0, solve, broadcast. Returns (solution, True).

        TUBC: the solution of the constrained system [K Gᵀ; G 0][x; λ] = [rhs; 0], by the Schur
        complement S = G K⁻¹ Gᵀ (m extra right-hand sides with the same factorization):
        x = P rhs with P = K⁻¹ − K⁻¹Gᵀ S⁻¹ G K⁻¹ (symmetric, P Gᵀ = 0)."""
        if self.GT is not None:
            r2 = rhs.reshape(len(rhs), -1)
            X, _ = self._solve_root_raw(K, np.column_stack([r2, self.GT]))
            k = r2.shape[1]
            Xr, Y = X[:, :k], X[:, k:]
            Xr = Xr - Y @ np.linalg.solve(self.GT.T @ Y, self.GT.T @ Xr)
            return Xr.reshape(rhs.shape), True
        return self._solve_root_raw(K, rhs)

    def _solve_root_raw(self, K, rhs):
        if self.comm.rank == 0:
            self._factor(K)
            x = np.ascontiguousarray(self._backsolve(rhs))      # broadcast below as a C-order buffer
        else:
            x = np.empty(rhs.shape)
        if self.comm.size > 1:
            self.comm.Bcast(x, root=0)
        return x, True

    def destroy(self) -> None:
        for o in (self._ksp, self._A, self._b, self._x, self._B, self._X) + (self._lu or ()):
            if o is not None:
                o.destroy()
        self._ksp = self._A = self._b = self._x = self._B = self._X = self._lu = None

    # ------------------------------------------------------------------------------------------
    def _strains(self, E, w):
        """Micro strains at my QPs: (ne_loc*nq, m)."""
        ue = w[self.edofs[self.e0:self.e1]]                                  # (ne_loc, nn*d)
        eps = (ue @ self._Bstrain).reshape(-1, self.m) + E[None, :]
        return eps

    def _material_update(self, eps, states):
        """Update every phase on my QPs; returns stress, tangent (ne_loc*nq, …) and new states."""
        nloc = eps.shape[0]
        sig = np.empty((nloc, self.m))
        Ct = np.empty((nloc, self.m, self.m))
        new = []
        off = self.e0 * self.nq
        for k, mat in enumerate(self.materials):
            a, b = self.my_phase_slice[k]
            loc = self.phase_qp[k][a:b] - off
            if self.kinematics == "small":
                s, C, ns = mat.update(eps[loc], states[k])
            else:
                s, C, ns = self._finite_update(mat, eps[loc], states[k])
            sig[loc], Ct[loc] = s, C
            new.append(ns)
        return sig, Ct, new

    def _finite_update(self, mat, Fflat, state):
        """P, A flattened to (n, d²), (n, d², d²).  A point with det F ≤ 0 (or a material that
        refuses the state) poisons the phase with NaN: the group-summed residual becomes NaN on
        every rank, so Newton stops unconverged collectively and the macro step is cut back."""
        d, m = self.dim, self.m
        n = len(Fflat)
        F = Fflat.reshape(n, d, d)
        if n and not np.all(np.linalg.det(F) > 0):
            return np.full((n, m), np.nan), np.full((n, m, m), np.nan), state
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                P, A, ns = mat.update(F, state)
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.full((n, m), np.nan), np.full((n, m, m), np.nan), state
        return P.reshape(n, m), A.reshape(n, m, m), ns

    def _split_state(self, state):
        m, nd = self.m, self.ndof
        E_n = state[:m]
        w_n = state[m:m + nd]
        c = m + nd
        mats = []
        for k in range(len(self.materials)):
            nqk = len(self.phase_qp[k])
            wd = self.mat_width[k]
            full = state[c:c + nqk * wd]
            a, b = self.my_phase_slice[k]
            mats.append(unpack_state(full[a * wd:b * wd], self.fields[k], b - a))
            c += nqk * wd
        return E_n, w_n, mats

    def _join_state(self, E, w, mat_states) -> np.ndarray:
        parts = [np.asarray(E, float), w]
        for k, st in enumerate(mat_states):
            a, b = self.my_phase_slice[k]
            # a group rank may own no point of a phase (pack_state cannot reshape 0 points)
            mine = pack_state(st, self.fields[k], b - a) if b > a else np.zeros(0)
            if self.comm.size > 1:
                mine = np.concatenate(self.comm.allgather(mine))
            parts.append(mine)
        return np.concatenate(parts)

    def initial_state(self) -> np.ndarray:
        mats = []
        for k, mat in enumerate(self.materials):
            mats.append(pack_state(mat.initial_state(len(self.phase_qp[k])), self.fields[k], len(self.phase_qp[k])))
        return np.concatenate([self._E0, np.zeros(self.ndof)] + mats)

    # ------------------------------------------------------------------------------------------
    def _elastic_setup(self):
        """Elastic corrector χ, localization L = I + Bχ and the elastic homogenized tangent."""
        st0 = self._split_state(self.initial_state())[2]
        eps = np.tile(self._E0, ((self.e1 - self.e0) * self.nq, 1))          # ε = 0 or F = I
        _, Ct, _ = self._material_update(eps, st0)
        self._check_symmetry(Ct)
        C_hom, chi, _ = self._condense(Ct)
        self.C_elastic = C_hom
        self.chi = chi                                                       # (ndof, m)
        if self.kinematics == "finite":
            # no exact elastic reuse at finite strain (P(F) is nonlinear even without history):
            # χ only serves as the linearized predictor w ≈ w_n + χ (F̄ − F̄_n)
            self.L = self._Lflat = None
            return
        ue = chi[self.edofs[self.e0:self.e1]]                                # (ne_loc, nn*d, m)
        self.L = (np.eye(self.m)[None, None] + np.einsum("qia,eaj->eqij", self.B, ue)).reshape(-1, self.m, self.m)
        self._Lflat = self.L.reshape(-1, self.m * self.m)

    def _check_symmetry(self, Ct: np.ndarray) -> None:
        """Set ``_nonsym`` (same on every group rank) from this rank's micro tangents."""
        asym = self._sum(np.array(_asymmetry(Ct)))
        self._nonsym = bool(asym[0] > 1e-10 * asym[1])

    def _condense(self, Ct, K=None, lu=None, extra=None):
        """C_hom = ⟨C_T⟩ − Fᵀ K⁻¹ F, and the corrector χ = −K⁻¹F (full DOFs).

        ``extra`` (reduced vector): also solve K x = extra with the same factorization and
        return x as a fourth value."""
        ne_loc = self.e1 - self.e0
        Ctq = Ct.reshape(ne_loc, self.nq, self.m, self.m)
        Cavg = self._sum(np.einsum("eqij,q->ij", Ctq, self.wq))
        Cflat = Ctq.reshape(ne_loc, -1)
        Fe = (Cflat @ self._Bcoup).reshape(ne_loc, -1, self.m)              # (ne_loc, nn*d, m)
        F = self._assemble_vec(Fe)[self.free]
        if K is None:
            K = self._assemble_K(Cflat @ self._Bstiff)
        if extra is None:
            X, lu = self._solve_root(K, F)
        else:
            X, lu = self._solve_root(K, np.column_stack([F, extra]))
            X, x = X[:, :self.m], X[:, self.m]
        chi = np.zeros((self.ndof, self.m))
        chi[self.free] = -X
        if self._nonsym:
            # C_hom = ⟨C_T⟩ + ⟨C_T B⟩ χ: the left coupling ∫ C_T B is ∫ Bᵀ C_Tᵀ transposed
            CtT = np.swapaxes(Ctq, -1, -2).reshape(ne_loc, -1)
            FL = self._assemble_vec((CtT @ self._Bcoup).reshape(ne_loc, -1, self.m))[self.free]
            C = Cavg - FL.T @ X
        else:
            C = Cavg - F.T @ X
            if self.kinematics == "small":
                C = 0.5 * (C + C.T)      # symmetric up to round-off; Mandel tangents are symmetric
        if extra is not None:
            return C, chi, lu, x
        return C, chi, lu

    def elastic_tangent(self) -> np.ndarray:
        return self.C_elastic.copy()

    # ------------------------------------------------------------------------------------------
    def _averages(self, E, eps, sig, mats_old, mats_new):
        """Σ, Hill–Mandel residual, energies (cell averages)."""
        wq = np.tile(self.wq, self.e1 - self.e0)
        psi = np.zeros(len(wq))
        dis = np.zeros(len(wq))
        peeq = np.zeros(len(wq))
        plast = np.zeros(len(wq))
        off = self.e0 * self.nq
        for k, mat in enumerate(self.materials):
            a, b = self.my_phase_slice[k]
            loc = self.phase_qp[k][a:b] - off
            x = eps[loc]
            if self.kinematics == "finite":
                x = x.reshape(-1, self.dim, self.dim)
                if len(x) and not np.all(np.linalg.det(x) > 0):    # unconverged solve: no energies
                    psi[loc] = dis[loc] = np.nan
                    continue
            psi[loc] = energy(mat, x, mats_new[k])
            dis[loc] = dissipation(mat, x, mats_old[k], mats_new[k])
            if hasattr(mat, "plastic_strain_eq"):
                peeq[loc] = mat.plastic_strain_eq(mats_new[k])
                plast[loc] = peeq[loc] > mat.plastic_strain_eq(mats_old[k])
            elif "alpha" in mats_new[k]:
                peeq[loc] = mats_new[k]["alpha"]
                plast[loc] = mats_new[k]["alpha"] > mats_old[k]["alpha"]
        mag = np.linalg.norm(sig, axis=1) * np.linalg.norm(eps, axis=1)
        loc_sums = np.concatenate([wq @ sig, [wq @ np.einsum("qi,qi->q", sig, eps), wq @ psi, wq @ dis,
                                              wq @ peeq, wq @ plast, wq @ mag]])
        tot = self._sum(loc_sums)
        S = tot[:self.m]
        sde, psi_, dis_, peeq_, pl_, mag_ = tot[self.m:]
        hm = hill_mandel(sde, S, E, mag_)
        return S, dict(hill_mandel=float(hm), psi=float(psi_), dissipation=float(dis_),
                       peeq=float(peeq_), plastic=float(pl_))

    def try_elastic(self, E, state):
        """Exact result without a solve if the elastic prediction keeps every point elastic, else None
        (always None at finite strain: no linear elastic prediction is exact there)."""
        if self.kinematics == "finite":
            return None
        E = np.asarray(E, dtype=float)
        E_n, w_n, mats = self._split_state(state)
        dE = E - E_n
        eps_old = self._strains(E_n, w_n)
        eps = eps_old + (self.L @ dE)
        off = self.e0 * self.nq
        ok = True
        for k, mat in enumerate(self.materials):
            if not self.fields[k]:
                continue
            if not hasattr(mat, "elastic_ok"):
                ok = False
                break
            a, b = self.my_phase_slice[k]
            loc = self.phase_qp[k][a:b] - off
            if not np.all(mat.elastic_ok(eps[loc], mats[k])):
                ok = False
                break
        if self.comm.size > 1:
            ok = bool(self.comm.allreduce(int(ok), op=_min_op()))
        if not ok:
            return None
        sig, _, new = self._material_update(eps, mats)
        S, info = self._averages(E, eps, sig, mats, new)
        w = w_n + self.chi @ dE
        info.update(converged=True, iterations=0, reused=True)
        return S, self.C_elastic.copy(), self._join_state(E, w, new), info

    warm_start = True      # solve() accepts ``guess`` (the pool passes the QP's last trial state)

    def solve(self, E, state, guess=None):
        """Newton on the cell for macro strain E from the committed ``state``.

        ``guess`` (optional): a state of the same step (e.g. the trial of the previous macro
        Newton iteration); its fluctuation, shifted by the elastic corrector χ(E − E_guess), is
        only the *starting point* of Newton — the return map always starts from the committed
        history, so the converged answer is the same (to the Newton tolerance) with fewer
        iterations as the macro Newton converges.  A warm start that fails falls back to the
        elastic predictor from the committed state.

        Returns (Σ (m,), C_hom (m, m), new_state, info); ``info["converged"]`` is False if Newton
        failed (the caller cuts the macro step back).
        """
        E = np.asarray(E, dtype=float)
        m, k = self.m, self.m + self.ndof
        E_n, w_n, mats = self._split_state(state)
        self._mats = mats                                  # the committed history of this solve
        starts = [(w_n, (self.chi @ (E - E_n))[self.free])]                  # elastic predictor
        if guess is not None and not np.array_equal(guess[:k], state[:k]):
            # warm start from the guess's fluctuation (capped, falls back to the predictor)
            starts.insert(0, (guess[m:k], (self.chi @ (E - guess[:m]))[self.free]))
        res = cell_newton(self, E, starts, rtol=self.rtol, max_iterations=self.max_iterations,
                          max_cuts=10 if self.kinematics == "finite" else 0)
        ev = res.ev
        C = res.C if res.converged else self.C_elastic.copy()
        S, info = self._averages(E, ev.eps, ev.sig, mats, ev.new)
        info.update(converged=res.converged, iterations=res.iterations, reused=False, residuals=res.residuals)
        return S, C, self._join_state(E, res.w, ev.new), info

    # --- the backend of hpcmsm.homogenization.newton.cell_newton: gathered direct solves -------
    def evaluate(self, E, w) -> "_Eval":
        """Material update at w (committed history ``self._mats``), residual, its magnitude and
        the tangent, with one reduction over the group."""
        eps = self._strains(E, w)
        sig, Ct, new = self._material_update(eps, self._mats)
        ne_loc, nd = self.e1 - self.e0, self.ndof
        fe = sig.reshape(ne_loc, -1) @ self._Bforce
        buf = self._sum(np.concatenate([self._local_vec(fe), self._local_vec(np.abs(fe)),
                                        self._local_K(Ct.reshape(ne_loc, -1) @ self._Bstiff)]))
        r, fabs, K = buf[:nd], buf[nd:2 * nd], self._csr(buf[2 * nd:])
        rf = r[self.free]
        if self.GT is not None:   # TUBC: the residual modulo the uniform traction Gᵀλ
            rf = rf - self.GT @ np.linalg.lstsq(self.GT, rf, rcond=None)[0]
        return _Eval(eps, sig, Ct, new, r, K, float(np.linalg.norm(rf)), float(np.linalg.norm(fabs[self.free])))

    def correction(self, ev) -> np.ndarray:
        return self._solve_root(ev.K, -ev.r[self.free])[0]

    def add(self, w, dw, alpha=1.0) -> np.ndarray:
        w = w.copy()
        w[self.free] += dw if alpha == 1.0 else alpha * dw
        return w

    def condense(self, ev, extra: bool):
        # the condensation factorizes the converged tangent anyway: the final Newton correction
        # with it is one more back-substitution.  Is that tangent symmetric?  A non-symmetric one
        # (non-associative laws, ...) needs LU and the two-sided condensation; the Newton
        # iterations keep the choice for the next solve (a stale choice there costs convergence
        # speed, not accuracy: the residual is exact) — checked once per solve, not per iteration
        self._check_symmetry(ev.Ct)
        if extra:
            C, _, _, dw = self._condense(ev.Ct, K=ev.K, extra=-ev.r[self.free])
            return C, dw
        return self._condense(ev.Ct, K=ev.K)[0], None

    def refresh(self, E, w) -> "_Eval":
        eps = self._strains(E, w)
        sig, Ct, new = self._material_update(eps, self._mats)
        return _Eval(eps, sig, Ct, new, None, None, 0.0, 0.0)

    # ------------------------------------------------------------------------------------------
    def micro_fields(self, state) -> dict | None:
        """Micro fields of a committed state, per voxel (QP average), on group rank 0."""
        E, w, mats = self._split_state(state)
        eps = self._strains(E, w)
        sig, _, _ = self._material_update(eps, mats)
        ne_loc = self.e1 - self.e0
        peeq = np.zeros(len(eps))
        off = self.e0 * self.nq
        for k, mat in enumerate(self.materials):
            a, b = self.my_phase_slice[k]
            if hasattr(mat, "plastic_strain_eq"):
                peeq[self.phase_qp[k][a:b] - off] = mat.plastic_strain_eq(mats[k])
            elif "alpha" in mats[k]:
                peeq[self.phase_qp[k][a:b] - off] = mats[k]["alpha"]
        loc = np.concatenate([eps.reshape(ne_loc, self.nq, -1).mean(1), sig.reshape(ne_loc, self.nq, -1).mean(1),
                              peeq.reshape(ne_loc, self.nq).mean(1)[:, None]], axis=1)
        if self.comm.size > 1:
            loc = np.concatenate(self.comm.allgather(loc))
        m, d = self.m, self.dim
        out = {"strain": loc[:, :m], "stress": loc[:, m:2 * m], "peeq": loc[:, 2 * m],
               "phase": self.phase_e.astype(np.int32), "fluctuation": w.reshape(-1, d), "E": E}
        if self.kinematics == "finite":
            # "strain"/"stress" are F and P flattened row-major (i*d + J); the same as (ne, d, d)
            out.update(F=out["strain"].reshape(-1, d, d), P=out["stress"].reshape(-1, d, d),
                       F_bar=np.asarray(E).reshape(d, d))
        return out


def _asymmetry(Ct: np.ndarray) -> list:
    """[max |C_ij − C_ji|, max |C_ii|] over this rank's points (summed over the group by the
    caller); gathers of the flat upper/lower/diagonal entries, ~10x cheaper than C − Cᵀ."""
    n, m = Ct.shape[0], Ct.shape[-1]
    if not n:
        return [0.0, 0.0]
    iu, ju = np.triu_indices(m, 1)
    flat = Ct.reshape(n, m * m)
    return [float(np.abs(flat[:, iu * m + ju] - flat[:, ju * m + iu]).max()),
            float(np.abs(flat[:, ::m + 1]).max())]


class _Eval:
    """One evaluation of the cell at a fluctuation w (this rank's QPs; r, K group-summed)."""

    __slots__ = ("eps", "sig", "Ct", "new", "r", "K", "rnorm", "ref")

    def __init__(self, eps, sig, Ct, new, r, K, rnorm, ref):
        self.eps, self.sig, self.Ct, self.new, self.r, self.K, self.rnorm, self.ref = \
            eps, sig, Ct, new, r, K, rnorm, ref


def _min_op():
    from mpi4py import MPI

    return MPI.MIN
