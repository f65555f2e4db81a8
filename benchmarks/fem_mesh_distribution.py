"""Benchmark: mesh set-up without replication — time and peak memory per rank, and partition
quality (edge cut, imbalance) of RCB vs PT-Scotch.

    ./run python benchmarks/fem_mesh_distribution.py [--box 64] [--gmsh 24] [--ranks 2] [--json out.json]

Cases (each in its own mpirun job, peak resident memory = max RSS of the process, MB):
* ``box-block``: ``create_box`` generating each rank's block in place (the default);
* ``box-replicated``: what the previous design did — the global box built on *every* rank, then
  distributed (kept as a reference for the memory of ranks > 0);
* ``box-rcb`` / ``box-ptscotch``: the global box on rank 0 only, partitioned with RCB or PT-Scotch
  and sent out;
* ``gmsh-ptscotch`` / ``gmsh-rcb``: a tetrahedral Gmsh file (Kuhn-split cube, written first) read
  on rank 0 and distributed.
Partition quality is computed serially on the dual graphs of two meshes.  Prints one JSON document.
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


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(case: str, n: int, path: str) -> None:
    from mpi4py import MPI

    import numpy as np

    from hpcmsm.parallel import init_petsc

    init_petsc()
    from hpcmsm.fem.mesh import box_global, create_box, distribute, read_mesh

    comm = MPI.COMM_WORLD
    base = _rss_mb()
    comm.Barrier()
    t = time.perf_counter()
    if case == "box-block":
        m = create_box(comm, (n, n, n), cell="hexahedron")
    elif case == "box-replicated":
        m = distribute(comm, box_global((n, n, n), cell="hexahedron"), "rcb")
    elif case in ("box-rcb", "box-ptscotch"):
        m = create_box(comm, (n, n, n), cell="hexahedron", partitioner=case.split("-")[1])
    else:
        m = read_mesh(comm, path, partitioner=case.split("-")[1])
    comm.Barrier()
    dt = time.perf_counter() - t
    rec = {"case": case, "ranks": comm.size, "cells": m.n_cells_global, "nodes": m.n_global,
           "time_s": dt, "local_cells": comm.gather(len(m.cells)), "local_nodes": comm.gather(len(m.points)),
           "peak_rss_mb": comm.gather(_rss_mb()), "rss_before_mb": comm.gather(base)}
    if comm.rank == 0:
        print("RESULT " + json.dumps(rec))


def quality() -> list:
    import numpy as np

    from hpcmsm.fem.mesh import (box_global, dual_graph, plate_with_hole_global, rcb_partition)
    from hpcmsm.parallel import init_petsc

    init_petsc()
    out = []
    meshes = {"plate-with-hole triangles 64x32": plate_with_hole_global(1.0, 0.3, 64, 32, "triangle"),
              "cube tetrahedra 12^3 (Kuhn)": box_global((12, 12, 12), cell="tetrahedron")}
    for name, g in meshes.items():
        ip, ix = dual_graph(g.cell, g.degree, g.cells)
        for k in (2, 3, 4, 8):
            rcb = rcb_partition(g.points[g.cells[:, g.element.vtk_corners]].mean(axis=1), k)
            out.append({"mesh": name, "cells": len(g.cells), "parts": k, "partitioner": "rcb",
                        **_q(ip, ix, rcb, k)})
    return out


def _q(ip, ix, part, k):
    from hpcmsm.fem.mesh import partition_quality

    q = partition_quality(ip, ix, part, k)
    q.pop("cells_per_part")
    return q


def quality_ptscotch(k: int) -> None:
    """Run under mpirun -n k: PT-Scotch partitions of the same meshes into k parts."""
    from mpi4py import MPI

    import numpy as np

    from hpcmsm.parallel import block_range, init_petsc

    init_petsc()
    from hpcmsm.fem.mesh import box_global, dual_graph, graph_partition, plate_with_hole_global

    comm = MPI.COMM_WORLD
    meshes = {"plate-with-hole triangles 64x32": plate_with_hole_global(1.0, 0.3, 64, 32, "triangle"),
              "cube tetrahedra 12^3 (Kuhn)": box_global((12, 12, 12), cell="tetrahedron")}
    for name, g in meshes.items():
        ip, ix = dual_graph(g.cell, g.degree, g.cells)
        s, e = block_range(len(g.cells), comm.size, comm.rank)
        part = np.concatenate(comm.allgather(graph_partition(comm, ip[s:e + 1] - ip[s], ix[ip[s]:ip[e]],
                                                             len(g.cells))))
        if comm.rank == 0:
            print("RESULT " + json.dumps({"mesh": name, "cells": len(g.cells), "parts": k,
                                          "partitioner": "ptscotch", **_q(ip, ix, part, k)}))


def _mpirun(n, args):
    env = dict(os.environ)
    cmd = ["mpirun", "-n", str(n), sys.executable, os.path.abspath(__file__), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [l[7:] for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode or not lines:
        return [{"args": args, "error": r.stderr[-2000:]}]
    return [json.loads(l) for l in lines]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--box", type=int, default=64, help="hexahedra per axis of the box cases")
    ap.add_argument("--gmsh", type=int, default=24, help="cubes per axis of the Gmsh tet mesh (x6 tets)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2])
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "N", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--quality-worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], int(a.worker[1]), a.worker[2])
        return 0
    if a.quality_worker:
        quality_ptscotch(a.quality_worker)
        return 0
    import tempfile

    from hpcmsm.fem.mesh import box_global, write_gmsh2

    tmp = tempfile.mkdtemp(prefix="hpcmsm-meshbench-")
    path = os.path.join(tmp, "cube_tets.msh")
    g = box_global((a.gmsh,) * 3, cell="tetrahedron")
    write_gmsh2(path, g, {"boundary": (1, g.facets)})
    del g
    runs = []
    for n in a.ranks:
        for case in ("box-block", "box-replicated", "box-rcb", "box-ptscotch"):
            runs += _mpirun(n, ["--worker", case, str(a.box), path])
        for case in ("gmsh-ptscotch", "gmsh-rcb"):
            runs += _mpirun(n, ["--worker", case, str(a.gmsh), path])
    qual = quality()
    for k in (2, 3, 4, 8):
        qual += _mpirun(k, ["--quality-worker", str(k)])
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    doc = {"benchmark": "fem_mesh_distribution", "command": " ".join(sys.argv), "runs": runs,
           "partition_quality": qual, "loadavg": os.getloadavg()}
    text = json.dumps(doc, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
