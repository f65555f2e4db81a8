"""A checkpointed time loop that stops cleanly on SIGUSR1/SIGTERM (tests of hpcmsm.signals).

Explicit 1D heat equation on a block-distributed array.  Each step: advance, then the collective
``signals.should_stop(comm)``; on a stop request every rank writes the checkpoint and the job
exits with ``signals.EXIT_STOPPED``.  Rank r writes its pid to ``pid.<r>`` and rank 0 the last
finished step to ``progress`` so a test can send signals at a known point.  The final field is
written to ``final.h5``.
"""
import argparse
import os
import sys
import time

import numpy as np
from mpi4py import MPI

from hpcmsm import signals
from hpcmsm.io import Checkpoint, open_h5, write_array
from hpcmsm.parallel import block_range


def step_heat(u, comm, s, e, n, r=0.4):
    left = comm.sendrecv(u[-1], dest=(comm.rank + 1) % comm.size,
                         source=(comm.rank - 1) % comm.size) if comm.size > 1 else 0.0
    right = comm.sendrecv(u[0], dest=(comm.rank - 1) % comm.size,
                          source=(comm.rank + 1) % comm.size) if comm.size > 1 else 0.0
    ext = np.concatenate([[left], u, [right]])
    un = u + r * (ext[2:] - 2 * u + ext[:-2])
    if s == 0:
        un[0] = 0.0
    if e == n:
        un[-1] = 0.0
    return un


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per step (to leave time for a signal)")
    ap.add_argument("--restart", action="store_true")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    signals.install()
    n = 64
    s, e = block_range(n, comm.size, comm.rank)
    x = np.linspace(0, 1, n)
    u = np.sin(np.pi * x[s:e]) + 0.3 * np.sin(5 * np.pi * x[s:e])
    ck = Checkpoint(os.path.join(a.outdir, "ckpt.h5"), comm)
    step0 = 0
    if a.restart:
        with ck.load() as d:
            step0 = d.step
            u = d.read("u", s, e)
    with open(os.path.join(a.outdir, f"pid.{comm.rank}"), "w") as fh:
        fh.write(str(os.getpid()))
    for step in range(step0 + 1, a.steps + 1):
        u = step_heat(u, comm, s, e, n)
        if comm.rank == 0:
            with open(os.path.join(a.outdir, "progress.tmp"), "w") as fh:
                fh.write(str(step))
            os.replace(os.path.join(a.outdir, "progress.tmp"), os.path.join(a.outdir, "progress"))
        time.sleep(a.sleep)
        if signals.should_stop(comm):
            ck.save(step, {"u": u})
            return signals.stopped(comm, step, ck.path, what="stop_loop")
    with open_h5(os.path.join(a.outdir, "final.h5"), "w", comm) as f:
        write_array(f, "u", u, comm)
        f.attrs["step"] = a.steps
    return 0


if __name__ == "__main__":
    sys.exit(main())
