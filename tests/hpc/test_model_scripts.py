"""benchmarks/scaling_model.py and scaling_report.py on synthetic harness output: the model
calibrated on a 1-rank case must reproduce that case's time, and the report must carry it."""
import json
import math
import os
import subprocess
import sys

from conftest import ROOT


def _write(p, obj):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as fh:
        json.dump(obj, fh)


def test_model_and_report_scripts(tmp_path):
    n, steps = 4096, 3
    newton, krylov = 2, 6
    costs = {"SNESFunctionEval": (steps * (newton + 1), 2e-7), "SNESJacobianEval": (steps * newton, 1e-6),
             "MatMult": (steps * newton * krylov, 8e-8), "VecMDot": (steps * newton * krylov, 2e-8)}
    events = {k: {"count": c, "max_s": c * n * t, "reductions": 0.0} for k, (c, t) in costs.items()}
    pc_t = 2e-8 * math.log2(n)
    events["PCApply"] = {"count": steps * newton * krylov, "max_s": steps * newton * krylov * n * pc_t, "reductions": 0}
    # the time the model should reproduce at 1 rank: what a step costs by those events
    per_step = (newton * (2e-7 + 1e-6) + newton * krylov * (8e-8 + pc_t + 2e-8)) * n
    ch = tmp_path / "ch"
    _write(str(ch / "strong/n1/case.json"), {"ranks": 1, "returncode": 0, "wall_s": 1.0, "params": {},
                                             "petsc": {"stages": {}, "events": {"Main Stage": events}},
                                             "timers": {"step": {"max": per_step * steps, "mean": 0}}})
    _write(str(ch / "strong/n1/summary.json"), {"cells": n, "steps": steps})
    fe = tmp_path / "fe2"
    _write(str(fe / "strong/n1/case.json"), {"ranks": 1, "returncode": 0, "wall_s": 1.0, "params": {},
                                             "timers": {"newton": {"max": 10.0, "mean": 10.0}}})
    _write(str(fe / "strong/n1/res/fe2_summary.json"), {"evaluations": 5, "rve_time_max": 8.0, "rve_solves": 400,
                                                        "exchange_time_max": 0.5, "quadrature_points": 80})
    probes = {"cores": 2, "stream": {"1": {"GBs": {"copy": 10.0, "scale": 10, "add": 12, "triad": 9},
                                           "GBs_per_rank": {"copy": 10.0}, "array_MiB_per_rank": 64}},
              "mpi": {"ranks": 2, "latency_s": 1e-6, "bandwidth_Bs": 4e9, "allreduce_s": {"1": 3e-6, "1024": 1e-5},
                      "pingpong_s": {"8": 1e-6}}}
    _write(str(tmp_path / "probes.json"), probes)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "scaling_model.py"), "--probes",
                        str(tmp_path / "probes.json"), "--ch", str(ch), "--fe2", str(fe), "--figures", str(tmp_path / "fig")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    cal = m["cahn_hilliard"]["calibration"]
    assert cal["n_newton"] == newton and cal["n_krylov"] == krylov
    v = m["cahn_hilliard"]["validation"][0]
    assert abs(v["predicted_s_per_step"] / v["measured_s_per_step"] - 1) < 1e-9
    fv = m["fe2"]["validation"][0]
    assert abs(fv["predicted_newton_s"] / fv["measured_newton_s"] - 1) < 1e-9    # RVE + macro; exchange 0 at 1 rank
    assert m["fe2"]["calibration"]["t_rve1"] == 8.0 / 400
    ex = m["fe2"]["extrapolation"]["10⁴ RVEs, groups of 1"]
    assert ex["65536"]["efficiency"] < ex["1024"]["efficiency"]                 # more ranks than RVEs: idle
    assert (tmp_path / "fig" / "model_ch.png").exists() and (tmp_path / "fig" / "model_fe2.png").exists()
    (tmp_path / "model.json").write_text(r.stdout)
    rep = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "scaling_report.py"), "--probes",
                          str(tmp_path / "probes.json"), "--model", str(tmp_path / "model.json")],
                         capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    assert "| 1 | 10.0 |" in rep.stdout and "ping-pong latency α = 1.00 µs" in rep.stdout
    assert "2.00 Newton and 6.00 GMRES" in rep.stdout
