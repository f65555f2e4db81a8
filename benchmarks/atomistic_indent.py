"""QC vs full atomistics on the nanoindentation example: DOFs, load error per depth, wall time.

    ./run python benchmarks/atomistic_indent.py [--nx 160 --ny 80]                   # serial
    mpirun -n 2 .venv/bin/python benchmarks/atomistic_indent.py                    # 2 ranks (env as in ./run)

Prints one JSON object.  Runs ``hpcmsm qc`` with ``[indent]`` (adaptive, ghost-force corrected) and
the full atomistic comparison at every depth; both use the same PETSc TAO/SNES minimisers on the
same ranks, so the wall-time ratio compares discretisations, not libraries.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nx", type=int, default=160)
    ap.add_argument("--ny", type=int, default=80)
    ns = ap.parse_args()
    from mpi4py import MPI

    from atomistic_qc import run_example      # benchmarks/ is on sys.path (the script's folder)

    comm = MPI.COMM_WORLD
    rc, s = run_example(comm, "qc_nanoindentation.toml", {"nx = 160": ns.nx, "ny = 80": ns.ny}, "indentbench-")
    if comm.rank == 0:
        steps = [{"depth_over_a": q["depth"] / s["a"], "load_qc": q["load"], "load_full": f["load"],
                  "load_error_rel": e, "contact_atoms": q["contact_atoms"], "atomistic_sites": q["atomistic_sites"],
                  "dofs_qc": q["dofs"], "adapt_cycles": q["cycles"]}
                 for q, f, e in zip(s["qc"], s["full"], s["load_error_rel"])]
        keys = ["sites", "dofs_full", "dof_ratio_full_over_qc", "load_error_rel_max", "time_qc", "time_full",
                "wall_time_ratio_full_over_qc"]
        print(json.dumps({"benchmark": "atomistic_indent", "ranks": comm.size, "nx": ns.nx, "ny": ns.ny, "exit": rc,
                          **{k: s.get(k) for k in keys}, "steps": steps}, indent=1))


if __name__ == "__main__":
    main()
