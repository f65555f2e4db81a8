"""Function spaces on a distributed :class:`~hpcmsm.fem.mesh.Mesh` and vectorised assembly.

Degrees of freedom are node-interleaved (``dof = node * bs + component``), so PETSc's row
ownership follows the node ownership and the block size ``bs`` tells GAMG about the vector field.

Assembly (no Python loop over elements): element matrices are computed for chunks of cells
as (ncell, ndof_e, ndof_e) arrays; entries of owned rows are summed with ``np.bincount`` straight
into the value arrays PETSc's AIJ matrix itself uses (created with the ``...WithArrays``
constructors, diagonal and off-diagonal blocks in one buffer; positions precomputed once from the
node graph), so there is no CSR copy and no row-by-row insertion; the few entries of rows owned by
another rank (cells on the partition interface) go to their owners through a fixed exchange
planned once with the structure (:meth:`FunctionSpace._iface_plan`), not through PETSc's stash.
Vectors are summed into a ghosted local array and scattered back with ``ADD_VALUES``.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..parallel import check_all
from .mesh import Mesh


def det_inv(J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Determinants and inverses of stacks of 2x2 / 3x3 matrices in closed form (numpy's batched
    LAPACK inv is ~30x slower for these sizes)."""
    d = J.shape[-1]
    if d == 1:
        return J[..., 0, 0], 1.0 / J
    if d == 2:
        a, b, c, e = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]
        det = a * e - b * c
        inv = np.stack([np.stack([e, -b], -1), np.stack([-c, a], -1)], -2) / det[..., None, None]
        return det, inv
    cof = np.empty_like(J)
    cof[..., 0, 0] = J[..., 1, 1] * J[..., 2, 2] - J[..., 1, 2] * J[..., 2, 1]
    cof[..., 0, 1] = J[..., 1, 2] * J[..., 2, 0] - J[..., 1, 0] * J[..., 2, 2]
    cof[..., 0, 2] = J[..., 1, 0] * J[..., 2, 1] - J[..., 1, 1] * J[..., 2, 0]
    cof[..., 1, 0] = J[..., 0, 2] * J[..., 2, 1] - J[..., 0, 1] * J[..., 2, 2]
    cof[..., 1, 1] = J[..., 0, 0] * J[..., 2, 2] - J[..., 0, 2] * J[..., 2, 0]
    cof[..., 1, 2] = J[..., 0, 1] * J[..., 2, 0] - J[..., 0, 0] * J[..., 2, 1]
    cof[..., 2, 0] = J[..., 0, 1] * J[..., 1, 2] - J[..., 0, 2] * J[..., 1, 1]
    cof[..., 2, 1] = J[..., 0, 2] * J[..., 1, 0] - J[..., 0, 0] * J[..., 1, 2]
    cof[..., 2, 2] = J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
    det = np.einsum("...k,...k->...", J[..., 0, :], cof[..., 0, :])
    return det, np.swapaxes(cof, -1, -2) / det[..., None, None]


def big_zeros(n: int, dtype=float) -> np.ndarray:
    """Zero-filled array for the large assembly buffers (matrix values, column indices).  Above
    8 MB it is an anonymous mapping created with MAP_POPULATE: the kernel maps and zeroes all
    pages in one call instead of one page-fault trap per 4 kB page on first touch (measured here
    for the 650 MB value buffer at 10⁶ DOFs: 0.25 s against 0.52 s for np.zeros + first touch;
    advising transparent huge pages instead was 0.06 s when the kernel had free 2 MB pages but
    0.8 s when it had to compact memory first, so it is not used).  Falls back to np.zeros.
    The array keeps the mapping alive."""
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    if nbytes >= 8 << 20:
        try:
            import mmap
            m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
            return np.frombuffer(m, dtype=dtype)
        except (AttributeError, OSError, ValueError):     # no MAP_POPULATE (not Linux)
            pass
    return np.zeros(int(n), dtype=dtype)


def _expand_csr(ptr: np.ndarray, cols: np.ndarray, bs: int, IT) -> tuple[np.ndarray, np.ndarray]:
    """Dof-level CSR (indptr, indices) of a node-level CSR with ``bs`` interleaved components:
    node row r becomes dof rows (r, 0..bs-1), each with the columns (c, 0..bs-1) of r's nodes c."""
    if bs == 1:
        return ptr.astype(IT), cols.astype(IT)
    L = np.diff(ptr)
    row_len = np.repeat(L * bs, bs)
    indptr = np.zeros(len(L) * bs + 1, dtype=np.int64)
    np.cumsum(row_len, out=indptr[1:])
    idx = np.repeat(cols.astype(IT), bs) * bs + np.tile(np.arange(bs, dtype=IT), len(cols))
    # every dof row of node row r repeats r's column list: gather it from idx (int32 index arrays:
    # at 10⁶ DOFs the int64 versions alone took ~1.3 GB)
    start_in_idx = np.repeat(ptr[:-1] * bs, bs)
    gather = np.repeat((start_in_idx - indptr[:-1]).astype(IT), row_len) + np.arange(indptr[-1], dtype=IT)
    return indptr.astype(IT), idx[gather].astype(IT, copy=False)


class FunctionSpace:
    """Continuous Lagrange space of the mesh's element with ``bs`` components per node.

    ``quad_degree`` defaults to ``2 * degree`` (exact mass matrix on affine cells)."""

    def __init__(self, mesh: Mesh, bs: int = 1, quad_degree: int | None = None, chunk: int = 8192):
        from petsc4py import PETSc

        self.PETSc = PETSc
        self.mesh, self.bs = mesh, bs
        self.comm = mesh.comm
        self.element = el = mesh.element
        self.dim = mesh.dim
        self.quad_degree = quad_degree or 2 * el.degree
        self.qpts, self.qwts = el.quadrature(self.quad_degree)
        self.N, self.dN = el.tabulate(self.qpts)
        self.nq = len(self.qwts)
        self.nen = el.nen
        self.ndofe = el.nen * bs
        self.chunk = chunk
        self.ncells = len(mesh.cells)
        self.n_owned = mesh.n_owned * bs
        self.n_global = mesh.n_global * bs
        self.dof_start = mesh.node_start * bs
        comp = np.arange(bs)
        self.cell_dofs = (mesh.cells[:, :, None] * bs + comp).reshape(self.ncells, -1)       # local
        self.cell_dofs_global = (mesh.node_global[mesh.cells][:, :, None] * bs + comp).reshape(self.ncells, -1)
        self._check_geometry()
        self._mat_structure = None
        self._identical = None

    # ---------------------------------------------------------------- geometry
    def chunks(self) -> Iterator[slice]:
        for s in range(0, max(self.ncells, 1), self.chunk):
            yield slice(s, min(s + self.chunk, self.ncells))

    def geometry(self, sl: slice):
        """Quadrature-point coordinates x (c, q, d), gradients dN/dx (c, q, nen, d) and
        weights w·detJ (c, q) for the cells ``sl``."""
        X = self.mesh.points[self.mesh.cells[sl]]
        J = np.matmul(X.transpose(0, 2, 1)[:, None], self.dN[None])          # (c, q, i, k)
        det, invJ = det_inv(J)
        dNdx = np.matmul(self.dN[None], invJ)                                # (c, q, a, i)
        x = np.matmul(self.N[None], X)                                       # (c, q, i)
        return x, dNdx, det * self.qwts

    def _check_geometry(self):
        # second-order cells are also checked at their own nodes: a midside node pulled towards a
        # vertex folds the cell between the quadrature points (det J > 0 at every Gauss point)
        dN = self.dN
        if self.element.degree > 1:
            dN = np.concatenate([dN, self.element.tabulate(self.element.nodes)[1]])
        bad = 0
        for sl in self.chunks():
            X = self.mesh.points[self.mesh.cells[sl]]
            J = np.matmul(X.transpose(0, 2, 1)[:, None], dN[None])
            bad += int(np.sum(np.any(det_inv(J)[0] <= 0, axis=1)))
        check_all(self.comm, bad == 0, f"mesh has {bad} inverted, degenerate or folded cells (det J <= 0)")

    def identical_cells(self) -> bool:
        """True if every local cell is a translate of the first one with the same node order (to
        1e-12 of its size), e.g. a structured box: then dN/dx and w|J| are the same in all cells,
        and so is the element matrix of a spatially constant tangent (callers may compute it once).
        Rank-local and cached."""
        if self._identical is None:
            ok = True
            if self.ncells:
                X0 = self.mesh.points[self.mesh.cells[0]]
                rel0 = X0 - X0[0]
                tol = 1e-12 * max(float(np.abs(rel0).max()), 1e-300)
                for sl in self.chunks():
                    X = self.mesh.points[self.mesh.cells[sl]]
                    if np.abs(X - X[:, :1] - rel0).max(initial=0.0) > tol:
                        ok = False
                        break
            self._identical = ok
        return self._identical

    def quadrature_points(self) -> np.ndarray:
        """Physical coordinates of all local quadrature points (ncell, nq, d)."""
        return np.concatenate([self.geometry(sl)[0] for sl in self.chunks()]) if self.ncells else \
            np.zeros((0, self.nq, self.dim))

    # ---------------------------------------------------------------- vectors
    def create_vec(self):
        """Ghosted PETSc vector (owned dofs, then ghost dofs in the local form)."""
        PETSc = self.PETSc
        ghosts = self.mesh.node_global[self.mesh.n_owned:].astype(PETSc.IntType)
        v = PETSc.Vec().createGhost(ghosts, size=(self.n_owned, self.n_global), bsize=self.bs, comm=self.comm)
        v.setBlockSize(self.bs)
        v.set(0.0)
        return v

    def local_array(self, v) -> np.ndarray:
        """Owned + ghost values of a ghosted vector (after a forward ghost update), as a copy."""
        v.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)
        with v.localForm() as loc:
            return loc.getArray(readonly=True).copy()

    def assemble_vector(self, vec, cell_vectors: Iterable[tuple[slice, np.ndarray]] | np.ndarray,
                        dofs: np.ndarray | None = None):
        """Set ``vec`` to the sum of element vectors (c, ndof_e) (or an iterable of (slice, block))."""
        nloc = len(self.mesh.points) * self.bs
        acc = np.zeros(nloc)
        if isinstance(cell_vectors, np.ndarray):
            cell_vectors = [(slice(0, self.ncells), cell_vectors)]
        for sl, Fe in cell_vectors:
            d = self.cell_dofs[sl] if dofs is None else dofs[sl]
            acc += np.bincount(d.ravel(), weights=Fe.ravel(), minlength=nloc)
        PETSc = self.PETSc
        with vec.localForm() as loc:
            loc.getArray()[:] = acc
        vec.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        vec.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        return vec

    # ---------------------------------------------------------------- matrices
    def _structure(self):
        """Sparsity of the owned rows, split like PETSc's (MPI)AIJ stores it: a *diagonal* block
        (columns owned by this rank, local column numbers) and an *off-diagonal* block (other
        ranks' columns, global numbers), each a dof-level CSR; both value arrays are laid out in
        one buffer ``[diag | off]`` that the matrix uses without a copy.  Cached on the space.

        Per cell c and node pair (a, b) with row node r = cells[c, a] owned, the value of (row dof
        (r, i), column dof (cells[c, b], j)) lives at ``cb[c, a, b] + i * st + j`` in that buffer,
        st = sd[r] if node b is owned (diagonal block) else so[r] (bs² values per node pair): one
        lookup per node pair during assembly, no search.  ``cb`` costs nen² index integers per cell
        (int32 below 2³¹ values: 256 B per Q1 hexahedron, 84 MB at 10⁶ DOFs), ``own`` (c, nen) marks
        owned nodes, ``dpos`` the diagonal blocks (see :meth:`_finish_structure`)."""
        if self._mat_structure is not None:
            return self._mat_structure
        from . import _kernels
        if _kernels.enabled():
            self._mat_structure = self._structure_fast()
            return self._mat_structure
        m, bs = self.mesh, self.bs
        IT = self.PETSc.IntType
        ptr, cols = m.row_ptr, m.row_cols
        ns, no = m.node_start, m.n_owned
        L = np.diff(ptr)
        rowid = np.repeat(np.arange(no), L)
        Ng = m.n_global
        gn = m.node_global[m.cells]                                  # (c, nen)
        own = (gn >= ns) & (gn < ns + no)                            # row node owned (c, nen)
        rl = np.where(own, gn - ns, 0)
        keys = rowid * Ng + cols                                     # sorted (CSR rows, sorted cols)
        pos = np.searchsorted(keys, (rl * Ng)[:, :, None] + gn[:, None, :])
        del keys, rl
        dg = (cols >= ns) & (cols < ns + no)                         # owned column: diagonal block
        Ld = np.bincount(rowid, weights=dg, minlength=no).astype(np.int64) if no else np.zeros(0, np.int64)
        Lo = L - Ld
        dptr = np.concatenate([[0], np.cumsum(Ld)]).astype(np.int64)
        optr = np.concatenate([[0], np.cumsum(Lo)]).astype(np.int64)
        cd = np.cumsum(dg) - 1                                       # index among the diagonal entries
        co = np.cumsum(~dg) - 1
        b2 = bs * bs
        nnz_d, nnz_o = b2 * int(dptr[-1]), b2 * int(optr[-1])
        ebase = np.where(dg, b2 * dptr[rowid] + bs * (cd - dptr[rowid]),
                         nnz_d + b2 * optr[rowid] + bs * (co - optr[rowid]))
        VT = IT if nnz_d + nnz_o < 2 ** 31 - 1 else np.int64
        cb = np.where(own[:, :, None], ebase[np.minimum(pos, max(len(ebase) - 1, 0))] if len(ebase) else 0,
                      -1).astype(VT)
        del pos
        dI, dJ = _expand_csr(dptr, cols[dg] - ns, bs, IT)
        oI, oJ = _expand_csr(optr, cols[~dg], bs, IT)
        self._mat_structure = self._finish_structure(dict(
            cb=cb, own=own, sd=(bs * Ld).astype(VT), so=(bs * Lo).astype(VT), VT=VT,
            diag=(dI, dJ), off=(oI, oJ), nnz_d=nnz_d, nnz=nnz_d + nnz_o))
        return self._mat_structure

    def _finish_structure(self, s: dict) -> dict:
        """Add ``dpos``: buffer position of the (node r, node r) block of every owned node r (its
        dof (r, i) diagonal entry is at dpos[r] + i·(sd[r] + 1)); -1 for a node in no cell."""
        no = self.mesh.n_owned
        dpos = np.full(no, -1, dtype=s["VT"])
        if self.ncells:
            ar = np.arange(self.nen)
            own = s["own"]
            dpos[self.mesh.cells[own]] = s["cb"][:, ar, ar][own]
        s["dpos"] = dpos
        return s

    def _structure_fast(self) -> dict:
        """:meth:`_structure` with the compiled kernels (row-local binary search, no (c, nen, nen)
        int64 key temporaries); the same arrays."""
        from . import _kernels
        m, bs = self.mesh, self.bs
        IT = self.PETSc.IntType
        ptr, cols = m.row_ptr, m.row_cols
        ns, no = m.node_start, m.n_owned
        gn = m.node_global[m.cells].astype(cols.dtype, copy=False)
        own = (gn >= ns) & (gn < ns + no)
        L = np.diff(ptr)
        dg = (cols >= ns) & (cols < ns + no)
        cdg = np.concatenate([[0], np.cumsum(dg)])
        Ld = (cdg[ptr[1:]] - cdg[ptr[:-1]]).astype(np.int64)
        Lo = L - Ld
        dptr = np.concatenate([[0], np.cumsum(Ld)]).astype(np.int64)
        optr = np.concatenate([[0], np.cumsum(Lo)]).astype(np.int64)
        b2 = bs * bs
        nnz_d, nnz_o = b2 * int(dptr[-1]), b2 * int(optr[-1])
        VT = IT if nnz_d + nnz_o < 2 ** 31 - 1 else np.int64
        ebase = np.empty(len(cols), VT)
        estride = np.empty(len(cols), VT)
        _kernels.entry_layout(ptr, cols, ns, no, bs, dptr, optr, Ld, Lo, nnz_d, ebase, estride)
        del estride
        cb = np.empty(gn.shape + (gn.shape[1],), VT)
        _kernels.cell_bases(ptr, cols, gn, ns, no, ebase, cb)
        del ebase

        def expand(p, c, shift):
            indptr = np.empty(len(p) * bs - bs + 1, IT)
            idx = big_zeros(b2 * len(c), IT)
            _kernels.expand_csr(p, c, shift, bs, indptr, idx)
            return indptr, idx
        return self._finish_structure(dict(
            cb=cb, own=own, sd=(bs * Ld).astype(VT), so=(bs * Lo).astype(VT), VT=VT,
            diag=expand(dptr, cols[dg], ns), off=expand(optr, cols[~dg], 0), nnz_d=nnz_d, nnz=nnz_d + nnz_o))

    def create_matrix(self):
        """AIJ matrix with block size ``bs`` and the sparsity of the mesh, assembled (zero).

        The matrix keeps this space's value buffer (PETSc's MatCreate(Seq|MPI)AIJWith(Split)Arrays,
        no copy), so :meth:`assemble_matrix` sums element matrices straight into PETSc's storage
        instead of building a CSR copy and inserting it row by row."""
        PETSc = self.PETSc
        s = self._structure()
        self._iface_plan()            # collective: the interface exchange is part of the structure
        vals = big_zeros(s["nnz"])
        vals[::512] = 0.0             # first touch here (matrix creation), not in the first assembly
        #                               (a no-op for the pre-populated mapping of big_zeros)
        dI, dJ = s["diag"]
        size = ((self.n_owned, self.n_global), (self.n_owned, self.n_global))
        # the index arrays are shared with the cached structure (PETSc reads the diagonal block's
        # ones, no copy, saving 4 bytes per nonzero); it rewrites the off-diagonal block's column
        # indices in place (global -> compressed local): those get a copy
        if self.comm.size == 1:
            csr = (dI, dJ, vals)
        else:
            oI, oJ = s["off"]
            csr = ((dI, dJ, vals[:s["nnz_d"]]), (oI, oJ.copy(), vals[s["nnz_d"]:]))
        A = PETSc.Mat().createAIJWithArrays(size, csr, bsize=self.bs, comm=self.comm)
        A.setBlockSize(self.bs)       # petsc4py 3.18 drops bsize here; GAMG needs it
        used = A.getAttr("__csr__")
        used = [used] if self.comm.size == 1 else list(used or [])
        shared = len(used) > 0 and all(np.shares_memory(u[2], vals) or u[2].size == 0 for u in used)
        A.setAttr("_hpcmsm_values", vals if shared else None)   # else assemble by MatSetValuesCSR
        A.setAttr("_hpcmsm_fresh", shared)                      # values still all zero
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        return A

    def _iface_plan(self) -> dict | None:
        """Exchange plan for the entries that interface cells contribute to rows owned by other
        ranks (None on one rank).  Collective on first call, then cached with the structure.

        Instead of PETSc's stash (MatSetValues of off-process rows: every assembly sends (row,
        col, value) triples, sorts them and inserts them with a search on the owner — ~1/3 of a
        2-rank assembly at 3·10⁵ DOFs), the (row, col) pairs are sent once: each unique pair gets
        a slot in a fixed send order and the owner looks up its buffer position once.  Every
        assembly then sums the interface element matrices into those slots (one bincount),
        exchanges only the values (one Alltoallv) and adds them at the stored positions."""
        s = self._structure()
        if "iface" in s:
            return s["iface"]
        comm = self.comm
        if comm.size == 1:
            s["iface"] = None
            return None
        from mpi4py import MPI
        bs, nd = self.bs, self.ndofe
        cells = np.flatnonzero(self.mesh.interface)
        cell_pos = np.full(self.ncells, -1, dtype=np.int64)
        cell_pos[cells] = np.arange(len(cells))
        own = np.repeat(s["own"][cells], bs, axis=1)                      # (ni, nd): row owned here
        g = self.cell_dofs_global[cells].astype(np.int64)                 # (ni, nd)
        kk, rr = np.nonzero(~own)                                          # element rows to send
        flat = (((kk * nd + rr) * nd)[:, None] + np.arange(nd)[None]).ravel()   # into buf.ravel()
        R = np.repeat(g[kk, rr], nd)
        C = g[kk].ravel()
        N = np.int64(self.n_global)
        keys, inv = np.unique(R * N + C, return_inverse=True)             # sorted by row: by owner
        Ru, Cu = keys // N, keys % N
        starts = np.array(comm.allgather(int(self.dof_start)) + [int(N)], dtype=np.int64)
        dest = np.searchsorted(starts, Ru, side="right") - 1
        scounts = np.bincount(dest, minlength=comm.size).astype(np.int64)
        rcounts = np.array(comm.alltoall([int(c) for c in scounts]), dtype=np.int64)
        sdispl = np.concatenate([[0], np.cumsum(scounts)[:-1]])
        rdispl = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
        recv = np.empty((2, int(rcounts.sum())), dtype=np.int64)
        for k, arr in enumerate((Ru, Cu)):
            comm.Alltoallv([np.ascontiguousarray(arr), (scounts, sdispl), MPI.INT64_T],
                           [recv[k], (rcounts, rdispl), MPI.INT64_T])
        pos = self._buffer_positions(s, recv[0] - self.dof_start, recv[1])
        check_all(comm, bool(np.all(pos >= 0)), "fem assembly: interface entries outside the sparsity "
                  "structure (mesh row graph and cells disagree)")
        upos, uinv = np.unique(pos, return_inverse=True)
        s["iface"] = dict(ncells=len(cells), cell_pos=cell_pos, flat=flat, slot=inv, nslots=len(keys),
                          scounts=scounts, sdispl=sdispl, rcounts=rcounts, rdispl=rdispl,
                          upos=upos, uinv=uinv)
        return s["iface"]

    def _buffer_positions(self, s: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Value-buffer position of (owned local dof row, global dof column) pairs (-1 if the
        entry is not in the structure): a vectorised bisection in the row's sorted columns of
        the diagonal (local column numbers) or off-diagonal block (global numbers)."""
        ds, no = self.dof_start, self.n_owned
        out = np.full(len(rows), -1, dtype=np.int64)
        dmask = (cols >= ds) & (cols < ds + no)
        for blk, m, c, base in ((s["diag"], dmask, cols - ds, 0), (s["off"], ~dmask, cols, s["nnz_d"])):
            ptr, idx = blk
            r, c = rows[m], c[m]
            if not len(r) or not len(idx):
                continue
            lo, hi = ptr[r].astype(np.int64), ptr[r + 1].astype(np.int64)
            end = hi.copy()
            while True:
                act = lo < hi
                if not act.any():
                    break
                mid = np.minimum((lo + hi) // 2, len(idx) - 1)
                less = idx[mid] < c
                lo = np.where(act & less, mid + 1, lo)
                hi = np.where(act & ~less, mid, hi)
            ok = (lo < end) & (idx[np.minimum(lo, len(idx) - 1)] == c)
            out[np.flatnonzero(m)[ok]] = base + lo[ok]
        return out

    def _iface_exchange(self, plan: dict, buf: np.ndarray, vals: np.ndarray) -> None:
        """Send the interface entries of other ranks' rows and add the received ones into this
        rank's value buffer (collective)."""
        from mpi4py import MPI
        send = np.bincount(plan["slot"], weights=buf.ravel()[plan["flat"]], minlength=plan["nslots"])
        recv = np.empty(int(plan["rcounts"].sum()))
        self.comm.Alltoallv([send, (plan["scounts"], plan["sdispl"]), MPI.DOUBLE],
                            [recv, (plan["rcounts"], plan["rdispl"]), MPI.DOUBLE])
        if len(recv):
            vals[plan["upos"]] += np.bincount(plan["uinv"], weights=recv, minlength=len(plan["upos"]))

    def _positions(self, sl) -> tuple[np.ndarray, np.ndarray | None, int, int]:
        """Buffer positions, relative to ``lo``, of every element-matrix entry of the cells ``sl``
        (c, ndof_e, ndof_e; intp, as np.bincount wants them), the mask of entries in owned rows
        (None if all are), and the range [lo, hi) of positions touched."""
        s = self._structure()
        bs, nen = self.bs, self.nen
        own = s["own"][sl]
        allown = bool(own.all())
        base = s["cb"][sl].astype(np.intp)                             # (c, nen, nen)
        r = np.where(own, self.mesh.cells[sl], 0)                      # row node (owned rows)
        stride = np.where(own[:, None, :], s["sd"][r][:, :, None], s["so"][r][:, :, None]).astype(np.intp)
        if not allown:
            base = np.where(own[:, :, None], base, 0)
        ownp = own[:, :, None] if not allown else True
        lo = int(np.min(base, where=ownp, initial=np.iinfo(np.intp).max))
        hi = int(np.max(base + (bs - 1) * (stride + 1), where=ownp, initial=-1)) + 1
        if hi <= lo:
            lo = hi = 0
        c = len(base)
        ii = np.arange(bs, dtype=np.intp)
        # dp[c, a, i, b, j] = base + i * stride + j - lo, with one pass over the (c, nen·bs, nen·bs)
        # output (the node-level factors are small)
        bj = (base - lo)[:, :, :, None] + ii                           # (c, a, b, j)
        istr = ii[None, None, :, None] * stride[:, :, None, :]         # (c, a, i, b)
        dp = np.add(bj[:, :, None, :, :], istr[:, :, :, :, None]).reshape(c, nen * bs, nen * bs)
        if allown:
            return dp, None, lo, hi
        return dp, np.repeat(np.repeat(own, bs, axis=1), bs * nen, axis=1).reshape(dp.shape), lo, hi

    def _bc_arrays(self, bc_dofs, bc_values) -> tuple[np.ndarray, np.ndarray]:
        """Flag (uint8) and value per local (owned + ghost) dof of the Dirichlet dofs ``bc_dofs``
        (owned local dofs); ghost entries come from their owners (one ghost update), so every rank
        eliminates the same columns.  Empty arrays if there are none (on every rank)."""
        from mpi4py import MPI
        PETSc = self.PETSc
        bc_dofs = np.asarray(bc_dofs if bc_dofs is not None else [], dtype=np.int64)
        if self.comm.allreduce(len(bc_dofs), op=MPI.SUM) == 0:
            return np.zeros(0, np.uint8), np.zeros(0)
        vals = np.broadcast_to(np.asarray(0.0 if bc_values is None else bc_values, float), bc_dofs.shape)
        out = []
        for data in (np.ones(len(bc_dofs)), vals):
            v = self.create_vec()
            v.getArray()[bc_dofs] = data
            out.append(self.local_array(v))
            v.destroy()
        return (out[0] != 0).astype(np.uint8), out[1]

    def assemble_matrix(self, A, cell_matrices: Iterable[tuple | "ElasticBlock"] | np.ndarray, b=None,
                        bc_dofs: np.ndarray | None = None, bc_values=None, diag: float = 1.0):
        """Sum element matrices into ``A`` (zeroed first): items are (cells, Ke (c, ndof_e, ndof_e))
        or (cells, Ke, Fe (c, ndof_e)) with cells a slice or index array, or :class:`ElasticBlock`
        (element matrix and body-force vector computed inside the assembly).  Compiled kernels
        (hpcmsm.fem._kernels) when numba is available, else pure numpy; both give the same result.

        ``b`` (ghosted vector, optional) is set to the sum of the element vectors.  ``bc_dofs``
        (owned local dofs) with ``bc_values`` (scalar or per dof): Dirichlet conditions applied
        symmetrically inside the pass — constrained rows and columns of every element matrix are
        zeroed, the column terms moved to ``b`` (lifting), then A[r, r] = diag and b[r] = diag·g_r.
        The result equals ``A.zeroRowsColumns(rows, diag, x=g, b=b)`` after an unconstrained
        assembly (tests/fem/test_fem_assembly_system.py)."""
        from . import _kernels
        PETSc = self.PETSc
        s = self._structure()
        if isinstance(cell_matrices, np.ndarray):
            cell_matrices = [(slice(0, self.ncells), cell_matrices)]
        bcf, bcv = self._bc_arrays(bc_dofs, bc_values)
        nloc = len(self.mesh.points) * self.bs
        acc = np.zeros(nloc) if (b is not None or len(bcf)) else np.zeros(0)
        vals = A.getAttr("_hpcmsm_values")
        direct = vals is not None
        if direct:
            if not A.getAttr("_hpcmsm_fresh"):
                A.zeroEntries()               # PETSc's storage *is* vals: zeroed in place
            A.setAttr("_hpcmsm_fresh", False)
        else:
            vals = np.zeros(s["nnz"])
        fast = _kernels.enabled()
        ctx = dict(vals=vals, bcf=bcf, bcv=bcv, acc=acc)
        plan = self._iface_plan()         # None on one rank: no interface cells there
        if plan is not None:
            ctx["iface_plan"] = plan
            ctx["iface_buf"] = np.zeros((plan["ncells"], self.ndofe, self.ndofe))
        for item in cell_matrices:
            if isinstance(item, ElasticBlock):
                if fast:
                    self._assemble_elastic_fast(item, ctx)
                    continue
                items = item.numpy_blocks(self, want_vector=len(acc) > 0)
            else:
                items = [item]
            for it in items:
                sl, Ke = it[0], it[1]
                Fe = it[2] if len(it) > 2 else None
                if Fe is not None and len(acc):
                    d = self.cell_dofs[sl]
                    acc += np.bincount(d.ravel(), weights=np.asarray(Fe).ravel(), minlength=nloc)
                if fast:
                    self._scatter_fast(sl, Ke, ctx)
                else:
                    self._scatter_numpy(sl, Ke, ctx)
        if plan is not None:
            self._iface_exchange(plan, ctx["iface_buf"], vals)
        if len(bcf) and len(bc_dofs):
            # A[r, r] = diag on the (all-zero) constrained owned rows
            dof = np.asarray(bc_dofs, dtype=np.int64)
            node, comp = dof // self.bs, dof % self.bs
            vals[s["dpos"][node].astype(np.int64) + comp * (s["sd"][node].astype(np.int64) + 1)] = diag
        if not direct:
            A.zeroEntries()
            dI, dJ = s["diag"]
            oI, oJ = s["off"]
            A.setValuesCSR(dI, (dJ + self.dof_start).astype(PETSc.IntType), vals[:s["nnz_d"]],
                           addv=PETSc.InsertMode.ADD)
            if len(oJ):
                A.setValuesCSR(oI, oJ, vals[s["nnz_d"]:], addv=PETSc.InsertMode.ADD)
        A.assemble()
        if b is not None:
            with b.localForm() as loc:
                loc.getArray()[:] = acc
            b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
            if len(bcf):
                b.getArray()[:] = np.where(bcf[:self.n_owned] != 0, diag * bcv[:self.n_owned],
                                           b.getArray(readonly=True))
            b.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        return A

    def assemble_system(self, A, b, cell_matrices, bc_dofs=None, bc_values=None, diag: float = 1.0):
        """Matrix, right-hand side and symmetric Dirichlet conditions in one pass (see
        :meth:`assemble_matrix`)."""
        return self.assemble_matrix(A, cell_matrices, b=b, bc_dofs=bc_dofs, bc_values=bc_values, diag=diag)

    def _eliminate_numpy(self, cids, Ke, ctx):
        """Symmetric Dirichlet elimination of the element matrices Ke of cells cids (numpy);
        returns Ke (a modified copy if any cell has a constrained dof) and adds the lifting terms
        -Ke[:, s] g_s to ctx["acc"]."""
        bcf = ctx["bcf"]
        if not len(bcf):
            return Ke
        d = self.cell_dofs[cids]
        cf = bcf[d] != 0                                       # (c, n)
        hit = np.flatnonzero(cf.any(axis=1))
        if not len(hit):
            return Ke
        Ke = np.array(Ke, dtype=float)                         # may be a broadcast view
        Kh, ch = Ke[hit], cf[hit]
        g = np.where(ch, ctx["bcv"][d[hit]], 0.0)
        lift = -np.einsum("crs,cs->cr", Kh, g)
        lift[ch] = 0.0
        keep = ~ch
        Ke[hit] = Kh * keep[:, :, None] * keep[:, None, :]
        acc = ctx["acc"]
        acc += np.bincount(d[hit].ravel(), weights=lift.ravel(), minlength=len(acc))
        return Ke

    def _scatter_numpy(self, sl, Ke, ctx):
        if not isinstance(sl, slice) and len(sl) > self.chunk:      # bound the position arrays
            for s in range(0, len(sl), self.chunk):
                self._scatter_numpy(sl[s:s + self.chunk], Ke[s:s + self.chunk], ctx)
            return
        Ke = self._eliminate_numpy(self._cell_ids(sl), Ke, ctx)
        dp, mask, lo, hi = self._positions(sl)
        if mask is None:
            w, q = Ke.ravel(), dp.ravel()
        else:
            w, q = Ke[mask], dp[mask]
        vals = ctx["vals"]
        if q.size:
            vals[lo:hi] += np.bincount(q, weights=w, minlength=hi - lo)
        if mask is not None:
            iface = self.mesh.interface[sl]
            if iface.any():               # rows owned by other ranks
                self._iface_rows(self._cell_ids(sl)[iface], np.asarray(Ke[iface]), ctx)

    def _cell_ids(self, sl) -> np.ndarray:
        if isinstance(sl, slice):
            return np.arange(*sl.indices(self.ncells), dtype=np.int64)
        return np.asarray(sl, dtype=np.int64)

    def _iface_rows(self, cids, Ke_iface, ctx):
        """Element matrices of interface cells ``cids`` (which exist only on more than one rank):
        summed into the exchange buffer; their entries in rows owned by other ranks go to the
        owners in :meth:`_iface_exchange`."""
        if len(cids):
            buf, at = ctx["iface_buf"], ctx["iface_plan"]["cell_pos"][cids]
            if len(np.unique(at)) == len(at):
                buf[at] += Ke_iface
            else:                         # a block listing a cell twice: unbuffered sum
                np.add.at(buf, at, Ke_iface)

    def _iface_index(self, cids):
        iface = self.mesh.interface[cids]
        idx = np.full(len(cids), -1, dtype=np.int64)
        idx[iface] = np.arange(int(iface.sum()))
        return iface, idx, np.empty((int(iface.sum()), self.ndofe, self.ndofe))

    def _scatter_fast(self, sl, Ke, ctx):
        from . import _kernels
        s = self._structure()
        cids = self._cell_ids(sl)
        if not len(cids):
            return
        iface, idx, Kout = self._iface_index(cids)
        Ke = np.asarray(Ke, dtype=float)
        if Ke.strides[0] == 0:                           # one broadcast element matrix: chunk copies
            for st in range(0, len(cids), self.chunk):
                c = cids[st:st + self.chunk]
                _kernels.scatter_add(ctx["vals"], s["cb"], s["sd"], s["so"], s["own"], self.mesh.cells,
                                     np.ascontiguousarray(Ke[st:st + len(c)]), c, self.bs, ctx["bcf"],
                                     ctx["bcv"], ctx["acc"], idx[st:st + len(c)], Kout)
        else:
            _kernels.scatter_add(ctx["vals"], s["cb"], s["sd"], s["so"], s["own"], self.mesh.cells,
                                 np.ascontiguousarray(Ke), cids, self.bs, ctx["bcf"], ctx["bcv"], ctx["acc"],
                                 idx, Kout)
        if iface.any():
            self._iface_rows(cids[iface], Kout, ctx)

    def _assemble_elastic_fast(self, blk: "ElasticBlock", ctx):
        from . import _kernels
        s = self._structure()
        cids = self._cell_ids(blk.cells)
        if not len(cids):
            return
        if self.bs != self.dim:
            raise InputError(f"elasticity assembly needs bs = dim = {self.dim}, got bs = {self.bs}")
        iface, idx, Kout = self._iface_index(cids)
        m = self.mesh
        dN = np.ascontiguousarray(self.dN, dtype=float)
        qw = np.ascontiguousarray(self.qwts, dtype=float)
        N = np.ascontiguousarray(self.N, dtype=float)
        mK, mT, mC = _kernels.mandel_tables(self.dim)
        if blk.D is None:
            D, lam, mu = np.zeros((0, 1, 1, 1)), float(blk.lam), float(blk.mu)
        else:
            D, lam, mu = np.ascontiguousarray(blk.D, dtype=float), 0.0, 0.0
        fq = blk.point_force(self, len(cids)) if len(ctx["acc"]) else None
        if fq is None:
            fq = np.zeros((0, self.nq, self.dim))
        _kernels.elastic_system(ctx["vals"], s["cb"], s["sd"], s["so"], s["own"], m.points, m.cells, N, dN, qw,
                                cids, lam, mu, D, mK, mT, mC, fq, ctx["bcf"], ctx["bcv"], ctx["acc"], idx, Kout)
        if iface.any():
            self._iface_rows(cids[iface], Kout, ctx)

    # ---------------------------------------------------------------- helpers
    def interpolate(self, f: Callable[[np.ndarray], np.ndarray], vec=None):
        """Nodal interpolation of ``f(x) -> (n,) or (n, bs)`` into a (new) ghosted vector."""
        if vec is None:
            vec = self.create_vec()
        vals = np.asarray(f(self.mesh.points[:self.mesh.n_owned]), dtype=float).reshape(self.mesh.n_owned, -1)
        if vals.shape[1] != self.bs:
            raise InputError(f"interpolate: function returned {vals.shape[1]} components, expected {self.bs}")
        vec.setArray(vals.ravel())
        vec.ghostUpdate(self.PETSc.InsertMode.INSERT, self.PETSc.ScatterMode.FORWARD)
        return vec

    def boundary_dofs(self, name: str, components=None, owned_only: bool = True) -> np.ndarray:
        """Local dof indices on a named boundary (components: list or None for all)."""
        nodes = self.mesh.boundary_nodes(name, owned_only=owned_only)
        comps = range(self.bs) if components is None else components
        return (nodes[:, None] * self.bs + np.asarray(list(comps))[None, :]).ravel()

    def cell_values(self, local: np.ndarray, sl: slice = slice(None)) -> np.ndarray:
        """Element dof values (c, nen, bs) gathered from a local (owned+ghost) array."""
        return local[self.cell_dofs[sl]].reshape(-1, self.nen, self.bs)

    def owned_global_rows(self, local_dofs: np.ndarray) -> np.ndarray:
        local_dofs = np.asarray(local_dofs)
        return (local_dofs[local_dofs < self.n_owned] + self.dof_start).astype(self.PETSc.IntType)


class ElasticBlock:
    """Small-strain stiffness Σ_q Bᵀ D B w|J| of ``cells`` (slice or index array), computed inside
    :meth:`FunctionSpace.assemble_matrix` (fused compiled kernel, or numpy in chunks): either
    isotropic (``lam``, ``mu`` in the stress unit) or a per-point Mandel tangent ``D``
    (len(cells), nq, m, m).  Optional body force ``f`` (force per volume): a constant (d,) or per
    point (len(cells), nq, d); its load vector Σ_q N_a f w|J| goes into ``b`` when one is assembled.
    Needs bs = dim."""

    def __init__(self, cells, lam: float | None = None, mu: float | None = None, D: np.ndarray | None = None,
                 f: np.ndarray | None = None):
        if (D is None) == (lam is None or mu is None):
            raise ValueError("ElasticBlock: give either lam and mu, or D")
        self.cells, self.lam, self.mu, self.D = cells, lam, mu, D
        self.f = None if f is None else np.asarray(f, dtype=float)

    def point_force(self, sp: FunctionSpace, nc: int) -> np.ndarray | None:
        """Body force as (1 | nc, nq, d) (constant or per point), or None."""
        if self.f is None:
            return None
        if self.f.shape == (sp.dim,):
            return np.ascontiguousarray(np.broadcast_to(self.f, (1, sp.nq, sp.dim)))
        if self.f.shape != (nc, sp.nq, sp.dim):
            raise InputError(f"ElasticBlock: body force of shape {self.f.shape}, expected ({sp.dim},) or "
                             f"({nc}, {sp.nq}, {sp.dim})")
        return np.ascontiguousarray(self.f)

    def numpy_blocks(self, sp: FunctionSpace, want_vector: bool = False) -> Iterator[tuple]:
        """(cells, Ke[, Fe]) chunks by the pure-numpy kernels of hpcmsm.fem.forms."""
        from . import forms
        cids = sp._cell_ids(self.cells)
        fq = self.point_force(sp, len(cids)) if want_vector else None
        for s in range(0, len(cids), sp.chunk):
            c = cids[s:s + sp.chunk]
            _, dNdx, w = sp.geometry(c)
            if self.D is None:
                Ke = forms.stiffness_isotropic(dNdx, self.lam, self.mu, w)
            else:
                Ke = forms.stiffness_small(forms.strain_operator(dNdx), self.D[s:s + sp.chunk], w)
            if fq is None:
                yield c, Ke
            else:
                f = np.broadcast_to(fq if len(fq) == 1 else fq[s:s + sp.chunk], (len(c), sp.nq, sp.dim))
                yield c, Ke, forms.source_vector(sp.N, f, w)
