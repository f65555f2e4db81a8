"""Collective safety, subcommunicator farming, rank-0 output."""
import os
import time

import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.parallel import Ensemble, block_range, check_all

HERE = os.path.dirname(os.path.abspath(__file__))


def test_exception_on_rank1_only_ends_all_ranks_promptly(mpirun):
    for kind, expect in (("internal", "error on rank 1 of 2: RuntimeError: boom on rank one"),
                         ("input", "error on rank 1: only rank 1 saw this")):
        t0 = time.monotonic()
        r = mpirun(2, [os.path.join(HERE, "drivers", "rank1_raises.py"), kind], timeout=60)
        dt = time.monotonic() - t0
        assert r.returncode != 0
        assert "unreachable" not in r.stdout
        assert r.stderr.count(expect) == 1, r.stderr
        assert dt < 20, f"took {dt:.1f} s"


def test_uniform_input_error_printed_once_clean_exit(mpirun):
    r = mpirun(3, [os.path.join(HERE, "drivers", "rank1_raises.py"), "uniform"], timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("hpcmsm: error: bad value of 'x'") == 1
    assert "MPI_ABORT" not in r.stderr


@pytest.mark.mpi
def test_ensemble_groups_and_gather(comm):
    for gs in [g for g in (1, 2, 3) if comm.size % g == 0]:
        with Ensemble(comm, gs, name="rve") as ens:
            assert ens.ngroups == comm.size // gs and ens.sub.size == gs
            assert ens.sub.Get_name() == f"rve-group{ens.group}"
            ntasks = 7
            mine = ens.my_tasks(ntasks)
            # every rank of a group sees the same tasks; the group solves them together
            total = ens.sub.allreduce(len(mine))
            assert total == gs * len(mine)
            res = ens.gather(ntasks, {int(t): t * t + ens.sub.allreduce(1) for t in mine})
            assert res == [t * t + gs for t in range(ntasks)]


@pytest.mark.mpi
def test_ensemble_bad_group_size_raises_everywhere(comm):
    bad = comm.size + 1
    with pytest.raises(InputError, match=f"group size {bad} does not divide the {comm.size} MPI ranks"):
        Ensemble(comm, bad)


@pytest.mark.mpi
def test_check_all_raises_on_every_rank(comm):
    with pytest.raises(InputError):
        check_all(comm, comm.rank != comm.size - 1, "local data bad")
    check_all(comm, True, "fine")


def test_block_range_partitions():
    for n in (0, 1, 7, 100):
        for size in (1, 2, 3, 5):
            parts = [block_range(n, size, r) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[i][1] == parts[i + 1][0] for i in range(size - 1))
            lens = [b - a for a, b in parts]
            assert max(lens) - min(lens) <= 1
