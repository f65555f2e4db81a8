"""FE² vs direct numerical simulation (DNS) of the fully resolved periodic microstructure.

A unit square with a smooth non-affine displacement prescribed on its whole boundary,
u_x = δ·x·(1 + ½ sin πy), u_y = −0.3·δ·x·y (no corner singularities, so the macro
discretization error stays small), made of N×N periodic cells
(ε = ℓ/L = 1/N), each an n×n-voxel cell with a circular stiff elastic particle in a J2 matrix.
The DNS meshes every voxel ((N·n)² Q1 elements); FE² uses a fixed macro mesh with one RVE (the
same n×n cell) per quadrature point.  The relative difference of the external work (the energy; boundary reactions are not a good
QoI here because they sit in the DNS's micro boundary layer) should shrink as ε → 0.  Prints JSON.

    ./run -n 1 python benchmarks/fe2_dns_trend.py [--plastic] [--N 1 2 4 8] [--macro 8]
"""
import argparse
import json
import time

import numpy as np
from mpi4py import MPI

from hpcmsm.parallel import init_petsc

init_petsc([])
from hpcmsm.materials.j2 import J2Plasticity  # noqa: E402
from hpcmsm.fe2.macro import Dirichlet, MacroProblem, NewtonDriver, box_mesh  # noqa: E402
from hpcmsm.fe2.pool import HomogenizedMaterial, RVEPool  # noqa: E402
from hpcmsm.fe2.rve import VoxelRVE  # noqa: E402
from hpcmsm.homogenization.microstructure import inclusion_array  # noqa: E402
from hpcmsm.materials.base import LinearElastic  # noqa: E402


def bcs_for(mesh, delta):
    b = np.unique(np.concatenate([mesh.sets[k] for k in ("xmin", "xmax", "ymin", "ymax")]))
    x, y = mesh.points[b, 0], mesh.points[b, 1]
    return [Dirichlet(b, 0, delta * x * (1 + 0.5 * np.sin(np.pi * y))), Dirichlet(b, 1, -0.3 * delta * x * y)]


def solve(comm, mesh, blocks, delta, steps):
    p = MacroProblem(comm, mesh, blocks, bcs_for(mesh, delta))
    drv = NewtonDriver(p, rtol=1e-9)
    W, out = 0.0, []
    d = p.dim
    for k in range(1, steps + 1):
        r = drv.step(k / steps)
        assert r.converged, r.message
        # external work Σ f_int·Δu over the Dirichlet DOFs (the energy, a Γ-convergent quantity)
        W += comm.allreduce(float(drv.f_int[p.bc_own - p.n0 * d] @ p.bc_own_vals) / steps)
        out.append(W)
    p.destroy()
    return np.array(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--n", type=int, default=8, help="voxels per cell edge")
    ap.add_argument("--macro", type=int, default=8, help="FE² macro elements per edge")
    ap.add_argument("--plastic", action="store_true", help="J2 matrix (else elastic matrix)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--delta", type=float, default=0.004)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    lab = inclusion_array((a.n, a.n), 0.25).labels
    matrix = J2Plasticity(2, 70e3, 0.33, 100.0, 500.0) if a.plastic else LinearElastic.isotropic(2, 70e3, 0.33)
    mats = [matrix, LinearElastic.isotropic(2, 400e3, 0.2)]
    # FE² reference (independent of N): macro mesh a.macro², one RVE per QP
    t0 = time.perf_counter()
    mesh = box_mesh([1.0, 1.0], [a.macro, a.macro])
    p0 = MacroProblem(comm, mesh, [], bcs_for(mesh, a.delta))
    pool = RVEPool(comm, lambda sub: VoxelRVE(lab, mats, sub), p0.nqp_global, p0.qp_owner)
    hm = HomogenizedMaterial(pool, p0.qp_ids, 2)
    p0.destroy()
    F_fe2 = solve(comm, mesh, [(hm, np.arange(len(mesh.cells)))], a.delta, a.steps)
    t_fe2 = time.perf_counter() - t0
    pool.free()
    rows = []
    for N in a.N:
        t0 = time.perf_counter()
        nn = N * a.n
        dmesh = box_mesh([1.0, 1.0], [nn, nn])
        # element e = ix + nn*iy ; its phase from the periodic cell
        e = np.arange(nn * nn)
        ix, iy = e % nn, e // nn
        phase = lab[ix % a.n, iy % a.n]
        blocks = [(mats[k], np.flatnonzero(phase == k)) for k in range(2)]
        F = solve(comm, dmesh, blocks, a.delta, a.steps)
        err = float(abs(F[-1] - F_fe2[-1]) / abs(F[-1]))
        rows.append({"N": N, "epsilon": 1.0 / N, "dns_elements": nn * nn, "F_dns": F.tolist(),
                     "rel_diff_final": err, "time_s": time.perf_counter() - t0})
        if comm.rank == 0:
            print(f"# eps = 1/{N}: DNS {nn}x{nn} elements, |W_FE2 - W_DNS|/W_DNS = {err:.3e}", flush=True)
    eps = np.array([r["epsilon"] for r in rows])
    errs = np.array([r["rel_diff_final"] for r in rows])
    slope = float(np.polyfit(np.log(eps[-3:]), np.log(errs[-3:]), 1)[0]) if len(rows) >= 3 else float("nan")
    out = {"benchmark": "fe2_dns_trend", "plastic": a.plastic, "voxels": a.n, "macro": a.macro,
           "F_fe2": F_fe2.tolist(), "fe2_time_s": t_fe2, "rows": rows, "observed_order_in_eps": slope,
           "ranks": comm.size}
    if comm.rank == 0:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
