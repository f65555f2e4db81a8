"""FiPy versus hpcmsm on PFHub 1a over the same simulated interval (default t = 0 → 100).

    ./run python benchmarks/pf_fipy.py [--t-end 100] [--ranks 2]

FiPy is installed with pip into a throwaway venv (``/tmp/hpcmsm_fipy_venv``, made with
``/usr/bin/python3 -m venv --system-site-packages`` so it uses Debian's numpy/scipy; the script
checks pip did not replace numpy).  FiPy solves the same coupled c–μ system (the formulation of
the PFHub FiPy uploads: Newton-linearised ψ′ as an implicit source, one linear solve per sweep,
2 sweeps per step, scipy backend) with its own step growth Δt ← 1.1 Δt from 0.1.  hpcmsm runs the
same interval with its defaults.  Prints JSON with both wall times, steps, F(t_end) and the ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
VENV = "/tmp/hpcmsm_fipy_venv"

FIPY_SCRIPT = r'''
import json, sys, time
import numpy as np
import fipy as fp
t_end = float(sys.argv[1])
mesh = fp.PeriodicGrid2D(nx=200, ny=200, dx=1.0, dy=1.0)
c = fp.CellVariable(mesh=mesh, name="c", hasOld=True)
mu = fp.CellVariable(mesh=mesh, name="mu", hasOld=True)
x, y = mesh.cellCenters[0], mesh.cellCenters[1]
c.value = 0.5 + 0.01 * (np.cos(0.105 * x) * np.cos(0.11 * y) + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
                        + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y))
rho, ca, cb, kappa, M = 5.0, 0.3, 0.7, 2.0, 5.0
dfdc = 2 * rho * (c - ca) * (cb - c) ** 2 - 2 * rho * (c - ca) ** 2 * (cb - c)
d2fdc2 = 2 * rho * ((cb - c) ** 2 - 4 * (c - ca) * (cb - c) + (c - ca) ** 2)
eq1 = fp.TransientTerm(var=c) == fp.DiffusionTerm(coeff=M, var=mu)
eq2 = (fp.ImplicitSourceTerm(coeff=1.0, var=mu)
       == fp.ImplicitSourceTerm(coeff=d2fdc2, var=c) - d2fdc2 * c + dfdc - fp.DiffusionTerm(coeff=kappa, var=c))
eq = eq1 & eq2
def energy():
    f = rho * (c - ca) ** 2 * (cb - c) ** 2 + 0.5 * kappa * (c.grad.mag) ** 2
    return float(np.sum(np.asarray(f) * np.asarray(mesh.cellVolumes)))
t, dt, steps = 0.0, 0.1, 0
t0, p0 = time.perf_counter(), time.process_time()
while t < t_end - 1e-12:
    dt = min(dt, t_end - t)
    c.updateOld(); mu.updateOld()
    for sweep in range(2):
        eq.sweep(dt=dt)
    t += dt; steps += 1
    dt *= 1.1
wall, cpu = time.perf_counter() - t0, time.process_time() - p0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "steps": steps, "t": t, "free_energy": energy(),
                  "fipy": fp.__version__, "numpy": np.__version__}))
'''


def ensure_fipy() -> str:
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV], check=True)
    chk = subprocess.run([py, "-c", "import fipy"], capture_output=True)
    if chk.returncode != 0:
        before = subprocess.run([py, "-c", "import numpy; print(numpy.__version__)"], capture_output=True, text=True).stdout
        subprocess.run([py, "-m", "pip", "install", "-q", "fipy"], check=True)
        after = subprocess.run([py, "-c", "import numpy; print(numpy.__version__)"], capture_output=True, text=True).stdout
        if before != after:
            raise SystemExit(f"pip changed numpy in the FiPy venv ({before.strip()} -> {after.strip()})")
    return py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t-end", type=float, default=100.0)
    ap.add_argument("--ranks", type=int, default=2)
    a = ap.parse_args()
    py = ensure_fipy()
    env = dict(os.environ, FIPY_SOLVERS="scipy", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([py, "-c", FIPY_SCRIPT, repr(a.t_end)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"FiPy failed: {r.stderr[-2000:]}")
    fipy = json.loads(r.stdout.strip().splitlines()[-1])
    from pf_pfhub1a import run_hpcmsm

    ours = run_hpcmsm(a.ranks, a.t_end, os.path.join(ROOT, "examples", "phasefield_pfhub1a.toml"))
    ours1 = run_hpcmsm(1, a.t_end, os.path.join(ROOT, "examples", "phasefield_pfhub1a.toml"))
    print(json.dumps({"t_end": a.t_end, "fipy": fipy, "hpcmsm": ours, "hpcmsm_1rank": ours1,
                      "speedup_vs_fipy_serial": fipy["wall_s"] / ours["wall_time_loop_s"],
                      "speedup_1rank_vs_fipy": fipy["wall_s"] / ours1["wall_time_loop_s"],
                      "cpu_speedup_1rank_vs_fipy": (fipy["cpu_s"] / ours1["cpu_time_loop_s"]) if "cpu_s" in fipy else None,
                      "load_average": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
