"""Finite-strain FE² cost: the same composite plate at finite and at small strain, 1 and 2 ranks.

Plate with a hole stretched by ``--stretch`` (default 30 %), every macro QP a periodic voxel RVE
(matrix + one stiff particle).  Runs, each as ``./run -n N fe2 input --quiet``:

* finite strain, Neo-Hookean phases, 1 rank and 2 ranks (round-robin groups of 1);
* small strain, fe2_bench's J2 matrix + elastic particle at its load, 1 rank, with the exact
  elastic reuse switched off so every evaluation is a full nonlinear RVE solve like the
  finite-strain ones (cost per solve and per micro Newton iteration), and once with the reuse on.

Prints JSON: wall/CPU per run, RVE evaluations, micro Newton iterations, ms per RVE evaluation,
macro Newton iterations and observed orders, the finite/small cost ratio per RVE evaluation, the
2-rank parallel efficiency (against the 1-rank CPU time), whether the 1- and 2-rank finite runs
gave the same reaction history, and the audits.  No peer code: no finite-strain FE² package
(FE2TI, the preCICE micro-manager with a finite-strain micro solver) is installable here.

    ./run python benchmarks/fe2_finite_bench.py                 # 128 QPs, 16² RVEs, 6 steps
    ./run python benchmarks/fe2_finite_bench.py --quick         # 32 QPs, 8² RVEs, 3 steps
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INPUT = """
[macro]
kinematics = "{kin}"
geometry = "plate_with_hole"
size = 10.0
hole_radius = 3.0
cells = [{ct}, {cr}]
displacement = {disp}
steps = {steps}
[micro]
voxels = {voxels}
microstructure = "particle"
volume_fraction = 0.25
matrix = {matrix}
particle = {particle}
[pool]
balance = "round_robin"
elastic_reuse = {reuse}
[newton]
rtol = 1e-9
[output]
dir = "{out}"
png = false
every = {steps}
"""


# finite: rubber-like Neo-Hookean matrix + stiff filler; small: fe2_bench's J2 matrix + elastic
# particle at its load (0.3 % strain, plastic around the hole) -- both nonlinear micro Newton solves
FINITE = dict(matrix='{ model = "neo_hookean", E = 10.0, nu = 0.45 }',
              particle='{ model = "neo_hookean", E = 1000.0, nu = 0.3 }')
SMALL = dict(matrix="{ E = 70e3, nu = 0.33, sigma_y = 100.0, H = 500.0 }", particle="{ E = 400e3, nu = 0.2 }")


def run_case(tmp, n, kin, args, reuse=False):
    tag = f"{kin}_{n}_{int(reuse)}"
    out, inp = os.path.join(tmp, "out_" + tag), os.path.join(tmp, f"in_{tag}.toml")
    if kin == "finite":
        disp, phases = args.stretch * 10.0, FINITE
    else:
        disp, phases = 0.03, SMALL
    with open(inp, "w") as fh:
        fh.write(INPUT.format(kin=kin, ct=args.cells[0], cr=args.cells[1], disp=disp, steps=args.steps,
                              voxels=args.voxels, reuse="true" if reuse else "false", out=out, **phases))
    t0 = time.perf_counter()
    r = subprocess.run([os.path.join(ROOT, "run"), "-n", str(n), "fe2", inp, "--quiet"], capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"fe2 failed ({tag}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    s = json.load(open(os.path.join(out, "fe2_summary.json")))
    H = np.array(s["history"])
    return {
        "run": tag, "ranks": n, "kinematics": kin, "elastic_reuse": reuse, "wall_s": round(wall, 2),
        "cpu_s_per_rank": [round(c, 2) for c in s["cpu_time_per_rank"]],
        "rve_evaluations": s["rve_solves"], "rve_exact_reuses": s["rve_reused"],
        "micro_newton_iterations": s["rve_newton_iterations"],
        "ms_per_rve_evaluation": round(1e3 * sum(s["cpu_time_per_rank"]) / max(s["rve_solves"], 1), 3),
        "macro_newton_iterations": int(H[:, s["history_columns"].index("newton_iterations")].sum()),
        "newton_orders": [round(o, 2) for o in s["newton_orders"]],
        "ms_per_full_rve_solve": round(1e3 * s["full_solve_time"] / max(s["rve_solves"] - s["rve_reused"], 1), 3),
        "ms_per_micro_newton_iteration": round(1e3 * s["full_solve_time"] / max(s["rve_newton_iterations"], 1), 3),
        # Newton phase minus RVE solves and exchange (maxima over ranks, so only an estimate):
        # macro assembly, MUMPS solves, load slopes
        "macro_time_s": round(max(s["timers"]["newton"]["max"] - s["rve_time_max"] - s["exchange_time_max"], 0.0), 2),
        "reaction": H[:, s["history_columns"].index("reaction")].tolist(),
        "audit_passed": s["audit"]["passed"],
        "audit": {c["name"][:40]: c["value"] for c in s["audit"]["checks"]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs=2, default=[8, 4])
    ap.add_argument("--voxels", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--stretch", type=float, default=0.3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.voxels, args.steps = [4, 2], 8, 3
    with tempfile.TemporaryDirectory(prefix="fe2_finite_bench_") as tmp:
        f1 = run_case(tmp, 1, "finite", args)
        f2 = run_case(tmp, 2, "finite", args)
        s1 = run_case(tmp, 1, "small", args, reuse=False)
        s1r = run_case(tmp, 1, "small", args, reuse=True)
    res = {
        "case": f"plate with a hole, {args.cells[0]}x{args.cells[1]} Q1 = {args.cells[0] * args.cells[1] * 4} QPs, "
                f"{args.voxels}^2 particle RVEs, {args.steps} steps, finite {100 * args.stretch:.0f} % stretch",
        "runs": [f1, f2, s1, s1r],
        "finite_over_small_cost_per_full_rve_solve": round(f1["ms_per_full_rve_solve"] / s1["ms_per_full_rve_solve"], 2),
        "finite_over_small_cost_per_micro_newton_iteration": round(
            f1["ms_per_micro_newton_iteration"] / s1["ms_per_micro_newton_iteration"], 2),
        "parallel_cpu_efficiency_2_ranks_finite": round(sum(f1["cpu_s_per_rank"]) / sum(f2["cpu_s_per_rank"]), 3),
        "parallel_efficiency_2_ranks_finite": round(sum(f1["cpu_s_per_rank"]) / (2 * f2["wall_s"]), 3),
        "same_history_1_vs_2_ranks": bool(np.allclose(f1["reaction"], f2["reaction"], rtol=1e-8)),
        "all_audits_passed": all(r["audit_passed"] for r in (f1, f2, s1, s1r)),
    }
    txt = json.dumps(res, indent=1)
    print(txt)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(txt)


if __name__ == "__main__":
    main()
