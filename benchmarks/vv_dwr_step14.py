"""DWR on deal.II step-14 (point value u(0.75, 0.75)): adaptive vs uniform refinement, wall time,
DOFs, J(u_h), η and the corrected value J(u_h) + η against the published 0.0334473.

    ./run python benchmarks/vv_dwr_step14.py --tol 1e-7            # serial
    mpirun -n 2 .venv/bin/python benchmarks/vv_dwr_step14.py       # distributed solves
Prints one JSON object.
"""
import argparse
import json
import time

from mpi4py import MPI

from hpcmsm.vv import dwr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tol", type=float, default=1e-7)
    ap.add_argument("--theta", type=float, default=0.6)
    ap.add_argument("--uniform-max-dofs", type=int, default=60000)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    out = {"ranks": comm.size, "reference": dwr.STEP14_REFERENCE}
    for mode in ("adaptive", "uniform"):
        comm.Barrier()
        t0 = time.perf_counter()
        if mode == "adaptive":
            r = dwr.adapt(comm, dwr.step14_problem(), tol=a.tol, theta=a.theta, max_steps=80, max_dofs=400000)
        else:
            r = dwr.adapt(comm, dwr.step14_problem(), tol=0.0, uniform=True, max_dofs=a.uniform_max_dofs)
        t = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        last = r.steps[-1]
        out[mode] = {"seconds": t, "steps": len(r.steps), "final_dofs": last.ndofs, "J_h": last.qoi,
                     "eta": last.estimate, "J_h_plus_eta": last.qoi + last.estimate, "error": last.error,
                     "effectivity": last.effectivity,
                     "dofs_to_1e-5": dwr.dofs_to_reach(r, 1e-5), "dofs_to_1e-4": dwr.dofs_to_reach(r, 1e-4)}
    if comm.rank == 0:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
