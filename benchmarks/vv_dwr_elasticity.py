"""DWR for plane elasticity, QoI = mean σ_xy over [0, ¼]² next to a corner singularity (closed-form
answer, hpcmsm.vv.dwr_elasticity.corner_problem): adaptive vs uniform refinement (vertices,
error, effectivity, wall time) and, on one fixed mesh, where the time of one estimate goes
(replicated mesh work vs cell-partitioned assembly/solves/indicators).

    ./run python benchmarks/vv_dwr_elasticity.py                 # 1 rank
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun -n 2 .venv/bin/python benchmarks/vv_dwr_elasticity.py  # 2 ranks
Prints one JSON object (rank 0).  No peer code: deal.II/DUNE/FEniCS DWR are not installed here.
"""
import argparse
import json
import time

from mpi4py import MPI

from hpcmsm.timing import Timers
from hpcmsm.vv import dwr_elasticity as de
from hpcmsm.vv import tri


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tol", type=float, default=2e-5)
    ap.add_argument("--uniform-max-vertices", type=int, default=70000)
    ap.add_argument("--phase-refinements", type=int, default=6, help="uniform refinements of the 4x4 mesh")
    ap.add_argument("--phases-only", action="store_true", help="only the per-phase timing of one estimate")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    out = {"ranks": comm.size, "exact": de.corner_problem().exact_qoi}
    for mode in (() if a.phases_only else ("adaptive", "uniform")):
        comm.Barrier()
        t0 = time.perf_counter()
        if mode == "adaptive":
            r = de.adapt(comm, de.corner_problem(), tol=a.tol, theta=0.5, max_steps=200, max_dofs=10**6)
        else:
            r = de.adapt(comm, de.corner_problem(), tol=0.0, uniform=True, max_dofs=a.uniform_max_vertices)
        t = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        last = r.steps[-1]
        out[mode] = {"seconds": t, "steps": len(r.steps), "final_vertices": last.ndofs, "J_h": last.qoi,
                     "eta": last.estimate, "error": last.error, "effectivity": last.effectivity,
                     "effectivity_range_ge_50_vertices": [min(s.effectivity for s in r.steps if s.ndofs >= 50),
                                                          max(s.effectivity for s in r.steps if s.ndofs >= 50)]}
        out[mode + "_steps"] = [(s.ndofs, s.error, s.estimate) for s in r.steps]
    if not a.phases_only:
        target = abs(out["uniform"]["error"]) * 1.0001
        out["vertices_to_reach_uniform_final_error"] = {
            "adaptive": dofs_to_reach_steps(out["adaptive_steps"], target), "uniform": out["uniform"]["final_vertices"]}
    # phases of one estimate on a fixed uniform mesh
    prob = de.corner_problem()
    mesh = tri.uniform_refine(prob.mesh, a.phase_refinements)
    timers = Timers(comm)
    comm.Barrier()
    t0 = time.perf_counter()
    de.estimate(comm, prob, mesh, timers=timers)
    t_est = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    with timers("dwr: mark + refine (replicated)"):
        import numpy as np

        from hpcmsm.vv.dwr import dorfler_mark
        eta = np.random.default_rng(0).random(mesh.ncells)
        tri.refine(mesh, dorfler_mark(eta, 0.5))
    out["phases"] = {"vertices": mesh.npoints, "cells": mesh.ncells, "p1_unknowns": 2 * mesh.npoints,
                     "estimate_seconds": t_est, "timers": timers.summary()}
    if comm.rank == 0:
        out.pop("adaptive_steps", None)
        out.pop("uniform_steps", None)
        print(json.dumps(out, indent=1))


def dofs_to_reach_steps(steps, err):
    for n, e, _ in steps:
        if abs(e) < err:
            return n
    return None


if __name__ == "__main__":
    main()
