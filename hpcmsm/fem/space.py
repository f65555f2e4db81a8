"""Function spaces on a distributed :class:`~hpcmsm.fem.mesh.Mesh` and vectorised assembly.

Degrees of freedom are node-interleaved (``dof = node * bs + component``), so PETSc's row
ownership follows the node ownership and the block size ``bs`` tells GAMG about the vector field.

Assembly (no Python loop over elements): element matrices are computed for chunks of cells
as (ncell, ndof_e, ndof_e) arrays; entries of owned rows are summed straight into the CSR value
array of the owned rows with ``np.bincount`` (positions precomputed once from the node graph) and
handed to PETSc with one ``MatSetValuesCSR``; the few entries of rows owned by another rank (cells
on the partition interface) go through one ``MatSetValuesRCV`` call and PETSc's stash.
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
        bad = 0
        for sl in self.chunks():
            X = self.mesh.points[self.mesh.cells[sl]]
            J = np.matmul(X.transpose(0, 2, 1)[:, None], self.dN[None])
            bad += int(np.sum(det_inv(J)[0] <= 0))
        check_all(self.comm, bad == 0, f"mesh has {bad} inverted or degenerate cells (det J <= 0)")

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
        if self._mat_structure is not None:
            return self._mat_structure
        m, bs = self.mesh, self.bs
        ptr, cols = m.row_ptr, m.row_cols
        L = np.diff(ptr)
        rowid = np.repeat(np.arange(m.n_owned), L)
        Ng = m.n_global
        keys = rowid * Ng + cols                                  # sorted (CSR rows, sorted cols)
        gn = m.node_global[m.cells]                               # (c, nen)
        r = np.repeat(gn[:, :, None], self.nen, axis=2)
        c = np.repeat(gn[:, None, :], self.nen, axis=1)
        own = (r >= m.node_start) & (r < m.node_start + m.n_owned)
        rl = np.where(own, r - m.node_start, 0)
        pos = np.searchsorted(keys, rl * Ng + c)
        del keys, rl, c, r
        IT = self.PETSc.IntType
        pos = np.where(own, pos, -1).astype(IT if pos.size and pos.max(initial=0) < 2 ** 31 - 1 else np.int64)
        # dof-level CSR of the owned rows; index arrays in PETSc's integer type (int32 here):
        # at 10⁶ DOFs the int64 versions of gather/indices alone took ~1.3 GB
        ii = np.arange(bs, dtype=IT)
        row_len = np.repeat(L * bs, bs)
        indptr = np.zeros(m.n_owned * bs + 1, dtype=np.int64)
        np.cumsum(row_len, out=indptr[1:])
        idx = (np.repeat(cols.astype(IT), bs) * bs + np.tile(ii, len(cols)))   # one node row's dof cols
        # indices: for node row r, dof row (r, i) has the same column list (length bs*L_r)
        start_in_idx = np.repeat(ptr[:-1] * bs, bs)
        gather = np.repeat((start_in_idx - indptr[:-1]).astype(IT), row_len) + np.arange(indptr[-1], dtype=IT)
        indices = idx[gather]
        self._mat_structure = dict(pos=pos, own=own, ptr=ptr, L=L, indptr=indptr.astype(IT),
                                   indices=indices.astype(IT, copy=False), nnz=int(indptr[-1]))
        del indices, idx, gather
        return self._mat_structure

    def create_matrix(self):
        """Preallocated AIJ matrix with block size ``bs`` (the sparsity of the mesh)."""
        PETSc = self.PETSc
        s = self._structure()
        A = PETSc.Mat().createAIJ(((self.n_owned, self.n_global), (self.n_owned, self.n_global)), bsize=self.bs,
                                  csr=(s["indptr"], s["indices"]),
                                  comm=self.comm)
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        return A

    def assemble_matrix(self, A, cell_matrices: Iterable[tuple[slice, np.ndarray]] | np.ndarray):
        """Sum element matrices (c, ndof_e, ndof_e) into ``A`` (zeroed first)."""
        PETSc = self.PETSc
        s = self._structure()
        bs, nen = self.bs, self.nen
        if isinstance(cell_matrices, np.ndarray):
            cell_matrices = [(slice(0, self.ncells), cell_matrices)]
        data = np.zeros(s["nnz"])
        iface_R, iface_V = [], []
        ptr, L = s["ptr"], s["L"]
        ii = np.arange(bs)
        for sl, Ke in cell_matrices:
            p = s["pos"][sl]                                         # (c, nen, nen)
            own = s["own"][sl]
            cells = self.mesh.cells[sl]
            rnode = np.where(cells < self.mesh.n_owned, cells, 0)
            sr, Lr = ptr[rnode], L[rnode]                            # (c, nen)
            base = (bs * bs * sr)[:, :, None] + (p - sr[:, :, None]) * bs    # (c, nen, nen)
            # dof position: base + i*bs*L_r + j  for row comp i, col comp j
            dp = (base[:, :, None, :, None]
                  + ii[None, None, :, None, None] * (bs * Lr)[:, :, None, None, None]
                  + ii[None, None, None, None, :])
            dp = dp.reshape(Ke.shape)
            if own.all():                                            # no rows of other ranks
                w, q, mask = Ke.ravel(), dp.ravel(), None
            else:
                mask = np.repeat(np.repeat(own, bs, axis=1), bs, axis=2)    # row owned (c, nen*bs, nen*bs)
                w, q = Ke[mask], dp[mask]
            if q.size:
                lo, hi = int(q.min()), int(q.max()) + 1
                data[lo:hi] += np.bincount(q - lo, weights=w, minlength=hi - lo)
            iface = self.mesh.interface[sl]
            if iface.any() and mask is not None:
                Kg = np.where(mask[iface], 0.0, Ke[iface])
                iface_R.append(self.cell_dofs_global[sl][iface])
                iface_V.append(Kg)
        A.zeroEntries()
        A.setValuesCSR(s["indptr"], s["indices"], data, addv=PETSc.InsertMode.ADD)
        if iface_R:
            R = np.concatenate(iface_R).astype(PETSc.IntType)
            A.setValuesRCV(R, R, np.concatenate(iface_V), addv=PETSc.InsertMode.ADD)
        A.assemble()
        return A

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
