"""Benchmark: matrix assembly of the current hpcmsm.fem.space against an earlier revision of it,
in the same process, alternating (robust to the shared machine's load, unlike separate runs).

    ./run python benchmarks/fem_assembly_ab.py [N] [--baseline REV]     (default N = 46, REV = 3f6a67b)

3D Q1 isotropic elasticity on the unit cube (N³ hexahedra, 3(N+1)³ DOFs), serial.  Timed per
variant (best of 2): first assembly = sparsity structure + matrix creation + element matrices
(geometry + isotropic kernel) + insertion + MatAssembly; re-assembly into the same matrix (what
every Newton iteration pays).  Variants: ``old`` = REV's space.py (read with ``git show`` and
loaded beside the current one; it shares mesh and forms), ``new`` = current code as
ElasticityProblem uses it (ElasticBlock: compiled fused kernel if numba is available),
``new_numpy`` = the same with HPCMSM_NUMBA=0 (pure-numpy fallback), ``new_identical`` = the
identical-cell path (one element matrix for the structured box, scattered into every cell).
``jit_first_call_s``: the first (tiny) assembly of the process — numba's cache load, or the
compile itself if the cache is cold (force that with NUMBA_CACHE_DIR=<empty dir>).  Prints JSON.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("n", type=int, nargs="?", default=46)
ap.add_argument("--baseline", default="3f6a67b", help="git revision of hpcmsm/fem/space.py to compare with")
a = ap.parse_args()
src = subprocess.run(["git", "-C", ROOT, "show", f"{a.baseline}:hpcmsm/fem/space.py"], capture_output=True,
                     text=True, check=True).stdout
tmp = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
tmp.write(src)
tmp.close()
sys.path.insert(0, ROOT)
from mpi4py import MPI
from hpcmsm.parallel import init_petsc
init_petsc()
import numpy as np  # noqa: E402
from hpcmsm.fem import FunctionSpace, create_box, forms
spec = importlib.util.spec_from_file_location("hpcmsm.fem.space_baseline", tmp.name)
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
n = a.n
comm = MPI.COMM_WORLD
mesh = create_box(comm, (n, n, n), cell="hexahedron")
lam, mu = 0.3 / (1.3 * 0.4), 1 / 2.6
from hpcmsm.fem import _kernels  # noqa: E402
from hpcmsm.fem.space import ElasticBlock  # noqa: E402
out = {"benchmark": "fem_assembly_ab", "baseline": a.baseline, "n": n, "dofs": 3 * mesh.n_global,
       "numba": _kernels.enabled()}
t = time.perf_counter()
tiny = create_box(MPI.COMM_SELF, (2, 2, 2), cell="hexahedron")
sp = FunctionSpace(tiny, 3)
A = sp.create_matrix()
sp.assemble_matrix(A, [ElasticBlock(slice(0, sp.ncells), lam, mu)])
sp.assemble_matrix(A, [(slice(0, sp.ncells), np.broadcast_to(np.eye(24), (sp.ncells, 24, 24)))])
A.destroy(); del sp
out["jit_first_call_s"] = time.perf_counter() - t
variants = ("old", "new", "new_numpy", "new_identical")
for k in variants + ("old_reassembly", "new_reassembly", "new_numpy_reassembly"):
    out[k] = []


def blocks(sp, name):
    if name in ("new", "new_numpy"):
        return [ElasticBlock(slice(0, sp.ncells), lam, mu)]
    return ((sl, forms.stiffness_isotropic(g[1], lam, mu, g[2])) for sl in sp.chunks() for g in [sp.geometry(sl)])


env0 = os.environ.get("HPCMSM_NUMBA")
for rep in range(2):
    for name in variants:
        if name == "new_numpy":
            os.environ["HPCMSM_NUMBA"] = "0"
        sp = (old.FunctionSpace if name == "old" else FunctionSpace)(mesh, 3, chunk=4096)
        t = time.perf_counter()
        A = sp.create_matrix()
        if name == "new_identical" and sp.identical_cells():
            _, d0, w0 = sp.geometry(slice(0, 1)); K0 = forms.stiffness_isotropic(d0, lam, mu, w0)
            sp.assemble_matrix(A, ((sl, np.broadcast_to(K0, (sl.stop - sl.start,) + K0.shape[1:])) for sl in sp.chunks()))
        else:
            sp.assemble_matrix(A, blocks(sp, name))
        out[name].append(time.perf_counter() - t)
        if name != "new_identical":
            t = time.perf_counter()
            sp.assemble_matrix(A, blocks(sp, name))
            out[name + "_reassembly"].append(time.perf_counter() - t)
        A.destroy(); del sp
        if env0 is None:
            os.environ.pop("HPCMSM_NUMBA", None)
        else:
            os.environ["HPCMSM_NUMBA"] = env0
best = {k: min(v) for k, v in out.items() if isinstance(v, list)}
out["best_s"] = best
out["dofs_per_s"] = {k: out["dofs"] / v for k, v in best.items()}
out["speedup_new_over_old"] = best["old"] / best["new"]
out["speedup_reassembly"] = best["old_reassembly"] / best["new_reassembly"]
out["speedup_numba_over_numpy"] = best["new_numpy"] / best["new"]
os.unlink(tmp.name)
print(json.dumps(out, indent=1))
