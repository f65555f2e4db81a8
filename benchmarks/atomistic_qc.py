"""QC vs full atomistics on the vacancy-cluster-under-shear example: DOFs, energy error, wall time.

    ./run python benchmarks/atomistic_qc.py [--nx 120 --ny 140]                     # serial
    mpirun -n 2 .venv/bin/python benchmarks/atomistic_qc.py                        # 2 ranks (env as in ./run)

Prints one JSON object.  Runs ``hpcmsm qc`` (adaptive, ghost-force corrected) with the full
atomistic comparison switched on; both solvers use the same PETSc TAO/SNES minimisers on the same
ranks, so the wall-time ratio compares discretisations, not libraries.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nx", type=int, default=120)
    ap.add_argument("--ny", type=int, default=140)
    ns = ap.parse_args()
    from mpi4py import MPI

    from hpcmsm.commands import qc

    comm = MPI.COMM_WORLD
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "examples", "qc_vacancy_cluster_shear.toml")).read()
    text = text.replace("nx = 120", f"nx = {ns.nx}").replace("ny = 140", f"ny = {ns.ny}")
    d = comm.bcast(tempfile.mkdtemp(prefix="qcbench-") if comm.rank == 0 else None)
    path = os.path.join(d, "in.toml")
    if comm.rank == 0:
        open(path, "w").write(text)
    comm.Barrier()
    rc = qc.run(argparse.Namespace(input=path, output=os.path.join(d, "out")), comm)
    comm.Barrier()
    if comm.rank == 0:
        s = json.load(open(os.path.join(d, "out", "summary.json")))
        keys = ["sites", "dofs_full", "dofs_qc", "dof_ratio_full_over_qc", "energy_error_rel_deformation",
                "energy_error_rel_relaxation", "displacement_error_rel", "displacement_error_max", "time_qc",
                "time_full", "wall_time_ratio_full_over_qc", "outer_iterations", "atomistic_sites", "repatoms"]
        print(json.dumps({"benchmark": "atomistic_qc", "ranks": comm.size, "nx": ns.nx, "ny": ns.ny, "exit": rc,
                          **{k: s.get(k) for k in keys}, "adapt_history": s.get("adapt_history")}, indent=1))


if __name__ == "__main__":
    main()
