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


def run_example(comm, example: str, sizes: dict, prefix: str):
    """Run ``hpcmsm qc`` on ``examples/<example>`` with its ``nx = ..``/``ny = ..`` lines replaced
    (``sizes``: original line → new value) in a temporary directory; returns (exit code, summary
    dict on rank 0 / None elsewhere).  Shared by the QC benchmarks."""
    from hpcmsm.commands import qc

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "examples", example)).read()
    for line, value in sizes.items():
        text = text.replace(line, f"{line.split('=')[0].strip()} = {value}")
    d = comm.bcast(tempfile.mkdtemp(prefix=prefix) if comm.rank == 0 else None)
    path = os.path.join(d, "in.toml")
    if comm.rank == 0:
        open(path, "w").write(text)
    comm.Barrier()
    rc = qc.run(argparse.Namespace(input=path, output=os.path.join(d, "out")), comm)
    comm.Barrier()
    s = json.load(open(os.path.join(d, "out", "summary.json"))) if comm.rank == 0 else None
    return rc, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nx", type=int, default=120)
    ap.add_argument("--ny", type=int, default=140)
    ns = ap.parse_args()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rc, s = run_example(comm, "qc_vacancy_cluster_shear.toml", {"nx = 120": ns.nx, "ny = 140": ns.ny}, "qcbench-")
    if comm.rank == 0:
        keys = ["sites", "dofs_full", "dofs_qc", "dof_ratio_full_over_qc", "energy_error_rel_deformation",
                "energy_error_rel_relaxation", "displacement_error_rel", "displacement_error_max", "time_qc",
                "time_full", "wall_time_ratio_full_over_qc", "outer_iterations", "atomistic_sites", "repatoms"]
        print(json.dumps({"benchmark": "atomistic_qc", "ranks": comm.size, "nx": ns.nx, "ny": ns.ny, "exit": rc,
                          **{k: s.get(k) for k in keys}, "adapt_history": s.get("adapt_history")}, indent=1))


if __name__ == "__main__":
    main()
