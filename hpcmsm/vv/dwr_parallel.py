"""Cell-partitioned assembly and solves for the DWR estimators (:mod:`hpcmsm.vv.dwr`,
:mod:`hpcmsm.vv.dwr_elasticity`).

The triangle mesh and its refinement are replicated on every rank (deterministic newest-vertex
bisection, O(cells) numpy), but the *cells* are partitioned by recursive coordinate bisection of
their centroids: each rank computes element matrices and indicators for its own cells only.
Element contributions go into a local CSR matrix in the reduced (free-DOF) numbering, whose rows
are sent to their owners (contiguous row blocks, one ``alltoall``); the owners build a PETSc AIJ
matrix and solve with CG + GAMG (rigid-body near-null space for vector problems).  Solutions are
gathered on every rank because the estimators need neighbouring cells' gradients.
"""
from __future__ import annotations

import numpy as np


def dof_owners(cell_dofs: np.ndarray, part: np.ndarray, ndofs: int) -> np.ndarray:
    """Owner rank of every DOF: the lowest part among the cells containing it (cells (M, k),
    ``part`` (M,)); DOFs in no cell get part 0."""
    owner = np.full(ndofs, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(owner, cell_dofs.ravel(), np.repeat(part, cell_dofs.shape[1]))
    owner[owner == np.iinfo(np.int64).max] = 0
    return owner


def partition(mesh, comm) -> np.ndarray:
    """Owner rank of every cell of ``mesh`` (RCB of the centroids); the same on every rank."""
    return rcb_partition(mesh.points[mesh.cells].mean(axis=1), comm.size)


def own_cells(mesh, comm) -> np.ndarray:
    """Indices of the cells of ``mesh`` owned by this rank (RCB of the centroids)."""
    return np.flatnonzero(partition(mesh, comm) == comm.rank)


def rcb_partition(x: np.ndarray, nparts: int) -> np.ndarray:
    """Recursive coordinate bisection of points ``x`` (n, 2) into ``nparts`` parts of sizes
    differing by at most one (cut along the longer extent, proportional to the part counts).
    Deterministic (stable sorts), so every rank computes the same partition."""
    part = np.zeros(len(x), dtype=np.int64)

    def split(idx: np.ndarray, p0: int, np_: int) -> None:
        if np_ == 1 or len(idx) == 0:
            part[idx] = p0
            return
        left = np_ // 2
        ext = x[idx].max(axis=0) - x[idx].min(axis=0)
        d = int(np.argmax(ext))
        order = idx[np.lexsort((idx, x[idx, 1 - d], x[idx, d]))]
        # sizes proportional to the part counts, matching block_range (first parts one larger)
        n = len(idx)
        q, r = divmod(n, np_)
        nl = left * q + min(left, r)
        split(order[:nl], p0, left)
        split(order[nl:], p0 + left, np_ - left)

    split(np.arange(len(x)), 0, nparts)
    return part


def solve_partitioned(comm, n: int, loc_dofs: np.ndarray, Ke: np.ndarray, rhs_dofs: np.ndarray,
                      rhs_vals: np.ndarray, fixed: np.ndarray, g: np.ndarray, coords: np.ndarray | None,
                      prefix: str, dof_owner: np.ndarray | None = None) -> np.ndarray:
    """Solve ``K u = f`` with ``u = g`` on ``fixed`` (bool (n,)) from element contributions.

    Each rank passes only its own cells' element matrices ``Ke`` (m, k, k) on global DOFs
    ``loc_dofs`` (m, k) and its load entries (``rhs_dofs``, ``rhs_vals``, summed).  Dirichlet DOFs
    are eliminated element by element (``f_i −= K_ij g_j``); the local CSR in the free-DOF
    numbering is split by owner row block and exchanged (one alltoall), and the owned rows form a
    PETSc AIJ matrix (CG + GAMG; for a 2D vector field with interleaved components pass the node
    coordinates ``coords`` (n/2, 2) to attach the rigid-body near-null space; None for scalars).
    ``dof_owner`` (n,): the rank owning each DOF's row (see :func:`dof_owners`); the free DOFs are
    renumbered rank by rank so each rank's rows are those of its own subdomain (default:
    contiguous blocks of the DOF index, which scatters rows across the domain after refinement).
    Returns the full solution on every rank."""
    import scipy.sparse as sps

    from ..parallel import block_range

    free = ~fixed
    nf = int(free.sum())
    fidx = np.flatnonzero(free)                       # old index of each free DOF
    size, rank = comm.size, comm.rank
    if dof_owner is None:
        order = np.arange(nf)
        blocks = [block_range(nf, size, r) for r in range(size)]
    else:
        fo = np.asarray(dof_owner)[fidx]
        order = np.argsort(fo, kind="stable")         # new position → free-DOF position
        off = np.concatenate([[0], np.cumsum(np.bincount(fo, minlength=size))])
        blocks = [(int(off[r]), int(off[r + 1])) for r in range(size)]
    fmap = np.full(n, -1, dtype=np.int64)
    fmap[fidx[order]] = np.arange(nf)
    ug = np.where(fixed, g, 0.0)
    # element-level elimination of the Dirichlet values
    f = np.bincount(rhs_dofs, rhs_vals, minlength=n)
    lift = -np.einsum("mab,mb->ma", Ke, ug[loc_dofs])
    f += np.bincount(loc_dofs.ravel(), lift.ravel(), minlength=n)
    k = loc_dofs.shape[1]
    R = np.repeat(loc_dofs, k, axis=1).ravel()
    C = np.tile(loc_dofs, (1, k)).ravel()
    keep = free[R] & free[C]
    Aloc = sps.csr_matrix((Ke.ravel()[keep], (fmap[R[keep]], fmap[C[keep]])), shape=(nf, nf))
    floc = f[fidx[order]]
    send = [(Aloc[lo:hi], floc[lo:hi]) for lo, hi in blocks]
    recv = comm.alltoall(send) if size > 1 else send
    lo, hi = blocks[rank]
    Aown = sum((r[0] for r in recv[1:]), recv[0][0]).tocsr()
    Aown.sum_duplicates()
    fown = np.sum([r[1] for r in recv], axis=0)
    near_null = None
    if coords is not None:
        gdof = fidx[order][lo:hi]
        node, comp = gdof // 2, gdof % 2
        xy = coords[node]
        # rigid-body modes (two translations, one rotation) on the owned free DOFs
        near_null = [(comp == 0).astype(float), (comp == 1).astype(float),
                     np.where(comp == 0, -xy[:, 1], xy[:, 0])]
    defaults = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12, "ksp_atol": 1e-50, "ksp_max_it": 3000}
    local = petsc_solve_rows(comm, Aown, fown, prefix, defaults, near_null)
    u = ug.copy()
    u[fidx[order]] = np.concatenate(comm.allgather(local)) if size > 1 else local
    return u


def petsc_solve_rows(comm, rows, b_local: np.ndarray, prefix: str, defaults: dict,
                     near_null: list | None = None) -> np.ndarray:
    """Solve with a distributed PETSc KSP whose matrix rows owned by this rank are the scipy CSR
    block ``rows`` ((n_own, n), contiguous row blocks in rank order) and right-hand side
    ``b_local`` (n_own,).  ``defaults``: KSP options under ``prefix`` (overridable from the command
    line); ``near_null``: owned parts of near-null-space vectors (orthonormalised here, as PETSc
    requires) or None.  Returns this rank's block of the solution; destroys what it creates."""
    from petsc4py import PETSc

    from ..errors import ConvergenceError
    from ..parallel import petsc_options

    nown, n = rows.shape
    pcomm = PETSc.Comm(comm)
    mat = PETSc.Mat().createAIJ(size=((nown, n), (nown, n)),
                                csr=(rows.indptr.astype(PETSc.IntType), rows.indices.astype(PETSc.IntType),
                                     rows.data), comm=pcomm)
    mat.assemble()
    modes, nsp = [], None
    if near_null is not None:
        for arr in near_null:
            v = mat.createVecRight()
            v.setArray(arr)
            for w in modes:
                v.axpy(-v.dot(w), w)
            v.scale(1.0 / v.norm())
            modes.append(v)
        nsp = PETSc.NullSpace().create(vectors=modes, comm=pcomm)
        mat.setNearNullSpace(nsp)
    x = mat.createVecRight()
    rhs = mat.createVecLeft()
    rhs.setArray(b_local)
    ksp = PETSc.KSP().create(comm=pcomm)
    with petsc_options(prefix, defaults):
        ksp.setOptionsPrefix(prefix)
        ksp.setOperators(mat)
        ksp.setFromOptions()
        ksp.solve(rhs, x)
    reason = ksp.getConvergedReason()
    local = x.getArray().copy()
    for o in [ksp, mat, x, rhs] + ([nsp] if nsp is not None else []) + modes:
        o.destroy()
    if reason < 0:
        raise ConvergenceError(f"{prefix} KSP diverged (reason {reason})")
    return local
