"""A/B of the nonlinear voxel-RVE solvers between a git revision and the working tree, in one process.

Loads ``hpcmsm/fe2/rve.py`` and ``hpcmsm/homogenization/rve.py`` of ``--rev`` (default: the
revision before the two cell Newtons were merged into ``homogenization.newton.cell_newton``) next
to the current modules and alternates them on the same work, so machine noise hits both alike:

* FE² VoxelRVE: an FE²-like sequence — 6 plastic load steps × 4 macro iterations with warm starts
  (J2 matrix + elastic particle, ``--voxels`` per side);
* RVEProblem (distributed KSP): 4 nonlinear load steps of a particle cell (symmetric quartic
  potential law), ``--cell`` voxels per side.

Prints JSON: best-of-``--repeat`` CPU seconds (process time), Newton iteration totals and the
largest relative stress/tangent difference between the two codes.

    ./run python benchmarks/rve_newton_ab.py
    ./run -n 2 python benchmarks/rve_newton_ab.py --cell 64
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def load_old(rev: str, path: str, name: str, tmp: str):
    src = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout
    f = os.path.join(tmp, os.path.basename(name) + ".py")
    with open(f, "w") as fh:
        fh.write(src)
    spec = importlib.util.spec_from_file_location(name, f)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Quartic:
    """σ = Cε(1 + β ε·Cε) (symmetric tangent), for the RVEProblem leg."""

    kind = "small"

    def __init__(self, C, beta):
        self.Cm, self.beta, self.dim = np.asarray(C), beta, 2

    def initial_state(self, nq):
        return {}

    def update(self, eps, state):
        s0 = eps @ self.Cm.T
        g = 1 + self.beta * np.einsum("qi,qi->q", eps, s0)
        return s0 * g[:, None], self.Cm[None] * g[:, None, None] + 2 * self.beta * np.einsum("qi,qj->qij", s0, s0), state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="a00bbd7^")
    ap.add_argument("--voxels", type=int, default=32)
    ap.add_argument("--cell", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from mpi4py import MPI

    from hpcmsm.parallel import init_petsc

    init_petsc()
    from hpcmsm.fe2 import rve as fe2_new
    from hpcmsm.homogenization import microstructure as ms
    from hpcmsm.homogenization import rve as hom_new
    from hpcmsm.materials.base import LinearElastic, isotropic_stiffness
    from hpcmsm.materials.j2 import J2Plasticity

    comm = MPI.COMM_WORLD
    with tempfile.TemporaryDirectory() as tmp:
        fe2_old = load_old(a.rev, "hpcmsm/fe2/rve.py", "hpcmsm.fe2.rve_ab_old", tmp)
        hom_old = load_old(a.rev, "hpcmsm/homogenization/rve.py", "hpcmsm.homogenization.rve_ab_old", tmp)
    out = {"benchmark": "rve_newton_ab", "rev": a.rev, "ranks": comm.size}

    # --- FE² VoxelRVE (serial per rank, as in a pool with groups of one rank)
    lab = ms.inclusion_array((a.voxels,) * 2, 0.2).labels
    mats = [J2Plasticity(2, 70e3, 0.33, 100.0, 500.0), LinearElastic.isotropic(2, 400e3, 0.2)]

    def fe2_seq(mod):
        r = mod.VoxelRVE(lab, mats)
        st, its, S, C = r.initial_state(), 0, [], None
        for step in range(1, 7):
            E, trial = step * np.array([1.0e-3, -0.4e-3, 0.5e-3]), st
            for s in (1 + 3e-2, 1 + 1e-3, 1 + 1e-6, 1.0):
                Sk, C, trial, info = r.solve(E * s, st, guess=trial)
                its += info["iterations"]
            S.append(Sk)
            st = trial
        r.destroy()
        return its, np.array(S), C

    # --- RVEProblem (distributed over all ranks)
    micro = ms.inclusion_array((a.cell,) * 2, 0.2)
    micro.voxel_size = 1.0 / a.cell
    hm = [LinearElastic(isotropic_stiffness(2, 1.0, 0.3)), Quartic(isotropic_stiffness(2, 5.0, 0.25), 400.0)]

    def hom_seq(mod):
        p = mod.RVEProblem(micro, hm, "periodic", comm, newton_rtol=1e-10)
        st, its, S, C = p.initial_state(), 0, [], None
        for k in range(1, 5):
            s, C, st, info = p.solve(np.array([0.01, -0.004, 0.003]) * k, st)
            its += info.newton_iterations
            S.append(s)
        p.destroy()
        return its, np.array(S), C

    for label, seq, old, new in (("voxel_rve", fe2_seq, fe2_old, fe2_new), ("rve_problem", hom_seq, hom_old, hom_new)):
        cpu = {"old": [], "new": []}
        res = {}
        for _ in range(a.repeat):
            for tag, mod in (("old", old), ("new", new)):
                comm.Barrier()
                t0 = time.process_time()
                res[tag] = seq(mod)
                cpu[tag].append(comm.allreduce(time.process_time() - t0, op=MPI.MAX))
        (io, So, Co), (inw, Sn, Cn) = res["old"], res["new"]
        out[label] = {"cpu_s_best_old": min(cpu["old"]), "cpu_s_best_new": min(cpu["new"]),
                      "newton_iterations_old": io, "newton_iterations_new": inw,
                      "max_rel_stress_diff": float(np.abs(So - Sn).max() / np.abs(So).max()),
                      "max_rel_tangent_diff": float(np.abs(Co - Cn).max() / np.abs(Co).max())}
    out["voxel_rve"]["voxels"] = a.voxels
    out["rve_problem"]["voxels"] = a.cell
    if comm.rank == 0:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
