"""Calibrate the Cahn–Hilliard and FE² performance models (hpcmsm.bench.model) on measurements
made here, check them against the measured rank counts, and extrapolate to 10³–10⁵ ranks.

    ./run python benchmarks/scaling_model.py --probes probes.json --ch DIR --fe2 DIR [--figures DIR]

--probes  output of benchmarks/stream.py (STREAM, MPI ping-pong, Allreduce)
--ch      harness output of `benchmarks/scaling.py phasefield-lib` (or phasefield): the 1-rank
          strong case's -log_view gives per-cell costs and iteration counts
--fe2     harness output of `benchmarks/scaling.py fe2`: the 1-rank case's fe2_summary.json gives
          the RVE cost, exchange and macro time per Newton iteration
Prints JSON (calibration, validation, extrapolation) and, with --figures, writes
model_ch.png / model_fe2.png there.
"""
import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from hpcmsm.bench.model import (ASSUMPTIONS, CahnHilliardModel, FE2Model, calibrate_ch,  # noqa: E402
                                machine_from_probes, model_plot, scaling_table)

RANKS = [1, 8, 64, 128, 1024, 4096, 16384, 65536, 131072]
# a target cluster node for the extrapolation (assumed, typical dual-socket 2×64-core node)
TARGET_NODE = {"cores_per_node": 128, "stream_node": 350e9}


def load(p):
    with open(p) as fh:
        return json.load(fh)


def case(dirname, mode, n):
    p = os.path.join(dirname, mode, f"n{n}", "case.json")
    return load(p) if os.path.exists(p) else None


def ch_part(a, here, target):
    c1 = case(a.ch, "strong", 1)
    base = os.path.join(a.ch, "strong", "n1")
    if os.path.exists(os.path.join(base, "summary.json")):      # benchmarks/scaling_ch.py
        summ = load(os.path.join(base, "summary.json"))
        cells, steps, phase = summ["cells"], summ["steps"], "step"
    else:                                                        # the phasefield command
        summ = load(os.path.join(base, "res", "phasefield_summary.json"))
        cells, steps, phase = math.prod(summ["shape"]), summ["steps"], "time loop"
    ch = calibrate_ch(c1["petsc"], cells, steps, dim=2, pc="allgather-fft")
    out = {"calibration": {k: getattr(ch, k) for k in ("n_newton", "n_krylov", "c_res", "c_jac", "c_matvec",
                                                       "c_vec", "c_fft")},
           "calibration_case": {"cells": cells, "steps": steps}}
    # validation at the measured rank counts on this machine (per step; the harness metric is the
    # 'step' phase summed over all steps)
    val = []
    for n in sorted(int(d[1:]) for d in os.listdir(os.path.join(a.ch, "strong")) if d.startswith("n")):
        c = case(a.ch, "strong", n)
        if not c or c["returncode"] != 0:
            continue
        meas = c["timers"][phase]["max"] / steps
        pred = ch.parts(n, here)["total"] * (max(1.0, n / here.cores_per_node))  # time-sharing beyond the cores
        val.append({"ranks": n, "measured_s_per_step": meas, "predicted_s_per_step": pred,
                    "oversubscribed": n > here.cores_per_node})
    out["validation"] = val
    tables, extrap = {}, {}
    for label, n_cells, dim, pc in (("2D 8192², allgather-FFT PC (current)", 8192**2, 2, "allgather-fft"),
                                   ("2D 8192², pencil-FFT PC", 8192**2, 2, "pencil-fft"),
                                   ("2D 8192², multigrid PC", 8192**2, 2, "mg"),
                                   ("3D 512³, multigrid PC", 512**3, 3, "mg")):
        m = CahnHilliardModel(**{**out["calibration"], "n_cells": n_cells, "dim": dim, "pc": pc})
        rows = scaling_table(m, target, RANKS)
        tables[label] = rows
        extrap[label] = {r["ranks"]: {"s_per_step": r["total"], "efficiency": r["efficiency"],
                                      "communication_fraction": r["communication"] / r["total"]} for r in rows}
    weak = CahnHilliardModel(**{**out["calibration"], "n_cells": 256**2, "dim": 2, "pc": "mg"})
    wrows = scaling_table(weak, target, RANKS, weak={"n_cells": 256**2})
    tables["weak 256²/rank, multigrid PC"] = wrows
    extrap["weak 256²/rank, multigrid PC"] = {r["ranks"]: {"s_per_step": r["total"], "efficiency": r["efficiency"]}
                                              for r in wrows}
    out["extrapolation"] = extrap
    if a.figures:
        out["figure"] = model_plot(tables, os.path.join(a.figures, "model_ch.png"),
                                   "Cahn–Hilliard model (calibrated here; target node 128 cores, 350 GB/s, IB-class network)")
    return out


def fe2_part(a, here, target):
    c1 = case(a.fe2, "strong", 1)
    s = load(os.path.join(a.fe2, "strong", "n1", "res", "fe2_summary.json"))
    evals = s["evaluations"]
    t_rve1 = s["rve_time_max"] / s["rve_solves"]
    newton = c1["timers"]["newton"]["max"]
    # at one rank the pool's "exchange" is local packing ∝ quadrature points: counted as macro work
    macro_per_eval = max(0.0, newton - s["rve_time_max"]) / evals
    M = s["quadrature_points"]
    cal = {"t_rve1": t_rve1, "c_macro_qp": macro_per_eval / M, "c_macro_dof": 0.0, "macro_dofs": 0.0,
           "n_macro_krylov": 0.0}
    out = {"calibration": cal, "calibration_case": {"quadrature_points": M, "evaluations": evals,
                                                    "rve_solves": s["rve_solves"], "newton_s": newton}}
    val = []
    for n in sorted(int(d[1:]) for d in os.listdir(os.path.join(a.fe2, "strong")) if d.startswith("n")):
        c = case(a.fe2, "strong", n)
        if not c or c["returncode"] != 0:
            continue
        model = FE2Model(n_rve=M, **cal)
        pred = model.parts(n, here)["total"] * evals * max(1.0, n / here.cores_per_node)
        val.append({"ranks": n, "measured_newton_s": c["timers"]["newton"]["max"], "predicted_newton_s": pred,
                    "oversubscribed": n > here.cores_per_node})
    out["validation"] = val
    tables, extrap = {}, {}
    # a 3D macro mesh with 10^5 RVEs (e.g. 12.5k hexahedra x 8 points), macro solve modelled
    # with 3 dofs per node ~ 3.2 dofs per QP and 50 CG iterations at 1 µs/dof
    for label, nrve, g in (("10⁵ RVEs, groups of 1", 1e5, 1), ("10⁵ RVEs, groups of 8", 1e5, 8),
                           ("10⁴ RVEs, groups of 1", 1e4, 1)):
        m = FE2Model(n_rve=nrve, group_size=g, t_rve1=t_rve1, c_macro_qp=cal["c_macro_qp"],
                     macro_dofs=3.2 * nrve, c_macro_dof=1e-6, n_macro_krylov=50)
        rows = scaling_table(m, target, [r for r in RANKS if r >= g])
        tables[label] = rows
        extrap[label] = {r["ranks"]: {"s_per_iteration": r["total"], "efficiency": r["efficiency"],
                                      "idle_fraction": r["idle_fraction"], "exchange_s": r["exchange"]}
                         for r in rows}
    wm = FE2Model(n_rve=64, t_rve1=t_rve1, c_macro_qp=cal["c_macro_qp"], macro_dofs=3.2 * 64,
                  c_macro_dof=1e-6, n_macro_krylov=50)
    wrows = scaling_table(wm, target, RANKS, weak={"n_rve": 64, "macro_dofs": 3.2 * 64})
    tables["weak 64 RVEs/rank"] = wrows
    extrap["weak 64 RVEs/rank"] = {r["ranks"]: {"s_per_iteration": r["total"], "efficiency": r["efficiency"]}
                                   for r in wrows}
    out["extrapolation"] = extrap
    if a.figures:
        out["figure"] = model_plot(tables, os.path.join(a.figures, "model_fe2.png"),
                                   "FE² model (RVE cost calibrated here; target node 128 cores, IB-class network)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", required=True)
    ap.add_argument("--ch", default=None)
    ap.add_argument("--fe2", default=None)
    ap.add_argument("--figures", default=None)
    a = ap.parse_args()
    probes = load(a.probes)
    top = str(max(int(k) for k in probes["stream"]))
    here = machine_from_probes(probes["stream"][top], probes.get("mpi"), cores_per_node=probes["cores"])
    target = machine_from_probes(probes["stream"][top], probes.get("mpi"), **TARGET_NODE)
    target.stream_node = TARGET_NODE["stream_node"]
    if a.figures:
        os.makedirs(a.figures, exist_ok=True)
    out = {"machine_here": vars(here), "machine_target": vars(target), "assumptions": ASSUMPTIONS}
    if a.ch:
        out["cahn_hilliard"] = ch_part(a, here, target)
    if a.fe2:
        out["fe2"] = fe2_part(a, here, target)
    print(json.dumps(out, indent=1, default=lambda o: o if not isinstance(o, float) or math.isfinite(o) else str(o)))


if __name__ == "__main__":
    main()
