"""One 3D J2-composite RVE: gathered direct (VoxelRVE) vs distributed (DistributedRVE) on a group.

    ./run python benchmarks/fe2_rve_dist.py --solver direct      --n 24
    ./run -n 2 python benchmarks/fe2_rve_dist.py --solver direct      --n 24
    ./run python benchmarks/fe2_rve_dist.py --solver distributed --n 24
    ./run -n 2 python benchmarks/fe2_rve_dist.py --solver distributed --n 24

One configuration per process, so ru_maxrss is that configuration's peak.  The group is the
whole communicator.  The load path is three plastic steps (no elastic reuse: every step is a
Newton solve with the condensed tangent), the same for both solvers; the JSON has the wall time
per solve (max over ranks), set-up time, Newton and Krylov iterations, the peak RSS (max over
ranks and summed) above the RSS before the model was built, and the final homogenized stress
(the two solvers must agree to ~1e-9).
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from mpi4py import MPI


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--solver", choices=("direct", "distributed"), default="distributed")
    ap.add_argument("--n", type=int, default=24, help="voxels per edge")
    ap.add_argument("--H", type=float, default=50.0, help="matrix hardening modulus (MPa)")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    from petsc4py import PETSc  # noqa: F401  (initialize before the baseline RSS)

    from hpcmsm.fe2.rve import VoxelRVE
    from hpcmsm.fe2.rve_dist import DistributedRVE
    from hpcmsm.homogenization import microstructure as ms
    from hpcmsm.materials.base import LinearElastic
    from hpcmsm.materials.j2 import J2Plasticity

    lab = ms.inclusion_array((a.n,) * 3, 0.25).labels
    mats = [J2Plasticity(3, 70e3, 0.33, 100.0, a.H), LinearElastic.isotropic(3, 400e3, 0.2)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    comm.Barrier()
    t0 = time.perf_counter()
    model = (VoxelRVE if a.solver == "direct" else DistributedRVE)(lab, mats, comm)
    comm.Barrier()
    t_setup = time.perf_counter() - t0
    direction = np.array([1.0, -0.3, -0.3, 0.0, 0.0, 0.4])
    state = model.initial_state()
    times, newton = [], 0
    k0 = getattr(model, "ksp_iterations", 0)
    for lam in (1.5, 3.0, 5.0):
        comm.Barrier()
        t = time.perf_counter()
        S, C, state, info = model.solve(lam * 1e-3 * direction, state)
        comm.Barrier()
        times.append(time.perf_counter() - t)
        assert info["converged"], info
        newton += info["iterations"]
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024.0       # MiB (Linux: KiB)
    peaks = comm.gather(peak)
    if comm.rank == 0:
        out = {"benchmark": "fe2_rve_dist", "solver": a.solver, "ranks": comm.size, "voxels": a.n,
               "dofs": int(3 * a.n ** 3), "H": a.H, "setup_s": round(t_setup, 3),
               "time_per_solve_s": round(float(np.mean(times)), 3), "solve_times_s": [round(x, 3) for x in times],
               "newton_iterations": newton,
               "krylov_iterations": int(getattr(model, "ksp_iterations", k0) - k0),
               "peak_rss_above_baseline_MiB_max_rank": round(max(peaks), 1),
               "peak_rss_above_baseline_MiB_sum": round(sum(peaks), 1),
               "final_stress_MPa": [round(float(s), 9) for s in S],
               "note": "shared, loaded 2-core machine: wall times are noisy"}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
