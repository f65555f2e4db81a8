"""Explicit atomistic systems (pair potentials and EAM) and their parallel relaxation (PETSc TAO).

Atoms are distributed in contiguous blocks over the ranks of ``comm`` (natural ordering, so the
result does not depend on the rank count).  Each rank evaluates the pairs whose first atom it
owns; the positions of the other atoms it needs come through a PETSc scatter (ghosts), and the
forces go back with a reverse scatter-add.  The neighbour list is rebuilt (collectively) when an
atom has moved more than half the skin since the last build.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConvergenceError, InputError
from ..parallel import block_range


def minimum_image(r: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Wrap separation vectors into the periodic box (``box[k] = 0`` → free direction)."""
    if box is None:
        return r
    per = box > 0
    if not per.any():
        return r
    r = r.copy()
    r[..., per] -= box[per] * np.round(r[..., per] / box[per])
    return r


def wrap(X: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions wrapped into [0, box) (guarding against mod() rounding up to the box length)."""
    Y = np.mod(X, box)
    return np.where(Y >= box, Y - box, Y)


def neighbour_pairs(X: np.ndarray, radius: float, box: np.ndarray | None) -> np.ndarray:
    """All pairs (i < j) closer than ``radius`` (minimum image in periodic directions) → (npair, 2)."""
    from scipy.spatial import cKDTree

    if box is not None and np.any(box > 0):
        if np.any(box[box > 0] < 2 * radius):
            raise InputError(f"periodic box {box.tolist()} is smaller than twice the interaction range {radius:.4g}")
        # cKDTree's periodic mode needs all directions periodic: use a huge period for free ones
        span = X.max(axis=0) - X.min(axis=0) + 4 * radius + 1.0
        bs = np.where(box > 0, box, 2 * span)
        Y = wrap(X - np.where(box > 0, 0.0, X.min(axis=0) - radius), bs)
        tree = cKDTree(Y, boxsize=bs)
    else:
        tree = cKDTree(X)
    return tree.query_pairs(radius, output_type="ndarray")


def pair_energy(potential, x: np.ndarray, pairs: np.ndarray, box: np.ndarray | None, per_atom: bool = False):
    """Total energy, forces (N, d) (= −∂E/∂x) and optionally per-atom energies (½ φ to each end)."""
    r = minimum_image(x[pairs[:, 1]] - x[pairs[:, 0]], box)
    rn = np.maximum(np.linalg.norm(r, axis=1), 1e-12)  # coincident atoms only in a wild trial step
    f, f1, _ = potential.pair(rn)
    g = (f1 / rn)[:, None] * r  # ∂φ/∂x_j
    N, d = x.shape
    grad = np.zeros((N, d))
    for k in range(d):
        grad[:, k] = np.bincount(pairs[:, 1], g[:, k], N) - np.bincount(pairs[:, 0], g[:, k], N)
    E = float(f.sum())
    if per_atom:
        e = 0.5 * (np.bincount(pairs[:, 0], f, N) + np.bincount(pairs[:, 1], f, N))
        return E, -grad, e
    return E, -grad


def _triplets(bonds: np.ndarray) -> np.ndarray:
    """All angles (c, j, k), j < k in bond order, from directed bonds (c, n) (vectorised: bonds
    sorted by centre, each paired with the following ones of the same centre)."""
    b = bonds[np.lexsort((bonds[:, 1], bonds[:, 0]))]
    out = []
    s = 1
    while s < len(b):
        same = b[s:, 0] == b[:-s, 0]
        if not same.any():
            break
        out.append(np.stack([b[:-s, 0][same], b[:-s, 1][same], b[s:, 1][same]], axis=1))
        s += 1
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def triplet_energy(potential, x: np.ndarray, triplets: np.ndarray, box: np.ndarray | None):
    """Three-body energy (Stillinger–Weber) of the angles ``triplets`` (c, j, k) and forces (N, d)."""
    N, d = x.shape
    if len(triplets) == 0:
        return 0.0, np.zeros((N, d))
    c, j, k = triplets.T
    rj = minimum_image(x[j] - x[c], box)
    rk = minimum_image(x[k] - x[c], box)
    E, Gj, Gk, _ = potential.triplet(rj, rk, hessian=False)
    grad = np.zeros((N, d))
    for a in range(d):
        grad[:, a] = np.bincount(j, Gj[:, a], N) + np.bincount(k, Gk[:, a], N) - np.bincount(c, Gj[:, a] + Gk[:, a], N)
    return float(E.sum()), -grad


class ParallelRelaxation:
    """Minimise the pair-potential energy of N atoms over the free atoms with PETSc TAO.

    ``x0`` (N, d) start positions (identical on every rank), ``fixed`` (N,) bool mask, ``box``
    periodic lengths (0 = free direction) or None.  TAO options under prefix ``relax_``
    (default ``-relax_tao_type lmvm``).  Collective on ``comm``.
    """

    def __init__(self, comm, potential, x0: np.ndarray, fixed: np.ndarray | None = None,
                 box: np.ndarray | None = None, skin: float = 0.3, prefix: str = "relax_", external=None):
        from petsc4py import PETSc

        self.comm, self.pot = comm, potential
        self.x0 = np.asarray(x0, dtype=float)
        self.N, self.d = self.x0.shape
        self.box = None if box is None else np.asarray(box, dtype=float)
        self.fixed = np.zeros(self.N, bool) if fixed is None else np.asarray(fixed, bool)
        self.skin = float(skin) * 1.0
        self.prefix = prefix
        # optional external potential on single atoms, x_owned (n, d) -> (E, ∂E/∂x (n, d)),
        # evaluated by each rank on the atoms it owns (e.g. an indenter)
        self.external = external
        self.lo, self.hi = block_range(self.N, comm.size, comm.rank)
        n = (self.hi - self.lo) * self.d
        self.X = PETSc.Vec().createMPI((n, self.N * self.d), comm=comm)
        self.G = self.X.duplicate()
        self.X.setArray(self.x0[self.lo:self.hi].ravel())
        self._scatter = None
        self.eam = bool(getattr(potential, "eam", False))
        if self.eam:  # one density per atom: a scalar vector and its own ghost scatter
            self.Rho = PETSc.Vec().createMPI((self.hi - self.lo, self.N), comm=comm)
        self.rebuilds = 0
        self.evaluations = 0
        self._build(self.x0)

    def _build(self, xall: np.ndarray) -> None:
        from petsc4py import PETSc

        allp = neighbour_pairs(xall, self.pot.rc + self.skin, self.box)
        own0 = (allp[:, 0] >= self.lo) & (allp[:, 0] < self.hi)
        pairs = allp[own0]
        bonds = None
        if self.pot.three_body:
            # angles centred on owned atoms: every bond from an owned centre (either pair order)
            own1 = (allp[:, 1] >= self.lo) & (allp[:, 1] < self.hi)
            bonds = np.concatenate([allp[own0], allp[own1][:, ::-1]])
        extra = bonds.ravel() if bonds is not None else np.zeros(0, np.int64)
        need = np.unique(np.concatenate([np.arange(self.lo, self.hi), pairs.ravel(), extra])).astype(np.int64)
        self.need = need
        self.loc_pairs = np.searchsorted(need, pairs)
        if bonds is not None:
            self.loc_triplets = _triplets(np.searchsorted(need, bonds))
        dofs = (need[:, None] * self.d + np.arange(self.d)).ravel().astype(PETSc.IntType)
        if self._scatter is not None:
            self._scatter.destroy()
            self._xloc.destroy()
            self._is.destroy()
            if self.eam:
                for o in (self._rscatter, self._rloc, self._ris):
                    o.destroy()
        self._xloc = PETSc.Vec().createSeq(len(dofs), comm=PETSc.COMM_SELF)
        self._is = PETSc.IS().createGeneral(dofs, comm=PETSc.COMM_SELF)
        self._scatter = PETSc.Scatter().create(self.X, self._is, self._xloc, None)
        if self.eam:
            self._rloc = PETSc.Vec().createSeq(len(need), comm=PETSc.COMM_SELF)
            self._ris = PETSc.IS().createGeneral(need.astype(PETSc.IntType), comm=PETSc.COMM_SELF)
            self._rscatter = PETSc.Scatter().create(self.Rho, self._ris, self._rloc, None)
        self.x_build = xall[need].copy()
        self.rebuilds += 1

    def _eam_local(self, xl: np.ndarray):
        """EAM energy share and forces on the local (owned + ghost) atoms: the pair densities go to
        both ends and are summed over ranks (reverse scatter-add), the complete densities come back to
        the ghosts (forward scatter); F(ρ) is counted for owned atoms only."""
        from petsc4py import PETSc

        p = self.loc_pairs
        n = len(self.need)
        r = minimum_image(xl[p[:, 1]] - xl[p[:, 0]], self.box)
        rn = np.maximum(np.linalg.norm(r, axis=1), 1e-12)
        f, f1, _ = self.pot.density(rn)
        ph, ph1, _ = self.pot.pair(rn)
        self._rloc.setArray(np.bincount(p[:, 0], f, n) + np.bincount(p[:, 1], f, n))
        self.Rho.set(0.0)
        self._rscatter.scatter(self._rloc, self.Rho, addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        self._rscatter.scatter(self.Rho, self._rloc, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        rho = self._rloc.getArray(readonly=True)
        Fe, F1, _ = self.pot.embed(rho)
        owned = (self.need >= self.lo) & (self.need < self.hi)
        E = float(Fe[owned].sum() + ph.sum())
        dEdr = ph1 + (F1[p[:, 0]] + F1[p[:, 1]]) * f1
        g = (dEdr / rn)[:, None] * r
        grad = np.zeros((n, self.d))
        for k in range(self.d):
            grad[:, k] = np.bincount(p[:, 1], g[:, k], n) - np.bincount(p[:, 0], g[:, k], n)
        return E, -grad

    def gather(self, X=None) -> np.ndarray:
        """All positions (N, d) on every rank."""
        a = (self.X if X is None else X).getArray(readonly=True).reshape(-1, self.d)
        return np.concatenate(self.comm.allgather(a.copy()))

    def _objective_gradient(self, tao, X, G) -> float:
        from petsc4py import PETSc

        self.evaluations += 1
        self._scatter.scatter(X, self._xloc, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        xl = self._xloc.getArray(readonly=True).reshape(-1, self.d)
        moved = np.abs(minimum_image(xl - self.x_build, self.box)).max(initial=0.0)
        if self.comm.allreduce(moved, op=_max()) > 0.5 * self.skin:
            self._build(self.gather(X))
            self._scatter.scatter(X, self._xloc, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            xl = self._xloc.getArray(readonly=True).reshape(-1, self.d)
        if self.eam:
            E, F = self._eam_local(xl)
        else:
            E, F = pair_energy(self.pot, xl, self.loc_pairs, self.box)
            if self.pot.three_body:
                E3, F3 = triplet_energy(self.pot, xl, self.loc_triplets, self.box)
                E += E3
                F += F3
        F[self.fixed[self.need]] = 0.0
        G.set(0.0)
        gl = self._xloc.duplicate()
        gl.setArray((-F).ravel())
        self._scatter.scatter(gl, G, addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        gl.destroy()
        if self.external is not None:
            Ex, gx = self.external(X.getArray(readonly=True).reshape(-1, self.d))
            gx = np.where(self.fixed[self.lo:self.hi, None], 0.0, gx)
            G.array = G.array + gx.ravel()
            E += Ex
        return self.comm.allreduce(E)

    def energy(self, x: np.ndarray) -> float:
        """Total energy of positions ``x`` (N, d) (collective)."""
        X = self.X.duplicate()
        X.setArray(np.asarray(x, float)[self.lo:self.hi].ravel())
        G = self.X.duplicate()
        E = self._objective_gradient(None, X, G)
        X.destroy()
        G.destroy()
        return E

    def run(self, gatol: float = 1e-8, max_it: int = 20000, options: dict | None = None,
            coarse: float = 1e-4) -> dict:
        """Relax to |∇E| ≤ ``gatol``; returns positions (N, d) on every rank, energy, iterations.

        Two stages, both under the options prefix (default ``relax_``): TAO (LMVM with an energy
        line search) brings the atoms into the basin (|∇E| ≤ ``coarse``), robust from a far start
        such as a Volterra field; then SNES quasi-Newton on ∇E = 0 with the critical-point line
        search polishes the gradient.  The second stage exists because an energy line search
        stalls near |∇E| ~ √(ε_mach |E| k), about 1e-6 for a few thousand LJ atoms.
        """
        from petsc4py import PETSc

        from ..parallel import petsc_options

        # Armijo: More–Thuente gives up when the first trial step (scaled by |∇E|) overlaps atoms
        defaults = {"tao_type": "lmvm", "tao_ls_type": "armijo", "snes_type": "qn", "snes_linesearch_type": "cp",
                    "snes_qn_m": 10}
        with petsc_options(self.prefix, {**defaults, **(options or {})}):
            its, E, gnorm = _tao_stage(self.comm, self.prefix, self._objective_gradient, self.X, self.G,
                                       max(gatol, coarse), max_it)
            snes_its = 0
            if gnorm > gatol:
                snes = PETSc.SNES().create(comm=self.comm)
                snes.setOptionsPrefix(self.prefix)
                R = self.G.duplicate()
                snes.setFunction(lambda snes, X, G: self._objective_gradient(None, X, G), R)
                snes.setTolerances(atol=gatol, rtol=0.0, stol=0.0, max_it=max_it)
                snes.setFromOptions()
                snes.solve(None, self.X)
                sreason = snes.getConvergedReason()
                snes_its = snes.getIterationNumber()
                snes.destroy()
                R.destroy()
                E = self._objective_gradient(None, self.X, self.G)
                gnorm = self.G.norm()
                if sreason < 0 and not gnorm <= gatol:
                    raise ConvergenceError(f"SNES polish did not converge (reason {sreason}, {snes_its} "
                                           f"iterations, |g| = {gnorm:.3g})")
        return {"x": self.gather(), "energy": float(E), "iterations": int(its) + int(snes_its),
                "tao_iterations": int(its), "snes_iterations": int(snes_its), "gnorm": float(gnorm),
                "rebuilds": self.rebuilds, "evaluations": self.evaluations}

    def destroy(self) -> None:
        for o in (self.X, self.G, self._scatter, self._xloc, self._is):
            o.destroy()
        if self.eam:
            for o in (self.Rho, self._rscatter, self._rloc, self._ris):
                o.destroy()


def _max():
    from mpi4py import MPI

    return MPI.MAX


def minimize(comm, fun, x0: np.ndarray, free: np.ndarray, gatol: float = 1e-9, options: dict | None = None,
             prefix: str = "qc_", coarse: float = 1e-4, max_it: int = 20000) -> dict:
    """Minimise ``fun(x) -> (E, ∇E)`` over the ``free`` entries of the flat vector ``x``.

    ``fun`` is called collectively with the full vector on every rank (replicated data, the
    caller splits the work over ``comm``).  Same two stages as :class:`ParallelRelaxation`:
    TAO (LMVM) to |∇E| ≤ ``coarse``, then SNES quasi-Newton (critical-point line search) to
    ``gatol``.  Returns the minimiser (full vector on every rank), energy and iteration counts.
    """
    from petsc4py import PETSc

    from ..parallel import petsc_options

    x0 = np.asarray(x0, dtype=float).ravel()
    free = np.asarray(free, bool).ravel()
    n = len(x0)
    lo, hi = block_range(n, comm.size, comm.rank)
    X = PETSc.Vec().createMPI((hi - lo, n), comm=comm)
    X.setArray(x0[lo:hi])
    G = X.duplicate()
    count = [0]

    def full(Xv):
        return np.concatenate(comm.allgather(Xv.getArray(readonly=True).copy()))

    def objgrad(tao, Xv, Gv):
        count[0] += 1
        x = full(Xv)
        x[~free] = x0[~free]
        E, g = fun(x)
        g = np.where(free, g, 0.0)
        Gv.setArray(g[lo:hi])
        return E

    defaults = {"tao_type": "lmvm", "snes_type": "qn", "snes_linesearch_type": "cp", "snes_qn_m": 10}
    with petsc_options(prefix, {**defaults, **(options or {})}):
        its, E, gnorm = _tao_stage(comm, prefix, objgrad, X, G, max(gatol, coarse), max_it)
        snes_its = 0
        if gnorm > gatol:
            snes = PETSc.SNES().create(comm=comm)
            snes.setOptionsPrefix(prefix)
            R = G.duplicate()
            snes.setFunction(lambda s, Xv, Gv: objgrad(None, Xv, Gv), R)
            snes.setTolerances(atol=gatol, rtol=0.0, stol=0.0, max_it=max_it)
            snes.setFromOptions()
            snes.solve(None, X)
            sreason = snes.getConvergedReason()
            snes_its = snes.getIterationNumber()
            snes.destroy()
            R.destroy()
            E = objgrad(None, X, G)
            gnorm = G.norm()
            if sreason < 0 and not gnorm <= gatol:
                raise ConvergenceError(f"SNES polish did not converge (reason {sreason}, |g| = {gnorm:.3g})")
    x = full(X)
    x[~free] = x0[~free]
    X.destroy()
    G.destroy()
    return {"x": x, "energy": float(E), "tao_iterations": int(its), "snes_iterations": int(snes_its),
            "gnorm": float(gnorm), "evaluations": count[0]}


def _tao_stage(comm, prefix: str, objgrad, X, G, gatol: float, max_it: int):
    """First relaxation stage: TAO (options under ``prefix``) to |∇E| ≤ ``gatol``.

    Returns (iterations, energy, |∇E|).  A line-search stall (reason -6) within 1e3·gatol is
    accepted: it happens near the round-off floor of the energy and the SNES polish follows.
    """
    from petsc4py import PETSc

    tao = PETSc.TAO().create(comm=comm)
    tao.setOptionsPrefix(prefix)
    tao.setObjectiveGradient(objgrad, G)
    tao.setSolution(X)
    tao.setTolerances(gatol=gatol, grtol=0.0, gttol=0.0)
    tao.setMaximumIterations(max_it)
    tao.setFromOptions()
    tao.solve()
    reason = tao.getConvergedReason()
    its, E, gnorm, _, _, _ = tao.getSolutionStatus()
    tao.destroy()
    if reason < 0 and not (reason == -6 and gnorm < 1e3 * gatol):
        raise ConvergenceError(f"TAO relaxation did not converge (reason {reason}, {its} iterations, "
                               f"|g| = {gnorm:.3g})")
    return its, E, gnorm
