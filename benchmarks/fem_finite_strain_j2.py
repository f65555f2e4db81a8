"""Benchmark: finite-strain J2 plasticity in Hencky strain (hpcmsm.materials.logstrain).

    ./run python benchmarks/fem_finite_strain_j2.py [--points 20000] [--cells 12 6 6] [--steps 10]
    ./run -n 2 python benchmarks/fem_finite_strain_j2.py --no-points

1. Material-point rate (serial, pure numpy, best of 5): µs per point of ``update`` (P, A, state)
   for LogStrainJ2, the small-strain J2Plasticity (σ, 𝔻, state) and NeoHookean (P, A), 2D and 3D,
   at random F = I + 0.05·N(0,1) (most points yield).
2. Macro solve (MPI, under whatever launcher runs the script): the bar of
   examples/solve_bar_j2_log.toml (uniaxial stress to 1.5 stretch, Q1 hexahedra) with j2_log
   against the same mesh, steps and solver with neo_hookean (E, ν equal): wall time, SNES
   iterations, time per Newton iteration and their ratio (what history costs inside the same
   total-Lagrangian solver), plus the reaction against the exact τ(ln λ)/λ.

No peer code with a finite-strain Hencky J2 law is installed on this machine (MOOSE, DAMASK and
Abaqus are not available; DOLFINx has no built-in plasticity), so the comparison is internal.
Prints one JSON document (rank 0).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

E, NU, SY, HI, HK, STRETCH = 200e3, 0.3, 250.0, 2000.0, 500.0, 1.5


def point_rates(n: int) -> dict:
    from hpcmsm.materials.hyperelastic import NeoHookean
    from hpcmsm.materials.j2 import J2Plasticity
    from hpcmsm.materials.logstrain import LogStrainJ2

    rng = np.random.default_rng(0)
    out = {}
    for dim in (2, 3):
        F = np.eye(dim) + 0.05 * rng.normal(size=(n, dim, dim))
        m = 3 if dim == 2 else 6
        eps = 0.05 * rng.normal(size=(n, m))
        mats = {"j2_log": (LogStrainJ2(dim, 200.0, NU, 1.0, 20.0, 10.0), F),
                "j2_small": (J2Plasticity(dim, 200.0, NU, 1.0, 20.0, 10.0), eps),
                "neo_hookean": (NeoHookean(dim, 200.0, NU), F)}
        rec = {}
        for name, (mat, x) in mats.items():
            st = mat.initial_state(n)
            mat.update(x, st)
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                mat.update(x, st)
                ts.append(time.perf_counter() - t)
            rec[f"{name}_us_per_point"] = round(1e6 * min(ts) / n, 3)
        rec["j2_log_over_neo_hookean"] = round(rec["j2_log_us_per_point"] / rec["neo_hookean_us_per_point"], 2)
        rec["j2_log_over_j2_small"] = round(rec["j2_log_us_per_point"] / rec["j2_small_us_per_point"], 2)
        out[f"{dim}d"] = rec
    return out


def macro(comm, cells, steps) -> dict:
    from mpi4py import MPI

    from hpcmsm.fem import Dirichlet, HyperelasticProblem, create_box
    from hpcmsm.materials.hyperelastic import NeoHookean
    from hpcmsm.materials.j2 import uniaxial_closed_form
    from hpcmsm.materials.logstrain import LogStrainJ2

    mesh = create_box(comm, tuple(cells), cell="hexahedron")
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1]), Dirichlet("zmin", 0.0, [2]),
           Dirichlet("xmax", STRETCH - 1.0, [0])]
    out = {"cells": list(cells), "dofs": 3 * mesh.n_global, "ranks": comm.size, "steps": steps}
    for name, mat in (("j2_log", LogStrainJ2(3, E, NU, SY, HI, HK)), ("neo_hookean", NeoHookean(3, E, NU))):
        comm.Barrier()
        t0 = time.perf_counter()
        prob = HyperelasticProblem(mesh, mat, bcs)
        prob.solve(steps)
        comm.Barrier()
        wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        its = sum(r["newton_iterations"] for r in prob.history)
        rec = {"wall_s": round(wall, 3), "snes_iterations": its, "s_per_newton_iteration": round(wall / its, 4),
               "cutbacks": sum(r["cutbacks"] for r in prob.history)}
        P11 = float(prob.reaction("xmax")[0])
        if name == "j2_log":
            ref = float(uniaxial_closed_form(np.log(STRETCH), E, SY, HI, HK)) / STRETCH
            rec["P11_rel_error"] = abs(P11 - ref) / ref
            rec["audit_passed"] = prob.energy_audit().passed
        out[name] = rec
        prob.destroy()
    out["time_per_iteration_ratio_j2_log_over_neo_hookean"] = round(
        out["j2_log"]["s_per_newton_iteration"] / out["neo_hookean"]["s_per_newton_iteration"], 2)
    return out


def main() -> None:
    from mpi4py import MPI

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--no-points", action="store_true", help="skip the material-point rates")
    ap.add_argument("--cells", type=int, nargs=3, default=[12, 6, 6])
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    res = {"benchmark": "fem_finite_strain_j2"}
    if not a.no_points and comm.rank == 0:
        res["material_points"] = point_rates(a.points)
    res["macro"] = macro(comm, a.cells, a.steps)
    if comm.rank == 0:
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
