"""``hpcmsm info``: versions, MPI size and a parallel HDF5 self-test."""
from __future__ import annotations

NAME = "info"
HELP = "versions of Python/numpy/PETSc/mpi4py/MPI/h5py, MPI size, parallel HDF5 self-test"
ORDER = 10

PETSC_PACKAGES = ("hypre", "mumps", "superlu_dist", "superlu", "fftw", "hdf5", "parmetis",
                  "ptscotch", "metis", "scalapack", "suitesparse", "triangle", "tetgen", "ctetgen")


def add_arguments(p) -> None:
    p.add_argument("--no-selftest", action="store_true", help="skip the parallel HDF5 self-test")


def hdf5_selftest(comm) -> str:
    """Write a distributed dataset collectively, read it back, compare. Returns a status line."""
    import os
    import shutil
    import tempfile

    import numpy as np

    from ..io import open_h5, read_array, write_array
    from ..parallel import block_range

    d = tempfile.mkdtemp(prefix="hpcmsm-info-") if comm.rank == 0 else None
    d = comm.bcast(d, root=0)
    path = os.path.join(d, "selftest.h5")
    n = 1000
    s, e = block_range(n, comm.size, comm.rank)
    local = np.arange(s, e, dtype=float) ** 2
    with open_h5(path, "w", comm) as f:
        write_array(f, "x", local, comm, unit="1", description="squares")
        driver = f.driver
    with open_h5(path, "r", comm) as f:
        back = read_array(f, "x")
    ok = bool(np.array_equal(back, np.arange(n, dtype=float) ** 2))
    ok = comm.allreduce(ok, op=_land())
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(d, ignore_errors=True)
    return f"{'PASSED' if ok else 'FAILED'} ({n} values from {comm.size} rank(s), driver {driver})"


def _land():
    from mpi4py import MPI

    return MPI.LAND


def run(args, comm) -> int:
    import platform
    import sys

    import h5py
    import mpi4py
    import numpy
    import petsc4py
    from mpi4py import MPI
    from petsc4py import PETSc

    from .. import __version__
    from ..parallel import rprint

    ver = PETSc.Sys.getVersion()
    ext = [p for p in PETSC_PACKAGES if PETSc.Sys.hasExternalPackage(p)]
    lib = MPI.Get_library_version().strip().splitlines()[0]
    rows = [
        ("hpcmsm", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", numpy.__version__),
        ("petsc", f"{ver[0]}.{ver[1]}.{ver[2]} (scalar {PETSc.ScalarType.__name__}, "
                  f"{PETSc.IntType.__name__} indices)"),
        ("petsc packages", ", ".join(ext) or "none"),
        ("petsc4py", f"{petsc4py.__version__} ({petsc4py.get_config().get('PETSC_DIR', '?')})"),
        ("mpi4py", mpi4py.__version__),
        ("MPI", f"{lib} (standard {'.'.join(map(str, MPI.Get_version()))})"),
        ("h5py", f"{h5py.__version__}, HDF5 {h5py.version.hdf5_version}, MPI {'yes' if h5py.get_config().mpi else 'NO'}"),
        ("ranks", f"{comm.size}"),
    ]
    for k in ("scipy", "matplotlib", "sympy", "numba"):
        try:
            rows.append((k, __import__(k).__version__))
        except ImportError:
            rows.append((k, "missing"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        rprint(comm, f"{k:>{w}} : {v}")
    if not args.no_selftest:
        rprint(comm, f"{'hdf5 selftest':>{w}} : {hdf5_selftest(comm)}")
    return 0
