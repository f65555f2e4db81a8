"""Preconditioner study for the coupled c–μ Newton systems of PFHub 1a (default interval t = 0 → 100).

    ./run python benchmarks/pf_precond.py [--t-end 100] [--ranks 2] [--only NAME ...]

Each configuration is a set of PETSc options under the ``ch_`` prefix passed on the command line of
``hpcmsm phasefield``; the same adaptive run is repeated and we report wall time, Newton and
linear iterations and rejected steps (a preconditioner too weak for GMRES within 500 iterations
shows up as failed Newton solves, hence rejected/shrunk steps).  Prints JSON.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pf_pfhub1a import ROOT, run_hpcmsm  # noqa: E402

CONFIGS = {
    "fft (default)": [],
    "fieldsplit-schur (gamg blocks)": ["-ch_pc_type", "fieldsplit", "-ch_pc_fieldsplit_type", "schur",
                                       "-ch_pc_fieldsplit_schur_fact_type", "full",
                                       "-ch_pc_fieldsplit_schur_precondition", "selfp",
                                       "-ch_fieldsplit_0_ksp_type", "preonly", "-ch_fieldsplit_0_pc_type", "gamg",
                                       "-ch_fieldsplit_1_ksp_type", "preonly", "-ch_fieldsplit_1_pc_type", "gamg"],
    "geometric mg (DMDA, 4 levels, galerkin)": ["-ch_pc_type", "mg", "-ch_pc_mg_levels", "4",
                                                "-ch_pc_mg_galerkin", "both",
                                                "-ch_mg_levels_ksp_type", "gmres", "-ch_mg_levels_ksp_max_it", "3",
                                                "-ch_mg_levels_pc_type", "bjacobi"],
    "gamg (plain AMG)": ["-ch_pc_type", "gamg"],
    "block jacobi + ilu": ["-ch_pc_type", "bjacobi"],
    "direct lu (mumps)": ["-ch_pc_type", "lu", "-ch_pc_factor_mat_solver_type", "mumps"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t-end", type=float, default=100.0)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per configuration")
    a = ap.parse_args()
    inp = os.path.join(ROOT, "examples", "phasefield_pfhub1a.toml")
    out = {"t_end": a.t_end, "ranks": a.ranks, "load_average_start": os.getloadavg()[0], "runs": {}}
    for name, opts in CONFIGS.items():
        if a.only and not any(o in name for o in a.only):
            continue
        try:
            r = run_hpcmsm(a.ranks, a.t_end, inp, extra=opts, timeout=a.timeout)
            r.pop("outdir", None)
            r["options"] = " ".join(opts)
        except SystemExit as e:
            r = {"failed": str(e)[-500:], "options": " ".join(opts)}
        out["runs"][name] = r
        print(f"# {name}: {r.get('wall_time_loop_s', 'failed')}", file=sys.stderr, flush=True)
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
