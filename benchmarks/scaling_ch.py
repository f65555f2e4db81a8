"""Cahn–Hilliard scaling kernel: fixed-Δt implicit steps of PFHub benchmark 1 (spinodal
decomposition, periodic, nx² cells on the 200×200 box) with hpcmsm's PhaseFieldSolver.

    mpirun -n N python benchmarks/scaling_ch.py --nx 256 --steps 5 --json out.json

Used by the scaling harness (benchmarks/scaling.py phasefield-lib) while measuring the solver
library directly; the `phasefield` command is measured the same way when it exists.  Checks
mass conservation (the scheme conserves mass to round-off) and exits 1 if it drifts.
"""
import argparse
import json
import sys

from mpi4py import MPI


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nx", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--json", default=None)
    a, petsc_args = ap.parse_known_args()
    from hpcmsm.parallel import init_petsc

    init_petsc(petsc_args)
    from hpcmsm.phasefield import pfhub
    from hpcmsm.phasefield.energies import DoubleWell
    from hpcmsm.phasefield.solver import PhaseFieldSolver
    from hpcmsm.timing import Timers

    comm = MPI.COMM_WORLD
    timers = Timers(comm)
    with timers("setup"):
        s = PhaseFieldSolver(comm, "ch", (a.nx, a.nx), (pfhub.LENGTH, pfhub.LENGTH), True, DoubleWell(),
                             pfhub.KAPPA, pfhub.MOBILITY)
        x, y = s.grid.coordinates_xyz()   # owned cell centres, natural (y, x) layout
        s.set_state(pfhub.initial_condition(x, y, periodic_ic=True))
    m0 = s.mass()
    newton = linear = 0
    t = 0.0
    for k in range(a.steps):
        t += a.dt
        with timers("step"):
            r = s.step(a.dt, t)
        if not r.converged:
            print(f"step {k + 1} did not converge (reason {r.reason})", file=sys.stderr)
            return 1
        newton += r.newton_its
        linear += r.linear_its
    drift = abs(s.mass() - m0) / abs(m0)
    out = {"nx": a.nx, "steps": a.steps, "dt": a.dt, "ranks": comm.size, "cells": a.nx * a.nx,
           "newton_its": newton, "linear_its": linear, "mass_drift": drift,
           "free_energy": s.free_energy(), "timers": timers.summary()}
    if comm.rank == 0:
        print(json.dumps({k: v for k, v in out.items() if k != "timers"}))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(out, fh, indent=1)
    s.destroy()
    return 0 if drift < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
