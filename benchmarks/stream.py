"""Machine probes: STREAM-like memory bandwidth at 1..cores ranks, MPI latency/bandwidth and
Allreduce latency, and the stencil kernel's bandwidth as a fraction of STREAM.  Prints JSON.

    ./run python benchmarks/stream.py [--n DOUBLES] [--out DIR]

Every measurement is an `hpcmsm bench ...` job launched with the project launcher (mpirun here,
srun inside SLURM), so the numbers are those of the same MPI stack the solvers use.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from hpcmsm.bench.scaling import clean_env  # noqa: E402


def job(n, words, out):
    r = subprocess.run([os.path.join(ROOT, "run"), "-n", str(n), *words, "--json", out],
                       capture_output=True, text=True, env=clean_env(), timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(words)} at {n} ranks failed:\n{r.stderr[-2000:]}")
    with open(out) as fh:
        return json.load(fh)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 24, help="doubles per STREAM array per rank")
    ap.add_argument("--ranks", type=int, nargs="+", default=None, help="rank counts (default 1..cores)")
    ap.add_argument("--stencil-nx", type=int, default=2048)
    ap.add_argument("--out", default=None, help="keep the per-job JSON here")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    ranks = a.ranks or list(range(1, cores + 1))
    out = a.out or tempfile.mkdtemp(prefix="hpcmsm-stream-")
    os.makedirs(out, exist_ok=True)
    res = {"cores": cores, "stream": {}, "mpi": None}
    for n in ranks:
        s = job(n, ["bench", "stream", "--n", str(a.n)], os.path.join(out, f"stream_np{n}.json"))
        res["stream"][n] = {"GBs": s["GBs"], "GBs_per_rank": s["GBs_per_rank"], "array_MiB_per_rank": s["array_MiB_per_rank"]}
    if cores >= 2:
        res["mpi"] = job(2, ["bench", "mpi"], os.path.join(out, "mpi_np2.json"))
    st = job(1, ["bench", "stencil", "--nx", str(a.stencil_nx), "--steps", "50"], os.path.join(out, "stencil_np1.json"))
    copy1 = res["stream"][ranks[0]]["GBs"]["copy"]
    res["stencil"] = {"nx": a.stencil_nx, "compute_bandwidth_GBs": st["compute_bandwidth_GBs"],
                      "fraction_of_stream_copy_1rank": st["compute_bandwidth_GBs"] / copy1,
                      "compute_s_per_point_step": st["timers"]["compute"]["max"] / st["steps_run"] / st["nx"] / st["ny"]}
    res["json_dir"] = out
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
