"""Run pytest under mpirun: rank 0 prints, other ranks log to a file shown only on failure.

``mpirun -n N python -m hpcmsm.testing.mpi_pytest [PYTEST ARGS]``; every rank runs the same
tests (selected with ``-m mpi`` by ``./run test``), and mpirun's exit status is non-zero if any
rank failed.  A per-test timeout (pytest-timeout) turns a hang into a failure.
"""
from __future__ import annotations

import os
import sys
import tempfile


def main() -> int:
    from mpi4py import MPI

    import pytest

    comm = MPI.COMM_WORLD
    args = sys.argv[1:]
    # one name per run (rank 0's pid): concurrent test runs on one machine must not share logs
    run_id = comm.bcast(os.getpid(), root=0)
    logdir = os.environ.get("HPCMSM_TEST_LOGDIR") or tempfile.gettempdir()

    def log_path(rank: int) -> str:
        return os.path.join(logdir, f"hpcmsm-pytest-{run_id}-np{comm.size}-rank{rank}.log")

    if comm.rank > 0:
        log = log_path(comm.rank)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        args = ["-q", "-p", "no:cacheprovider", *args]
    else:
        args = ["-p", "no:cacheprovider", *args]
    rc = pytest.main(args)
    rcs = comm.allgather(int(rc))
    if comm.rank == 0:
        for r, code in enumerate(rcs):
            if r and code not in (0, 5):
                log = log_path(r)
                sys.stdout.write(f"\n===== rank {r} failed (exit {code}); its log {log}:\n")
                try:
                    with open(log) as fh:
                        sys.stdout.write("".join(fh.readlines()[-60:]))
                except OSError:
                    pass
        sys.stdout.flush()
    if comm.rank > 0 and rc in (0, 5):
        try:                     # per-run names: don't leave a log behind for a passing rank
            os.unlink(log_path(comm.rank))
        except OSError:
            pass
    worst = max(rcs, key=lambda c: (c not in (0, 5), c))
    return worst


if __name__ == "__main__":
    sys.exit(main())
