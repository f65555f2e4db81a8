"""A 2D explicit heat-equation stencil on a PETSc DMDA: the reference kernel for scaling studies.

``u_t = Δu`` on the unit square with ``u = 0`` on the boundary, nx × ny interior points, explicit
Euler with ``dt = cfl / (2/hx² + 2/hy²)``.  Started from the discrete eigenmode
``sin(πx) sin(πy)`` it stays that mode, multiplied by ``g = 1 − 4 rx sin²(π hx/2) − 4 ry sin²(π hy/2)``
per step (``rx = dt/hx²``), so every rank count must reproduce ``g^k u0`` to round-off: the
verification oracle of the kernel.  Each step is a halo exchange (DMDA global→local, the
communication a CH/FE solver does per residual) and a 5-point update (memory bound: 16 bytes per
point moved at best); every ``norm_every`` steps a global norm (one allreduce).  Phases go to
:class:`hpcmsm.timing.Timers` (PETSc log stages ``halo``, ``compute``, ``norm``, ``checkpoint``).
"""
from __future__ import annotations

import math

import numpy as np


def heat_update(ul: np.ndarray, rx: float, ry: float, out: np.ndarray) -> None:
    """One explicit Euler step of the 5-point Laplacian on a ghosted C-ordered ``[j, i]`` array.

    ``ul`` has one ghost layer on every side; ``out`` (owned points) receives the new values.
    """
    c = ul[1:-1, 1:-1]
    np.add(ul[1:-1, 2:], ul[1:-1, :-2], out=out)
    out -= 2.0 * c
    out *= rx
    out += c
    out += ry * (ul[2:, 1:-1] + ul[:-2, 1:-1] - 2.0 * c)


def decay_factor(nx: int, ny: int, cfl: float) -> tuple[float, float, float]:
    """``(rx, ry, g)``: mesh ratios ``dt/h²`` and the mode's growth factor per step."""
    hx, hy = 1.0 / (nx + 1), 1.0 / (ny + 1)
    dt = cfl / (2.0 / hx**2 + 2.0 / hy**2)
    rx, ry = dt / hx**2, dt / hy**2
    g = 1.0 - 4.0 * rx * math.sin(math.pi * hx / 2) ** 2 - 4.0 * ry * math.sin(math.pi * hy / 2) ** 2
    return rx, ry, g


def mode(nx: int, ny: int, xs: int, xe: int, ys: int, ye: int) -> np.ndarray:
    """``sin(πx) sin(πy)`` on the owned box, C-ordered ``[j, i]``."""
    x = np.arange(xs + 1, xe + 1) / (nx + 1)
    y = np.arange(ys + 1, ye + 1) / (ny + 1)
    return np.outer(np.sin(np.pi * y), np.sin(np.pi * x))


def run_stencil(comm, nx: int, ny: int, steps: int, *, cfl: float = 0.4, norm_every: int = 10,
                checkpoint: str | None = None, ckpt_every: int = 0, restart: bool = False,
                timers=None, announce: bool = False) -> dict:
    """Run the kernel; returns a summary dict (rank-independent numbers + timings).

    Polls :func:`hpcmsm.signals.should_stop` every step; on a stop it checkpoints (if a path is
    given) and returns with ``summary["stopped"] = step``.
    """
    from petsc4py import PETSc

    from .. import signals
    from ..io import Checkpoint
    from ..timing import Timers

    timers = timers or Timers(comm)
    pcomm = PETSc.Comm(comm)
    da = PETSc.DMDA().create([nx, ny], dof=1, stencil_width=1, stencil_type=PETSc.DMDA.StencilType.STAR,
                             boundary_type=(PETSc.DM.BoundaryType.GHOSTED,) * 2, comm=pcomm)
    (xs, xe), (ys, ye) = da.getRanges()
    (gxs, gys), (gxm, gym) = da.getGhostCorners()
    g = da.createGlobalVec()
    loc = da.createLocalVec()
    loc.set(0.0)  # ghosts outside the domain stay 0: the Dirichlet condition
    u = g.getArray().reshape(ye - ys, xe - xs)
    ul = loc.getArray().reshape(gym, gxm)
    rx, ry, gfac = decay_factor(nx, ny, cfl)
    u0 = mode(nx, ny, xs, xe, ys, ye)
    ck = Checkpoint(checkpoint, comm) if checkpoint else None
    step0 = 0
    if restart:
        if ck is None:
            from ..errors import InputError

            raise InputError("--restart needs a checkpoint path")
        with ck.load() as d:
            step0 = d.step
            u[...] = d.read("u", box=(slice(ys, ye), slice(xs, xe)))
            g.stateIncrease()
    else:
        u[...] = u0
        g.stateIncrease()
    signals.install()
    if announce and comm.rank == 0:  # after install(): from here on USR1/TERM mean "stop cleanly"
        print(f"stencil: running steps {step0 + 1}..{steps} on {comm.size} rank(s)", flush=True)
    stopped = None
    norms = []
    step = step0
    for step in range(step0 + 1, steps + 1):
        with timers("halo"):
            da.globalToLocal(g, loc)
        with timers("compute"):
            heat_update(ul, rx, ry, u)
            g.stateIncrease()  # we wrote through a numpy view: PETSc's cached norm is stale
        if norm_every and step % norm_every == 0:
            with timers("norm"):
                norms.append((step, g.norm()))
        if ck is not None and ckpt_every and step % ckpt_every == 0:
            with timers("checkpoint"):
                ck.save(step, {"u": (u, (ys, xs), (ny, nx))})
        if signals.should_stop(comm):
            if ck is not None:
                with timers("checkpoint"):
                    ck.save(step, {"u": (u, (ys, xs), (ny, nx))})
            stopped = step
            break
    last = stopped or steps
    # oracle: the discrete eigenmode times g^k, on this rank's box; max error over ranks
    err_local = float(np.max(np.abs(u - gfac ** last * u0))) if u.size else 0.0
    from mpi4py import MPI

    err = comm.allreduce(err_local, op=MPI.MAX)
    t = timers.summary()
    npts = nx * ny
    nsteps = max(last - step0, 1)
    tc = t.get("compute", {}).get("max", 0.0)
    out = {
        "kernel": "dmda-heat-5pt", "nx": nx, "ny": ny, "steps": last, "steps_run": last - step0,
        "ranks": comm.size, "cfl": cfl, "growth_factor": gfac, "max_error_vs_mode": err,
        "norms": norms, "stopped": stopped, "timers": t,
        # the update streams u (read, with neighbour reuse in cache) and writes it: ≥ 16 B/point
        "compute_bytes_per_step": 16 * npts,
        "compute_bandwidth_GBs": (16 * npts * nsteps / tc / 1e9) if tc > 0 else None,
        "points_per_rank": npts / comm.size,
        "halo_bytes_per_rank_step": 8 * 2 * ((xe - xs) + (ye - ys)),
    }
    for v in (g, loc):
        v.destroy()
    da.destroy()
    return out
