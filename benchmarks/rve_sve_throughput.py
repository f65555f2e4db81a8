"""Benchmark: throughput of a 2D SVE ensemble (issue 4).

N random-inclusion SVEs of L² pixels (plane-strain elasticity, contrast 10, PBC, 3 load cases
each) farmed over groups of ``--group-size`` ranks; prints SVEs per second as JSON.

    mpirun -n 2 .venv/bin/python benchmarks/rve_sve_throughput.py --sizes 32 128 --count 40 8
"""
from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--count", type=int, nargs="+", default=[64, 8], help="SVEs per size")
    ap.add_argument("--group-size", type=int, default=1)
    args, petsc_args = ap.parse_known_args()
    from hpcmsm.parallel import init_petsc

    init_petsc(petsc_args)
    from mpi4py import MPI

    from hpcmsm.homogenization import microstructure as ms
    from hpcmsm.homogenization.ensemble import run_tasks
    from hpcmsm.homogenization.rve import RVEProblem
    from hpcmsm.materials.base import LinearElastic, isotropic_stiffness

    comm = MPI.COMM_WORLD
    phases = [LinearElastic(isotropic_stiffness(2, 1.0, 0.3)), LinearElastic(isotropic_stiffness(2, 10.0, 0.3))]
    results = []
    for L, N in zip(args.sizes, args.count):
        def solve(i, sub, L=L):
            micro = ms.random_inclusions((L, L), 0.3, max(1.6, L / 12), seed=3, index=i)
            pr = RVEProblem(micro, phases, "periodic", sub, options={"ksp_rtol": 1e-8})
            C, info = pr.effective_tensor()
            pr.destroy()
            return {"its": sum(info.iterations), "hm": max(info.hill_mandel)}

        comm.Barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_tasks(comm, args.group_size, list(range(N)), [1.0] * N, solve)
        cpu = comm.allreduce(time.process_time() - c0)
        comm.Barrier()
        dt = time.perf_counter() - t0
        results.append({"L": L, "sves": N, "time_s": dt, "sves_per_s": N / dt,
                        "cpu_s_total": cpu, "sves_per_cpu_s": N / cpu, "load_average_1min": os.getloadavg()[0],
                        "mean_ksp_iterations_per_sve": sum(r["its"] for r in res) / N,
                        "hill_mandel_max": max(r["hm"] for r in res)})
    if comm.rank == 0:
        print(json.dumps({"benchmark": "rve_sve_throughput_2d", "ranks": comm.size, "group_size": args.group_size,
                          "load_cases_per_sve": 3, "results": results}, indent=1))


if __name__ == "__main__":
    main()
