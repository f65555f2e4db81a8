"""FE² performance: RVE solves/s, 1 vs 2 ranks, time split, elastic-reuse and load-balancing gains.

Runs ``hpcmsm fe2`` on a plate with a hole (plasticity localises at the hole, so the RVE cost is
very uneven) at 1 rank, then at 2 ranks with the QP→group assignments to compare (cost-balanced,
round-robin and, with ``--block``, contiguous blocks), and times single RVE solves of the requested
size for the cost model.  Prints JSON (and writes it to ``--json``).

    ./run python benchmarks/fe2_bench.py                 # the issue's full case: 1024 QPs, 32² J2 RVEs, 10 steps
    ./run python benchmarks/fe2_bench.py --quick         # 128 QPs, 16² RVEs, 4 steps (a check, ~1 min)

Sizes can be overridden (``--cells 16 8 --voxels 16 --steps 5``).  Every run's audit (Hill–Mandel,
trapezoidal energy balance, Newton order) is recorded; all runs must give the same load history.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INPUT = """
[macro]
geometry = "plate_with_hole"
size = 10.0
hole_radius = 3.0
cells = [{ct}, {cr}]
displacement = 0.03
steps = {steps}
[micro]
voxels = {voxels}
microstructure = "particle"
volume_fraction = 0.2
matrix = {{ E = 70e3, nu = 0.33, sigma_y = 100.0, H = 500.0 }}
particle = {{ E = 400e3, nu = 0.2 }}
[pool]
balance = "{balance}"
cost_measure = "{measure}"
elastic_reuse = {reuse}
[output]
dir = "{out}"
png = false
every = {steps}
"""


def run_case(tmp, n, balance, args, reuse=True, tag="", measure="time"):
    out = os.path.join(tmp, f"out_{n}_{balance}_{int(reuse)}{tag}")
    inp = os.path.join(tmp, f"in_{n}_{balance}_{int(reuse)}{tag}.toml")
    with open(inp, "w") as fh:
        fh.write(INPUT.format(ct=args.cells[0], cr=args.cells[1], steps=args.steps, voxels=args.voxels,
                              balance=balance, out=out, reuse="true" if reuse else "false",
                              measure=measure))
    t0 = time.perf_counter()
    r = subprocess.run([os.path.join(ROOT, "run"), "-n", str(n), "fe2", inp, "--quiet"], capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 3):   # 3: finished, an audit check failed (recorded below)
        raise SystemExit(f"fe2 run failed ({n} ranks, {balance}, exit {r.returncode}):\n{r.stdout[-2000:]}\n"
                         f"{r.stderr[-3000:]}")
    s = json.load(open(os.path.join(out, "fe2_summary.json")))
    newton = s["timers"]["newton"]["max"]
    return {
        "ranks": n, "balance": balance, "elastic_reuse": reuse, "wall_s": wall, "run_s": s["wall_time"],
        "newton_s": newton, "cpu_s_per_rank": s["cpu_time_per_rank"], "rve_s_max": s["rve_time_max"], "rve_s_per_group": s["rve_time_per_group"],
        "exchange_s_max": s["exchange_time_max"],
        "macro_s": max(newton - s["rve_time_max"] - s["exchange_time_max"], 0.0),
        "rve_evaluations": s["rve_solves"], "rve_reused": s["rve_reused"],
        "rve_newton_iterations": s["rve_newton_iterations"], "full_solve_time": s["full_solve_time"],
        "reuse_time": s["reuse_time"], "exchange_bytes": s["exchange_bytes"], "evaluations": s["evaluations"],
        "rve_evaluations_per_s": s["rve_solves"] / newton, "qps": s["quadrature_points"],
        "audit_passed": s["audit"]["passed"], "reaction": [h[3] for h in s["history"]],
        "micro_newton_iterations_per_full_solve":
            s["rve_newton_iterations"] / max(s["rve_solves"] - s["rve_reused"], 1),
    }


def single_rve_timing(voxels, reps=5):
    import numpy as np

    from hpcmsm.materials.j2 import J2Plasticity
    from hpcmsm.fe2.rve import VoxelRVE
    from hpcmsm.homogenization.microstructure import inclusion_array
    from hpcmsm.materials.base import LinearElastic

    rve = VoxelRVE(inclusion_array((voxels, voxels), 0.2).labels,
                   [J2Plasticity(2, 70e3, 0.33, 100.0, 500.0), LinearElastic.isotropic(2, 400e3, 0.2)])
    st = rve.initial_state()
    E = np.array([3e-3, -1e-3, 1e-3])
    t0 = time.perf_counter()
    for _ in range(reps):
        _, _, new, info = rve.solve(E, st)
    t_full = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        res = rve.try_elastic(E * 1e-3, st)
    t_reuse = (time.perf_counter() - t0) / reps
    return {"voxels": voxels, "full_solve_s": t_full, "newton_iterations": info["iterations"],
            "per_iteration_s": t_full / (info["iterations"] + 2), "elastic_reuse_s": t_reuse,
            "state_floats": rve.state_size, "reused_ok": res is not None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small size for checking: 128 QPs, 16² RVEs, 4 steps")
    ap.add_argument("--cells", type=int, nargs=2, default=None, help="plate mesh [n_theta, n_r] (QPs = 4·product)")
    ap.add_argument("--voxels", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--block", action="store_true", help="also run the contiguous-block assignment at 2 ranks")
    ap.add_argument("--noreuse", action="store_true", help="also run without elastic reuse (1 rank)")
    ap.add_argument("--measure", default="time", choices=("time", "iterations"),
                    help="cost measure of the balancer (iterations: deterministic, for a shared machine)")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directories (full size: ~0.3 GB checkpoint each)")
    a = ap.parse_args()
    full = dict(cells=[32, 8], voxels=32, steps=10)
    quick = dict(cells=[8, 4], voxels=16, steps=4)
    size = quick if a.quick else full
    a.cells = a.cells or size["cells"]
    a.voxels = a.voxels or size["voxels"]
    a.steps = a.steps or size["steps"]
    tmp = tempfile.mkdtemp(prefix="fe2bench-")
    res = {"benchmark": "fe2", "cells": a.cells, "qps": 4 * a.cells[0] * a.cells[1], "voxels": a.voxels,
           "steps": a.steps, "cost_measure": a.measure, "cases": []}
    t_all = time.perf_counter()
    c1 = run_case(tmp, 1, "round_robin", a, measure=a.measure)
    res["cases"].append(c1)
    balances = ["cost", "round_robin"] + (["block"] if a.block else [])
    c2 = {}
    for bal in balances:
        c2[bal] = run_case(tmp, 2, bal, a, measure=a.measure)
        res["cases"].append(c2[bal])
    if a.noreuse:
        res["cases"].append(run_case(tmp, 1, "round_robin", a, reuse=False, measure=a.measure))
    res["benchmark_wall_s"] = time.perf_counter() - t_all
    # in-process timings last: once this process has initialised MPI (singleton), mpirun children
    # inherit its Open MPI environment and fail
    res["single_rve"] = [single_rve_timing(a.voxels)]
    res["total_time_s"] = {"1 rank": c1["run_s"], **{f"2 ranks, {b}": c["run_s"] for b, c in c2.items()}}
    res["rve_solves_per_s"] = {"1 rank": c1["rve_evaluations_per_s"],
                               **{f"2 ranks, {b}": c["rve_evaluations_per_s"] for b, c in c2.items()}}
    res["split_s"] = {("1 rank" if c["ranks"] == 1 else f"2 ranks, {c['balance']}"):
                      {"rve_max_over_groups": c["rve_s_max"], "exchange_incl_waiting": c["exchange_s_max"],
                       "macro": c["macro_s"]} for c in res["cases"][:1 + len(c2)]}
    res["parallel_efficiency_2"] = {b: c1["newton_s"] / (2 * c["newton_s"]) for b, c in c2.items()}
    # CPU-time efficiency: insensitive to other users' load on a shared machine
    res["cpu_efficiency_2"] = {b: sum(c1["cpu_s_per_rank"]) / (2 * max(c["cpu_s_per_rank"])) for b, c in c2.items()}
    res["lb_gain_vs_round_robin"] = c2["round_robin"]["rve_s_max"] / c2["cost"]["rve_s_max"]
    if "block" in c2:
        res["lb_gain_vs_block"] = c2["block"]["rve_s_max"] / c2["cost"]["rve_s_max"]
    ref = c1["reaction"]
    res["same_history"] = all(np.allclose(c["reaction"], ref, rtol=1e-7) for c in res["cases"])
    res["all_audits_passed"] = all(c["audit_passed"] for c in res["cases"])
    # elastic-reuse saving estimated from the measured mean cost of a full solve and of a reuse
    full_n = c1["rve_evaluations"] - c1["rve_reused"]
    t_full = c1["full_solve_time"] / max(full_n, 1)
    t_re = c1["reuse_time"] / max(c1["rve_reused"], 1)
    saved = c1["rve_reused"] * (t_full - t_re)
    res["elastic_reuse"] = {"reused_fraction": c1["rve_reused"] / c1["rve_evaluations"], "mean_full_solve_s": t_full,
                            "mean_reuse_s": t_re, "estimated_time_saved_s": saved,
                            "estimated_saving_fraction": saved / (c1["newton_s"] + saved)}
    if a.noreuse:
        nr = res["cases"][-1]
        res["elastic_reuse"]["measured_saving_fraction"] = 1.0 - c1["newton_s"] / nr["newton_s"]
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(txt + "\n")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
