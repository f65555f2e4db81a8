"""A small checkpointed time loop used by the restart tests.

Explicit 1D heat equation on a block-distributed array (halo exchange with neighbours), field
output every step, a history CSV, a checkpoint every ``--ckpt`` steps.  ``--kill-at K`` kills
rank 0 with SIGKILL at step K (mpirun then ends the others), like a node failure.
"""
import argparse
import os
import signal
import sys

import numpy as np
from mpi4py import MPI

from hpcmsm.io import Checkpoint, FieldWriter, StructuredGrid
from hpcmsm.parallel import block_range


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--ckpt", type=int, default=3)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--restart", action="store_true")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    n = 101
    s, e = block_range(n, comm.size, comm.rank)
    x = np.linspace(0, 1, n)
    ck = Checkpoint(os.path.join(a.outdir, "ckpt.h5"), comm)
    history = []
    step0 = 0
    u = np.sin(np.pi * x[s:e]) + 0.3 * np.sin(5 * np.pi * x[s:e])
    if a.restart and ck.exists():
        with ck.load() as d:
            step0 = d.step
            u = d.read("u", s, e)
            history = [(int(k), float(v)) for k, v in d.read("history")]
    w = FieldWriter(a.outdir, comm, "heat", StructuredGrid((n,), spacing=(1 / (n - 1),)))
    r = 0.4
    for step in range(step0 + 1, a.steps + 1):
        left = comm.sendrecv(u[-1] if len(u) else 0.0, dest=(comm.rank + 1) % comm.size,
                             source=(comm.rank - 1) % comm.size) if comm.size > 1 else 0.0
        right = comm.sendrecv(u[0] if len(u) else 0.0, dest=(comm.rank - 1) % comm.size,
                              source=(comm.rank + 1) % comm.size) if comm.size > 1 else 0.0
        ext = np.concatenate([[left], u, [right]])
        un = u + r * (ext[2:] - 2 * u + ext[:-2])
        if s == 0:
            un[0] = 0.0
        if e == n:
            un[-1] = 0.0
        u = un
        energy = comm.allreduce(float(np.sum(u * u)))
        history.append((step, energy))
        w.write(step, step * 1e-3, {"u": (u, (s,))})
        if comm.rank == 0:
            tmp = os.path.join(a.outdir, "history.csv.tmp")
            with open(tmp, "w") as fh:
                fh.write("step,energy\n")
                fh.writelines(f"{k},{v!r}\n" for k, v in history)
            os.replace(tmp, os.path.join(a.outdir, "history.csv"))
        if step % a.ckpt == 0:
            ck.save(step, {"u": u, "history": np.array(history) if comm.rank == 0 else np.zeros((0, 2))})
        if step == a.kill_at and comm.rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
