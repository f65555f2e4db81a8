"""Cell-centred uniform grids on a PETSc DMDA: ownership boxes, ghost filling, global gathers.

Arrays are kept in natural numpy layout ``(z, y, x[, dof])`` (x fastest), which is also PETSc's
DMDA local layout, so a DMDA patch maps onto numpy views without copies.  Cell ``i`` along an axis
of length ``L`` with ``n`` cells has its centre at ``(i + 1/2) h``, ``h = L/n``.

Boundaries: ``periodic`` wraps (DMDA periodic ghosts); otherwise no-flux, realised with DMDA
``GHOSTED`` boundary cells that we fill with the mirror of the first interior cell, so a centred
difference across the boundary face is exactly zero (homogeneous Neumann, finite-volume sense).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError


class Grid:
    """A DMDA with ``dof`` components per cell.  Collective on ``comm``.

    Parameters
    ----------
    comm: MPI communicator.
    shape: cells per axis in (x, y[, z]) order.
    lengths: domain lengths per axis (x, y[, z]) [length].
    periodic: periodic (True) or no-flux (False) boundaries.
    dof: components per cell (2 for Cahn–Hilliard c, μ; 1 for Allen–Cahn φ).
    """

    def __init__(self, comm, shape: Sequence[int], lengths: Sequence[float], periodic: bool, dof: int):
        from petsc4py import PETSc

        self.comm, self.dof, self.periodic = comm, int(dof), bool(periodic)
        self.shape_xyz = tuple(int(n) for n in shape)
        self.dim = len(self.shape_xyz)
        if self.dim not in (2, 3) and self.dim != 1:
            raise InputError("phase field: grids are 1D, 2D or 3D")
        if len(lengths) != self.dim:
            raise InputError("phase field: 'lengths' must have one entry per axis of 'shape'")
        if min(self.shape_xyz) < 3:
            raise InputError(f"phase field: grid {self.shape_xyz} too small (need >= 3 cells per axis)")
        self.lengths_xyz = tuple(float(v) for v in lengths)
        self.h_xyz = tuple(L / n for L, n in zip(self.lengths_xyz, self.shape_xyz))
        bt = PETSc.DMDA.BoundaryType.PERIODIC if periodic else PETSc.DMDA.BoundaryType.GHOSTED
        self.da = PETSc.DMDA().create(dim=self.dim, dof=self.dof, sizes=self.shape_xyz,
                                      boundary_type=(bt,) * self.dim,
                                      stencil_type=PETSc.DMDA.StencilType.STAR, stencil_width=1, comm=comm)
        self.da.setUp()
        # each rank must own at least one cell per axis (DMDA with stencil width 1)
        ranges = self.da.getRanges()
        lx = self.da.getOwnershipRanges()
        if min(min(int(v) for v in l) for l in lx) < 2 and not periodic:
            pass  # GHOSTED handles width-1 patches; nothing to do
        # natural (z, y, x) order of everything below
        self.shape = tuple(reversed(self.shape_xyz))
        self.h = tuple(reversed(self.h_xyz))
        self.lengths = tuple(reversed(self.lengths_xyz))
        self.start = tuple(int(r[0]) for r in reversed(ranges))
        self.stop = tuple(int(r[1]) for r in reversed(ranges))
        self.local_shape = tuple(b - a for a, b in zip(self.start, self.stop))
        granges = self.da.getGhostRanges()
        self.gstart = tuple(int(r[0]) for r in reversed(granges))
        self.gshape = tuple(int(r[1] - r[0]) for r in reversed(granges))
        for a in range(self.dim):
            if self.start[a] - self.gstart[a] != 1 or self.gshape[a] != self.local_shape[a] + 2:
                raise RuntimeError("internal: expected one ghost layer on every side")
        self.owned = tuple(slice(a, b) for a, b in zip(self.start, self.stop))
        self.interior = (slice(1, -1),) * self.dim
        self.cell_volume = float(np.prod(self.h))
        self.ncells = int(np.prod(self.shape))
        self.xloc = self.da.createLocalVec()
        self._boxes = self._all_boxes(lx)
        self._global_point_index()

    # ------------------------------------------------------------------------------------------
    def _all_boxes(self, lx) -> list[tuple[slice, ...]]:
        """Owned boxes of every rank in rank order (DMDA ranks: x fastest)."""
        edges = [np.concatenate([[0], np.cumsum(np.asarray(l, dtype=int))]) for l in lx]  # x, y, z
        boxes = []
        counts = [len(l) for l in lx]
        for rank in range(self.comm.size):
            idx, r = [], rank
            for n in counts:
                idx.append(r % n)
                r //= n
            box = tuple(slice(int(edges[a][idx[a]]), int(edges[a][idx[a] + 1])) for a in range(self.dim))
            boxes.append(tuple(reversed(box)))
        return boxes

    def _global_point_index(self) -> None:
        """Ghosted array of PETSc global cell indices (−1 for no-flux boundary ghosts)."""
        g = self.da.createGlobalVec()
        lo, _ = g.getOwnershipRange()
        npts = int(np.prod(self.local_shape))
        arr = g.getArray().reshape(npts, self.dof)
        arr[:, :] = (lo // self.dof + np.arange(npts))[:, None]
        loc = self.da.createLocalVec()
        loc.set(-1.0)
        self.da.globalToLocal(g, loc)
        gi = loc.getArray(readonly=True).reshape(self.gshape + (self.dof,))[..., 0]
        self.gidx = np.rint(gi).astype(np.int64)
        self.valid = {}  # (axis, side) -> float mask on owned cells: 1 where a face flux exists
        for a in range(self.dim):
            for s in (-1, 1):
                self.valid[(a, s)] = (self.neighbour(self.gidx, a, s) >= 0).astype(float)
        g.destroy()
        loc.destroy()

    # ------------------------------------------------------------------------------------------
    def neighbour(self, padded: np.ndarray, axis: int, side: int) -> np.ndarray:
        """View of ``padded`` (ghosted array) shifted by ``side`` along ``axis``, on owned cells."""
        sl = [slice(1, -1)] * self.dim
        sl[axis] = slice(1 + side, (side - 1) or None)
        return padded[tuple(sl)]

    def fill_mirror(self, padded: np.ndarray) -> None:
        """No-flux boundaries: ghost cell := first interior cell (in place)."""
        if self.periodic:
            return
        for a in range(self.dim):
            if self.start[a] == 0:
                dst = [slice(None)] * padded.ndim
                src = [slice(None)] * padded.ndim
                dst[a], src[a] = 0, 1
                padded[tuple(dst)] = padded[tuple(src)]
            if self.stop[a] == self.shape[a]:
                dst = [slice(None)] * padded.ndim
                src = [slice(None)] * padded.ndim
                dst[a], src[a] = -1, -2
                padded[tuple(dst)] = padded[tuple(src)]

    def ghosted(self, X) -> np.ndarray:
        """Global Vec → ghosted local array ``(gz, gy, gx, dof)`` with boundary ghosts filled."""
        self.da.globalToLocal(X, self.xloc)
        P = self.xloc.getArray().reshape(self.gshape + (self.dof,))
        self.fill_mirror(P)
        return P

    def owned_view(self, X, readonly: bool = False) -> np.ndarray:
        """Owned block of a global Vec as ``(z, y, x, dof)`` (a view: writes go to the Vec)."""
        return X.getArray(readonly=readonly).reshape(self.local_shape + (self.dof,))

    def coordinates(self) -> list[np.ndarray]:
        """Cell-centre coordinates of the owned block, natural order, broadcastable arrays."""
        out = []
        for a in range(self.dim):
            x = (np.arange(self.start[a], self.stop[a]) + 0.5) * self.h[a]
            shp = [1] * self.dim
            shp[a] = -1
            out.append(x.reshape(shp))
        return out

    def coordinates_xyz(self) -> list[np.ndarray]:
        """Owned cell centres as full arrays in (x, y[, z]) order."""
        c = np.meshgrid(*self.coordinates_1d(), indexing="ij")
        return list(reversed(c))

    def coordinates_1d(self) -> list[np.ndarray]:
        return [(np.arange(self.start[a], self.stop[a]) + 0.5) * self.h[a] for a in range(self.dim)]

    def allgather(self, local: np.ndarray) -> np.ndarray:
        """Owned blocks (z, y, x[, k]) of all ranks → the full global array on every rank."""
        from mpi4py import MPI

        trail = local.shape[self.dim:]
        ncomp = int(np.prod(trail)) if trail else 1
        counts = [int(np.prod([s.stop - s.start for s in b])) * ncomp for b in self._boxes]
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
        recv = np.empty(sum(counts))
        self.comm.Allgatherv(np.ascontiguousarray(local, dtype=float).ravel(),
                             [recv, counts, displs.tolist(), MPI.DOUBLE])
        out = np.empty(self.shape + trail)
        for b, n, d in zip(self._boxes, counts, displs):
            out[b] = recv[d:d + n].reshape(tuple(s.stop - s.start for s in b) + trail)
        return out

    def sum(self, local_value: float) -> float:
        return float(self.comm.allreduce(float(local_value)))

    def destroy(self) -> None:
        self.xloc.destroy()
        self.da.destroy()
