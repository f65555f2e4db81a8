"""Shared fixtures.  The same tests run serially and, when marked ``mpi``, under mpirun -n 2/3
(``./run test``).  ``comm`` is COMM_WORLD of the test process; ``shared_tmp`` is one directory
seen by every rank; ``mpirun`` launches a subprocess job with a clean environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_counts = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.when == "call":
        if report.passed:
            _counts["passed"] += 1
        elif report.failed:
            _counts["failed"] += 1
        elif report.skipped:
            _counts["skipped"] += 1
    elif report.failed:  # setup/teardown errors
        _counts["failed"] += 1
    elif report.skipped and report.when == "setup":
        _counts["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("HPCMSM_TEST_REPORT")
    if not path:
        return
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        with open(path, "w") as fh:
            json.dump(_counts, fh)


@pytest.fixture(scope="session")
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture(autouse=True)
def _sync_ranks():
    yield
    # a stop request is process state (hpcmsm.signals): one test's stop (e.g. a driver's
    # deterministic-kill hook) must not leak into the next test run in the same process
    from hpcmsm import signals

    signals.reset()
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1:
        MPI.COMM_WORLD.Barrier()


@pytest.fixture
def shared_tmp(comm):
    """A temporary directory shared by all ranks (rank 0 creates and removes it)."""
    d = tempfile.mkdtemp(prefix="hpcmsm-test-") if comm.rank == 0 else None
    d = comm.bcast(d, root=0)
    yield d
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(d, ignore_errors=True)


def clean_mpi_env(extra: dict | None = None) -> dict:
    """Environment for launching a new MPI job from inside a test (drop the parent's MPI wiring)."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_COMM_", "OMPI_MCA_ess", "OMPI_MCA_orte", "OMPI_MCA_pmix", "PMIX_",
                                 "OMPI_FILE_", "OMPI_UNIVERSE", "OMPI_FIRST", "OMPI_APP", "OMPI_NUM_APP",
                                 "OMPI_MCA_initial", "OMPI_MCA_mpi_", "OMPI_MCA_shmem", "OMPI_ARGV",
                                 "OMPI_COMMAND", "OMPI_MCA_rmaps_ppr", "HPCMSM_TEST_REPORT"))
                   or k in ("OMPI_MCA_rmaps_base_oversubscribe",))}
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    env.update(extra or {})
    return env


@pytest.fixture
def mpirun():
    """``mpirun(n, ["-m", "hpcmsm", "info"], timeout=60)`` → CompletedProcess (text)."""

    def launch(n: int, args: list[str], timeout: float = 300, env: dict | None = None, cwd: str | None = None):
        cmd = ["mpirun", "-n", str(n), sys.executable, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=clean_mpi_env(env), cwd=cwd or ROOT)

    return launch


@pytest.fixture
def hpcmsm_cli(mpirun):
    """``hpcmsm_cli(["scales", "--classic"], n=2)`` runs ``python -m hpcmsm`` under mpirun."""

    def run(args: list[str], n: int = 1, **kw):
        return mpirun(n, ["-m", "hpcmsm", *args], **kw)

    return run
