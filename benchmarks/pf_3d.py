"""Cost per time step of 3D Cahn–Hilliard on 128³ cells at 1 and 2 ranks.

    ./run python benchmarks/pf_3d.py [--n 128] [--steps 3] [--ranks 1 2] [-- PETSc options]

Runs ``hpcmsm phasefield`` on the 3D spinodal example resized to n³, fixed Δt = 1 (not adaptive,
so every rank count does the same work), and reports time-loop seconds per step, Newton and
linear iterations per step, and the speed-up from 1 to 2 ranks.  Prints JSON.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pf_pfhub1a import ROOT, run_hpcmsm  # noqa: E402

TOML = """[problem]
shape = [{n}, {n}, {n}]
lengths = [{L}, {L}, {L}]
boundary = "no_flux"
[initial]
kind = "noise"
epsilon = 0.05
seed = 7
[time]
t_end = {t_end}
dt0 = 1.0
adaptive = false
output_times = []
[output]
checkpoint_every = 0
png = false
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--ranks", type=int, nargs="*", default=[1, 2])
    ap.add_argument("petsc", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pf3d_")
    inp = os.path.join(d, "in.toml")
    with open(inp, "w") as fh:
        fh.write(TOML.format(n=a.n, L=float(a.n), t_end=float(a.steps)))
    extra = [x for x in a.petsc if x != "--"]
    res = {"n": a.n, "steps": a.steps, "petsc": " ".join(extra), "load_average_start": os.getloadavg()[0], "runs": {}}
    for r in a.ranks:
        out = run_hpcmsm(r, float(a.steps), inp, extra=extra)
        out["seconds_per_step"] = out["wall_time_loop_s"] / max(out["steps"], 1)
        out.pop("outdir", None)
        res["runs"][str(r)] = out
    if "1" in res["runs"] and "2" in res["runs"]:
        res["speedup_1_to_2"] = res["runs"]["1"]["seconds_per_step"] / res["runs"]["2"]["seconds_per_step"]
    res["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
