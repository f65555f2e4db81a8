"""Benchmark: Gmsh ASCII reading (rank-0 part of ``read_mesh``), format 4.1 vs 2.2, this tree vs an
earlier commit of ``hpcmsm/fem/mesh.py`` loaded side by side in the same process.

    ./run python benchmarks/fem_mesh_gmsh_read.py [--n 30] [--degree 1] [--repeat 3] \
        [--before 353107b] [--json out.json]

Writes a Kuhn-split cube of 6 n³ tetrahedra (n = 30: 162 000 P1 tets; ``--degree 2``: 10-node
tets) with its six facet groups in both formats (4.1 with 7 node blocks), then times, best of
``--repeat``: ``read_gmsh`` whole (and its tracemalloc peak), and its phases (sections = split
into $-sections, parse = the format's node/element parser, assemble = ordering, orientation,
facet matching).  ``--before``: a
git revision whose mesh.py is imported as a second module (the same package context) and timed
the same way; results must be identical (checked).  Prints one JSON document.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def _module_at(rev: str, tmp: str):
    """hpcmsm/fem/mesh.py as of git revision ``rev``, imported as hpcmsm.fem._mesh_at_<rev>."""
    src = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:hpcmsm/fem/mesh.py"], check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(tmp, f"mesh_{rev}.py")
    with open(path, "w") as fh:
        fh.write(src)
    name = f"hpcmsm.fem._mesh_at_{rev}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _best(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def _split(M, text):
    """The sections as read_gmsh splits them (text for $Nodes/$Elements where the code does so)."""
    if hasattr(M, "_raw_sections"):
        return {k: v if k in ("Nodes", "Elements") else M._lines(v) for k, v in M._raw_sections(text).items()}
    return M._sections(text)


def _time(M, path, degree, repeat):
    import tracemalloc

    rec = {}
    rec["read_s"], g = _best(lambda: M.read_gmsh(path, degree), repeat)
    tracemalloc.start()
    M.read_gmsh(path, degree)
    rec["read_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20     # Python + numpy allocations
    tracemalloc.stop()
    text = open(path).read()
    rec["sections_s"], sec = _best(lambda: _split(M, text), repeat)
    parse = M._gmsh4 if text.startswith("$MeshFormat\n4") else M._gmsh2
    rec["parse_s"], r = _best(lambda: parse(sec), repeat)
    rec["assemble_s"], _ = _best(lambda: M._assemble_gmsh(path, *r, {}, degree), repeat)
    return rec, g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--degree", type=int, default=1, choices=(1, 2))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", default="353107b", help="git revision to compare with ('' to skip)")
    ap.add_argument("--json")
    a = ap.parse_args()

    import numpy as np

    import hpcmsm.fem.mesh as now

    out = {"benchmark": "fem_mesh_gmsh_read", "n": a.n, "degree": a.degree, "repeat": a.repeat,
           "load_avg": os.getloadavg(), "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        g = now.box_global((a.n,) * 3, cell="tetrahedron", degree=a.degree)
        groups = {nm: (t, g.facets[g.facet_tags == t]) for nm, t in g.facet_names.items()}
        files = {"4.1": os.path.join(tmp, "m41.msh"), "2.2": os.path.join(tmp, "m22.msh")}
        t = time.perf_counter()
        now.write_gmsh4(files["4.1"], g, groups, node_blocks=7)
        out["write41_s"] = time.perf_counter() - t
        now.write_gmsh2(files["2.2"], g, groups)
        out.update(cells=len(g.cells), nodes=len(g.points),
                   size_mb={k: os.path.getsize(p) / 2**20 for k, p in files.items()})
        mods = {"now": now}
        if a.before:
            mods[a.before] = _module_at(a.before, tmp)
        ref = None
        for fmt, path in files.items():
            for label, M in mods.items():
                rec, h = _time(M, path, a.degree, a.repeat)
                rec.update(format=fmt, code=label)
                out["cases"].append(rec)
                if ref is None:
                    ref = h
                same = (np.array_equal(h.cells, ref.cells) and np.array_equal(h.points, ref.points)
                        and np.array_equal(h.facets, ref.facets) and np.array_equal(h.facet_tags, ref.facet_tags))
                rec["identical"] = bool(same)
                print(json.dumps(rec), file=sys.stderr, flush=True)
    txt = json.dumps(out, indent=1)
    print(txt)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(txt)


if __name__ == "__main__":
    main()
