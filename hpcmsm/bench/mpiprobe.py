"""MPI latency and bandwidth probes (mpi4py buffer interface, so no pickling in the timings).

* ping-pong between ranks 0 and 1: half the round-trip time per message size, fitted to the
  Hockney model ``t(m) = α + m/β`` (α latency, β bandwidth) by least squares;
* ``Allreduce`` of 1 double (and of a few sizes) over the whole communicator: time per call, the
  collective latency that every ``should_stop``, norm or dot product pays.
"""
from __future__ import annotations

import time

import numpy as np


def pingpong(comm, sizes=(8, 64, 512, 4096, 32768, 262144, 1 << 21), reps: int = 200,
             trials: int = 5) -> dict:
    """Collective (ranks ≥ 2 idle).  Needs ``comm.size >= 2``.  Returns per-size times (s): half a
    round trip, the best of ``trials`` timings of ``reps`` round trips (robust on a busy machine)."""
    if comm.size < 2:
        return {}
    res = {}
    for m in sizes:
        buf = np.zeros(max(m // 8, 1))
        r = max(10, int(reps * min(1.0, 65536 / max(m, 1))))
        comm.Barrier()
        if comm.rank in (0, 1):
            other = 1 - comm.rank
            best = float("inf")
            for trial in range(trials + 1):   # trial 0 warms up
                t0 = time.perf_counter()
                for _ in range(r):
                    if comm.rank == 0:
                        comm.Send(buf, dest=other, tag=7)
                        comm.Recv(buf, source=other, tag=7)
                    else:
                        comm.Recv(buf, source=other, tag=7)
                        comm.Send(buf, dest=other, tag=7)
                dt = time.perf_counter() - t0
                if trial:
                    best = min(best, dt)
            res[int(buf.nbytes)] = best / r / 2
        comm.Barrier()
    return comm.bcast(res, root=0)


def hockney_fit(times: dict) -> tuple[float, float]:
    """Least-squares ``t = α + m/β`` over message sizes ``m`` (bytes).  Returns ``(α s, β B/s)``."""
    m = np.array(sorted(times), dtype=float)
    t = np.array([times[k] for k in sorted(times)])
    A = np.vstack([np.ones_like(m), m]).T
    # weight by 1/t so small messages (latency) count as much as large ones (bandwidth)
    w = 1.0 / t
    (alpha, inv_beta), *_ = np.linalg.lstsq(A * w[:, None], t * w, rcond=None)
    return float(alpha), float(1.0 / inv_beta) if inv_beta > 0 else float("inf")


def allreduce_latency(comm, counts=(1, 16, 1024), reps: int = 2000, trials: int = 5) -> dict:
    """Seconds per ``Allreduce`` of ``count`` doubles: best of ``trials`` means over ``reps``
    calls (max over ranks)."""
    from mpi4py import MPI

    out = {}
    for n in counts:
        a = np.ones(n)
        b = np.empty(n)
        r = max(50, reps // max(1, n // 64) // trials)
        comm.Barrier()
        for _ in range(10):
            comm.Allreduce(a, b, op=MPI.SUM)
        best = float("inf")
        for _ in range(trials):
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(r):
                comm.Allreduce(a, b, op=MPI.SUM)
            best = min(best, (time.perf_counter() - t0) / r)
        out[n] = comm.allreduce(best, op=MPI.MAX)
        if not np.all(b == comm.size):
            raise RuntimeError("allreduce returned a wrong sum")
    return out


def probe(comm) -> dict:
    """All MPI probes; JSON-ready (keys as strings)."""
    pp = pingpong(comm)
    out = {"ranks": comm.size, "allreduce_s": {str(k): v for k, v in allreduce_latency(comm).items()}}
    if pp:
        alpha, beta = hockney_fit(pp)
        out.update(pingpong_s={str(k): v for k, v in pp.items()}, latency_s=alpha, bandwidth_Bs=beta)
    return out
