"""PFHub benchmark 1a (periodic 200×200) to t = 1e6 with ``hpcmsm phasefield``: time to solution.

    ./run python benchmarks/pf_pfhub1a.py [--ranks 2] [--t-end 1e6] [--input examples/phasefield_pfhub1a.toml]

Prints one JSON object: wall time of the time loop, steps, Newton/linear iterations, rejected
steps, the final free energy and the per-phase timers of the run (max over ranks).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_hpcmsm(ranks: int, t_end: float, inp: str, extra=(), outdir=None, timeout=None) -> dict:
    out = outdir or tempfile.mkdtemp(prefix="pf_bench_")
    cmd = [os.path.join(ROOT, "run"), "-n", str(ranks), "phasefield", inp, "--out", out, "--t-end", repr(t_end),
           "--quiet", *extra]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"did not finish within {timeout} s") from None
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"run failed: {r.stderr}")
    with open(os.path.join(out, "phasefield_summary.json")) as fh:
        s = json.load(fh)
    return {"ranks": ranks, "t_end": t_end, "wall_total_s": wall, "wall_time_loop_s": s["wall_time_loop"],
            "cpu_time_loop_s": s["cpu_time_loop_max_rank"],
            "steps": s["steps"], "newton_its": s["newton_its"], "linear_its": s["linear_its"],
            "rejected": s["rejected"], "free_energy": s["free_energy"], "pc_type": s["pc_type"],
            "timers_max_s": {k: round(v["max"], 3) for k, v in s["timers"].items()}, "outdir": out,
            "command": " ".join(cmd)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--t-end", type=float, default=1e6)
    ap.add_argument("--input", default=os.path.join(ROOT, "examples", "phasefield_pfhub1a.toml"))
    a = ap.parse_args()
    load = os.getloadavg()[0]
    res = run_hpcmsm(a.ranks, a.t_end, a.input)
    res["load_average_before"] = load
    res["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
