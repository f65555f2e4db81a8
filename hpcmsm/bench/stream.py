"""A STREAM-like memory-bandwidth probe (copy, scale, add, triad) in numpy, run by every rank at
once so the aggregate is the node's (or allocation's) sustainable bandwidth.

Counts bytes as STREAM does (copy/scale 16 B, add/triad 24 B per element).  numpy evaluates the
triad ``a = b + s*c`` in two passes (``a = s*c; a += b``), which moves 40 B per element, so the
triad figure here is a lower bound of what a fused C loop reaches; ``copy`` is the cleanest
ceiling for memory-bound kernels such as the 5-point stencil.  Best of ``ntimes`` repetitions,
each started after a barrier; aggregate bandwidth = all ranks' bytes / slowest rank's time.
"""
from __future__ import annotations

import time

import numpy as np

BYTES_PER_ELEMENT = {"copy": 16, "scale": 16, "add": 24, "triad": 24}


def stream(comm, n: int = 1 << 23, ntimes: int = 10) -> dict:
    """Collective.  ``n`` doubles per array per rank (three arrays).  Returns GB/s per kernel."""
    from mpi4py import MPI

    a = np.full(n, 1.0)
    b = np.full(n, 2.0)
    c = np.zeros(n)
    s = 3.0
    kernels = {
        "copy": lambda: np.copyto(c, a),
        "scale": lambda: np.multiply(c, s, out=b),
        "add": lambda: np.add(a, b, out=c),
        "triad": lambda: (np.multiply(c, s, out=a), np.add(a, b, out=a)),
    }
    best = {k: float("inf") for k in kernels}
    for _ in range(ntimes):
        for k, f in kernels.items():
            comm.Barrier()
            t0 = time.perf_counter()
            f()
            dt = time.perf_counter() - t0
            dt = comm.allreduce(dt, op=MPI.MAX)
            best[k] = min(best[k], dt)
    out = {"ranks": comm.size, "n_per_rank": n, "array_MiB_per_rank": 8 * n / 2**20, "ntimes": ntimes,
           "GBs": {k: BYTES_PER_ELEMENT[k] * n * comm.size / best[k] / 1e9 for k in kernels},
           "GBs_per_rank": {k: BYTES_PER_ELEMENT[k] * n / best[k] / 1e9 for k in kernels},
           "best_s": best}
    # the last kernel was the triad: a = s*c + b exactly (catches a kernel that did nothing)
    out["check"] = bool(np.all(a == s * c + b))
    return out
