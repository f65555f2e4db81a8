"""Benchmark: 3D periodic elasticity cell problem on n³ voxels (issue 4).

Two isotropic phases with stiffness contrast 10 (random non-overlapping spheres), PBC, all 6 unit
load cases with one assembly and one GAMG set-up.  Prints one JSON object: times per phase and
per load case, KSP iterations, Hill–Mandel residuals, memory (max RSS per rank).

    ./run python -m mpi4py benchmarks/rve_3d.py --n 64        # under mpirun, e.g.
    mpirun -n 2 .venv/bin/python benchmarks/rve_3d.py --n 64
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="voxels per side")
    ap.add_argument("--contrast", type=float, default=10.0)
    ap.add_argument("--rtol", type=float, default=1e-8, help="KSP relative tolerance")
    ap.add_argument("--vf", type=float, default=0.25)
    args, petsc_args = ap.parse_known_args()
    from hpcmsm.parallel import init_petsc

    init_petsc(petsc_args)
    import numpy as np
    from mpi4py import MPI

    from hpcmsm.homogenization import microstructure as ms
    from hpcmsm.homogenization.rve import RVEProblem
    from hpcmsm.materials.base import LinearElastic, isotropic_stiffness

    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    micro = ms.random_inclusions((args.n,) * 3, args.vf, max(2.0, args.n / 10.7), seed=1, min_gap=0.5)
    phases = [LinearElastic(isotropic_stiffness(3, 1.0, 0.3)), LinearElastic(isotropic_stiffness(3, args.contrast, 0.3))]
    comm.Barrier()
    t1 = time.perf_counter()
    p = RVEProblem(micro, phases, "periodic", comm, options={"ksp_rtol": args.rtol})
    comm.Barrier()
    t2 = time.perf_counter()
    c2 = time.process_time()
    C, info = p.effective_tensor()
    c3 = time.process_time()
    comm.Barrier()
    t3 = time.perf_counter()
    cpu = comm.gather(c3 - c2, root=0)
    load = os.getloadavg()[0]
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, root=0)
    ndof = 3 * args.n ** 3
    p.destroy()
    if comm.rank == 0:
        out = {
            "benchmark": "rve_3d_periodic_elasticity", "n": args.n, "dofs": ndof, "ranks": comm.size,
            "contrast": args.contrast, "volume_fraction": float(micro.volume_fractions(2)[1]),
            "ksp": "cg+gamg", "rtol": args.rtol,
            "time_microstructure_s": t1 - t0, "time_setup_dmda_s": t2 - t1,
            "time_assembly_s": info.time_assembly, "time_pc_setup_s": info.time_setup,
            "time_solves_s": info.time_solve, "time_total_effective_tensor_s": t3 - t2,
            "time_per_load_case_s": info.time_solve / 6, "iterations": info.iterations,
            "cpu_time_effective_tensor_s_per_rank": cpu, "load_average_1min_at_end": load,
            "hill_mandel_max": max(info.hill_mandel), "max_rss_mb_per_rank": rss, "C_eff": C.tolist(),
            "symmetry_error": float(np.linalg.norm(C - C.T) / np.linalg.norm(C)),
        }
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
