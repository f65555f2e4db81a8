"""Benchmark: 3D Q1 linear elasticity on the unit cube, hpcmsm vs DOLFINx, 1 and 2 ranks.

    ./run python benchmarks/fem_elasticity.py [--sizes 32 46 69] [--ranks 1 2] [--json out.json]

Problem (identical for both codes): unit cube, n³ hexahedra (Q1), E = 1, ν = 0.3, clamped at
x = 0, body force (0, 0, -1).  Solver: CG + GAMG with the rigid-body near-nullspace attached,
relative tolerance 1e-8 (the same PETSc options string for both).  Phases timed per run (max over
ranks): mesh, function space + boundary dofs (DOLFINx: + form JIT from cache), assembly = full
set-up (sparsity + matrix creation + element matrices + insertion + right-hand side + BCs +
near-nullspace), solve (KSPSetUp + KSPSolve), iterations, peak resident memory per rank.

hpcmsm's sub-phases (all in the JSON record): ``sparsity_s``, ``creation_s`` (Mat + Vec),
``system_s`` = assembly into the preallocated Mat/Vec (one compiled pass per cell: geometry,
element matrix, body-force vector, symmetric Dirichlet elimination, scatter), ``nullspace_s``,
``solve_s``; then ``system_reassembly_s`` (the same pass again: a Newton iteration's cost) and the
two-pass split of the same work, ``split_matrix_s`` + ``split_rhs_s`` (numpy) + ``split_bcs_s``
(PETSc zeroRowsColumns).  ``hpcmsm_rates`` gives DOFs/s/core for both definitions of
"assembly": ``system_*`` (into the preallocated Mat/Vec) and ``setup_*`` (full set-up).
This is the general path (element matrices computed per cell, any geometry); the ``identical_*``
phases repeat it on a fresh space with the identical-cell path (one element matrix for the
structured box), reported separately and never instead of the general one.  Every (code, size, ranks)
runs in its own mpirun job.  DOLFINx (Debian's python3-dolfinx-real) is optional: without it the
comparison is skipped with a message.  Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KSP_OPTS = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": "1e-8", "ksp_max_it": "500"}
E, NU = 1.0, 0.3


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reduce(comm, rec: dict) -> dict:
    from mpi4py import MPI

    out = {}
    for k, v in rec.items():
        out[k] = comm.allreduce(v, op=MPI.MAX) if isinstance(v, float) else v
    return out


def worker_hpcmsm(n: int) -> dict:
    from mpi4py import MPI

    from hpcmsm.parallel import init_petsc

    init_petsc()
    import numpy as np

    from hpcmsm.fem import FunctionSpace, create_box, forms
    from hpcmsm.fem.space import ElasticBlock
    from hpcmsm.fem.bcs import Dirichlet, dirichlet_dofs
    from hpcmsm.fem.solvers import make_ksp, rigid_body_modes

    comm = MPI.COMM_WORLD
    lam, mu = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
    force = np.array([0.0, 0.0, -1.0])
    # JIT cache load (numba, cache=True) on a tiny mesh: not timed, like DOLFINx's form JIT cache
    tiny = create_box(MPI.COMM_SELF, (2, 2, 2), cell="hexahedron")
    s0 = FunctionSpace(tiny, 3)
    A0, b0 = s0.create_matrix(), s0.create_vec()
    s0.assemble_system(A0, b0, [ElasticBlock(slice(0, s0.ncells), lam, mu, f=force)], bc_dofs=np.arange(3))
    A0.destroy(), b0.destroy()
    del s0, tiny
    T = {}

    def phase(name, t0):
        comm.Barrier()
        t = time.perf_counter()
        T[name] = t - t0
        return t

    comm.Barrier()
    t = time.perf_counter()
    mesh = create_box(comm, (n, n, n), cell="hexahedron")
    t = phase("mesh_s", t)
    sp = FunctionSpace(mesh, 3, chunk=4096)
    bdofs, bvals = dirichlet_dofs(sp, [Dirichlet("xmin", 0.0)])
    t = phase("space_and_bcs_s", t)
    sp._structure()                     # node graph -> per-cell CSR positions, dof-level CSR
    t = phase("sparsity_s", t)
    A, b = sp.create_matrix(), sp.create_vec()
    t = phase("creation_s", t)
    # the general path (what ElasticityProblem does for an isotropic material on any mesh): one
    # compiled pass per cell = geometry + element matrix + body-force vector + symmetric Dirichlet
    # elimination + scatter into the preallocated Mat/Vec
    blocks = [ElasticBlock(slice(0, sp.ncells), lam, mu, f=force)]
    sp.assemble_system(A, b, blocks, bc_dofs=bdofs, bc_values=bvals)
    t = phase("system_s", t)
    A.setNearNullSpace(rigid_body_modes(sp))
    t = phase("nullspace_s", t)
    ksp = make_ksp(comm, A, "bench_", KSP_OPTS)
    x = b.duplicate()
    ksp.setUp()
    ksp.solve(b, x)
    t = phase("solve_s", t)
    its, reason, unorm, anorm = ksp.getIterationNumber(), ksp.getConvergedReason(), x.norm(), A.norm()
    ksp.destroy()
    # the same system again into the same objects (a Newton iteration's cost)
    sp.assemble_system(A, b, blocks, bc_dofs=bdofs, bc_values=bvals)
    t = phase("system_reassembly_s", t)
    # the two-pass split of the same work: matrix alone, RHS alone (numpy), PETSc zeroRowsColumns
    sp.assemble_matrix(A, [ElasticBlock(slice(0, sp.ncells), lam, mu)])
    t = phase("split_matrix_s", t)

    def fblocks():
        for sl in sp.chunks():
            xq, dNdx, w = sp.geometry(sl)
            yield sl, forms.source_vector(sp.N, np.broadcast_to(force, xq.shape), w)
    sp.assemble_vector(b, fblocks())
    t = phase("split_rhs_s", t)
    A.zeroRowsColumns(sp.owned_global_rows(bdofs), 1.0)
    b.getArray()[bdofs] = bvals
    t = phase("split_bcs_s", t)
    dofs = A.getSize()[0]
    rec = {"code": "hpcmsm", "n": n, "ranks": comm.size, "dofs": dofs, **T,
           "assembly_s": T["sparsity_s"] + T["creation_s"] + T["system_s"] + T["nullspace_s"],
           "iterations": its, "reason": reason, "peak_mb_per_rank": _peak_mb(), "unorm": unorm}
    for o in (A, x, b):
        o.destroy()
    # the identical-cell path (one element matrix for the structured box; what ElasticityProblem
    # does for an isotropic LinearElastic material when identical_cells()): same phases on a fresh
    # space, reported separately and never instead of the general one
    sp2 = FunctionSpace(mesh, 3, chunk=4096)
    same = sp2.identical_cells()
    comm.Barrier()
    t = time.perf_counter()
    sp2._structure()
    A2, b2 = sp2.create_matrix(), sp2.create_vec()
    t = phase("identical_sparsity_creation_s", t)
    if same:
        _, dNdx0, w0 = sp2.geometry(slice(0, 1))
        Ke0 = forms.stiffness_isotropic(dNdx0, lam, mu, w0)
        Fe0 = forms.source_vector(sp2.N, np.broadcast_to(force, (1, sp2.nq, 3)), w0)
        items = [(sl, np.broadcast_to(Ke0, (sl.stop - sl.start,) + Ke0.shape[1:]),
                  np.broadcast_to(Fe0, (sl.stop - sl.start,) + Fe0.shape[1:])) for sl in sp2.chunks()]
    else:
        items = blocks
    sp2.assemble_system(A2, b2, items, bc_dofs=bdofs, bc_values=bvals)
    t = phase("identical_system_s", t)
    A2.setNearNullSpace(rigid_body_modes(sp2))
    t = phase("identical_nullspace_s", t)
    rec.update({k: T[k] for k in T if k.startswith("identical_")})
    rec.update({"assembly_identical_cells_s": T["identical_sparsity_creation_s"] + T["identical_system_s"]
                + T["identical_nullspace_s"],
                "identical_cells": bool(comm.allreduce(int(same)) == comm.size),
                "matrix_rel_diff_identical_vs_general": abs(A2.norm() - anorm) / anorm})
    A2.destroy(), b2.destroy()
    return _reduce(comm, rec)


def worker_dolfinx(n: int) -> dict:
    from mpi4py import MPI
    from petsc4py import PETSc

    import numpy as np
    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem.petsc import apply_lifting, assemble_matrix, assemble_vector, set_bc

    comm = MPI.COMM_WORLD
    comm.Barrier()
    t0 = time.perf_counter()
    msh = mesh.create_box(comm, [np.zeros(3), np.ones(3)], [n, n, n], cell_type=mesh.CellType.hexahedron)
    comm.Barrier()
    t1 = time.perf_counter()
    V = fem.VectorFunctionSpace(msh, ("Lagrange", 1))
    lam, mu = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    eps = lambda w: ufl.sym(ufl.grad(w))  # noqa: E731
    sig = lambda w: 2 * mu * eps(w) + lam * ufl.tr(eps(w)) * ufl.Identity(3)  # noqa: E731
    a = fem.form(ufl.inner(sig(u), eps(v)) * ufl.dx)        # JIT (cached after the first run)
    L = fem.form(ufl.inner(fem.Constant(msh, PETSc.ScalarType((0, 0, -1))), v) * ufl.dx)
    facets = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 0.0))
    bc = fem.dirichletbc(np.zeros(3, dtype=PETSc.ScalarType), fem.locate_dofs_topological(V, 2, facets), V)
    comm.Barrier()
    t1b = time.perf_counter()
    A = assemble_matrix(a, bcs=[bc])
    A.assemble()
    b = assemble_vector(L)
    apply_lifting(b, [a], [[bc]])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    set_bc(b, [bc])
    # rigid-body near-nullspace from the owned dof coordinates (same construction as hpcmsm)
    nown = V.dofmap.index_map.size_local
    X = PETSc.Vec().createMPI((nown * 3, V.dofmap.index_map.size_global * 3), bsize=3, comm=comm)
    X.setArray(np.ascontiguousarray(V.tabulate_dof_coordinates()[:nown]).ravel())
    A.setNearNullSpace(PETSc.NullSpace().createRigidBody(X))
    comm.Barrier()
    t2 = time.perf_counter()
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix("bench_")
    ksp.setOperators(A)
    opts = PETSc.Options()
    for k, val in KSP_OPTS.items():
        opts["bench_" + k] = val
    ksp.setFromOptions()
    x = b.duplicate()
    ksp.setUp()
    ksp.solve(b, x)
    comm.Barrier()
    t3 = time.perf_counter()
    rec = {"code": "dolfinx", "n": n, "ranks": comm.size, "dofs": A.getSize()[0], "mesh_s": t1 - t0,
           "forms_and_bcs_s": t1b - t1, "assembly_s": t2 - t1b, "solve_s": t3 - t2,
           "iterations": ksp.getIterationNumber(), "reason": ksp.getConvergedReason(),
           "peak_mb_per_rank": _peak_mb(), "unorm": x.norm()}
    return _reduce(comm, rec)


def have_dolfinx(py: str) -> str | None:
    r = subprocess.run([py, "-c", "import dolfinx; print(dolfinx.__version__)"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def launch(code: str, n: int, ranks: int, py: str) -> dict:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = ["mpirun", "-n", str(ranks), py, os.path.abspath(__file__), "--worker", code, "--n", str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        return {"code": code, "n": n, "ranks": ranks, "error": (r.stderr or r.stdout)[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 46, 69], help="cells per axis")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--worker", choices=["hpcmsm", "dolfinx"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-dolfinx", action="store_true", help="only hpcmsm")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    if a.worker:
        rec = worker_hpcmsm(a.n) if a.worker == "hpcmsm" else worker_dolfinx(a.n)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print(json.dumps(rec))
        return 0
    py = sys.executable
    dver = None if a.no_dolfinx else have_dolfinx(py)
    if dver is None and not a.no_dolfinx:
        print("fem_elasticity: DOLFINx not importable (apt-get install python3-dolfinx-real); "
              "running hpcmsm only, comparison skipped", file=sys.stderr)
    results = []
    if dver:       # warm the FFCx JIT cache so compilation is not timed
        launch("dolfinx", 2, 1, py)
    for n in a.sizes:
        for r in a.ranks:
            for code in (["hpcmsm"] + (["dolfinx"] if dver else [])):
                rec = launch(code, n, r, py)
                print(f"# {code:8s} n={n:3d} ranks={r} " + (
                    f"dofs={rec['dofs']} assembly={rec['assembly_s']:.2f}s "
                    + (f"(one-pass system {rec['system_s']:.2f}s, identical cells "
                       f"{rec['assembly_identical_cells_s']:.2f}s) " if code == "hpcmsm" else "")
                    + f"solve={rec['solve_s']:.2f}s "
                    f"its={rec['iterations']} peak={rec['peak_mb_per_rank']:.0f}MB" if "error" not in rec
                    else "FAILED"), file=sys.stderr, flush=True)
                results.append(rec)
    ratios = []
    for h in [x for x in results if x.get("code") == "hpcmsm" and "error" not in x]:
        d = [x for x in results if x.get("code") == "dolfinx" and x.get("n") == h["n"]
             and x.get("ranks") == h["ranks"] and "error" not in x]
        if d:
            d = d[0]
            ratios.append({"n": h["n"], "ranks": h["ranks"], "dofs": h["dofs"],
                           "assembly_ratio_hpcmsm_over_dolfinx": h["assembly_s"] / d["assembly_s"],
                           "solve_ratio": h["solve_s"] / d["solve_s"],
                           "total_ratio": (h["assembly_s"] + h["solve_s"]) / (d["assembly_s"] + d["solve_s"]),
                           "setup_dofs_per_s_per_core": h["dofs"] / h["assembly_s"] / h["ranks"],
                           "setup_identical_cells_dofs_per_s_per_core":
                               h["dofs"] / h["assembly_identical_cells_s"] / h["ranks"]})
    rates = []
    for h in [x for x in results if x.get("code") == "hpcmsm" and "error" not in x]:
        r = lambda k: h["dofs"] / h[k] / h["ranks"]  # noqa: E731
        rates.append({"n": h["n"], "ranks": h["ranks"], "dofs": h["dofs"],
                      # "assembly into the preallocated Mat/Vec": elements + RHS + BCs + scatter
                      "system_dofs_per_s_per_core": r("system_s"),
                      "system_reassembly_dofs_per_s_per_core": r("system_reassembly_s"),
                      "identical_system_dofs_per_s_per_core": r("identical_system_s"),
                      # full set-up: + sparsity + matrix/vector creation + near-nullspace
                      "setup_dofs_per_s_per_core": r("assembly_s"),
                      "setup_identical_cells_dofs_per_s_per_core": r("assembly_identical_cells_s"),
                      "split_matrix_rhs_bcs_dofs_per_s_per_core":
                          h["dofs"] / (h["split_matrix_s"] + h["split_rhs_s"] + h["split_bcs_s"]) / h["ranks"]})
    doc = {"benchmark": "fem_elasticity", "dolfinx": dver, "ksp": KSP_OPTS, "results": results, "ratios": ratios,
           "hpcmsm_rates": rates}
    print(json.dumps(doc, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
