"""Rank 1 raises while rank 0 waits in a collective: abort_on_error must end both promptly."""
import sys
import time

from mpi4py import MPI

from hpcmsm.errors import InputError
from hpcmsm.parallel import abort_on_error

comm = MPI.COMM_WORLD
kind = sys.argv[1] if len(sys.argv) > 1 else "internal"
with abort_on_error(comm):
    if kind == "uniform":
        raise InputError("bad value of 'x' (raised on every rank)")
    if comm.rank == 1:
        time.sleep(0.2)
        if kind == "input":
            raise InputError("only rank 1 saw this")
        raise RuntimeError("boom on rank one")
    comm.Barrier()   # rank 0 would wait here forever without the guard
print("unreachable", flush=True)
