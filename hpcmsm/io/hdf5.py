"""Parallel HDF5 through h5py's MPI-IO driver.

Every rank writes its own slice (a block of rows, or an n-d box such as a DMDA patch) of one
global dataset in natural ordering, collectively, so files do not depend on the number of ranks.
Files are stamped with creator, version, command line, input text, date and MPI size; datasets
carry ``unit`` and ``description`` attributes.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Sequence

import numpy as np

from .. import __version__
from ..errors import InputError


def _h5py():
    import h5py

    return h5py


def open_h5(path: str | os.PathLike, mode: str, comm):
    """Open ``path`` collectively on ``comm`` (MPI-IO driver when available).

    With ``comm.size == 1`` and an h5py without MPI, the serial driver is used.
    """
    h5py = _h5py()
    p = os.fspath(path)
    if mode in ("r", "r+", "a") and mode != "a" and not os.path.exists(p):
        raise InputError(f"{p}: HDF5 file does not exist")
    if h5py.get_config().mpi:
        return h5py.File(p, mode, driver="mpio", comm=comm)
    if comm.size > 1:
        raise InputError("h5py was built without MPI: parallel HDF5 needs python3-h5py-mpi "
                         "(and launching through mpirun, or H5PY_ALWAYS_USE_MPI=1)")
    return h5py.File(p, mode)


def stamp(f, *, command_line: Sequence[str] | None = None, input_text: str | None = None,
          comm=None, extra: dict | None = None) -> None:
    """Write provenance attributes on the file root (collective: same values on all ranks)."""
    f.attrs["creator"] = "hpcmsm"
    f.attrs["hpcmsm_version"] = __version__
    f.attrs["command_line"] = " ".join(command_line if command_line is not None else sys.argv)
    f.attrs["input"] = input_text or ""
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if comm is not None and comm.size > 1:
        date = comm.bcast(date, root=0)
    f.attrs["created"] = date
    f.attrs["mpi_size"] = comm.size if comm is not None else 1
    f.attrs["host_python"] = platform.python_version()
    for k, v in (extra or {}).items():
        f.attrs[k] = v


def _as_box(local: np.ndarray, start, global_shape) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    start = tuple(int(s) for s in np.atleast_1d(start))
    sl = tuple(slice(s, s + n) for s, n in zip(start, local.shape[: len(start)]))
    return sl, tuple(global_shape)


def write_array(f, name: str, local: np.ndarray, comm, *, start=None, global_shape=None,
                unit: str = "", description: str = "", attrs: dict | None = None):
    """Collectively write this rank's part of a global dataset.

    * ``start is None``: ``local`` is a block of rows; blocks are stacked in rank order.
    * ``start`` given: ``local`` is the box ``start[i]:start[i]+local.shape[i]`` of the global
      array of shape ``global_shape`` (leading dims; trailing dims of ``local`` are components).
    """
    local = np.ascontiguousarray(local)
    if start is None:
        n = local.shape[0] if local.ndim else 1
        offset = comm.exscan(n) if comm.size > 1 else 0
        offset = offset or 0
        total = comm.allreduce(n) if comm.size > 1 else n
        start = (offset,)
        global_shape = (total,) + local.shape[1:]
    elif global_shape is None:
        raise ValueError("write_array: global_shape is required with start")
    sl, gshape = _as_box(local, start, global_shape)
    if len(gshape) < local.ndim:  # trailing component dims
        gshape = gshape + local.shape[len(gshape):]
    if name in f:
        del f[name]
    dset = f.create_dataset(name, shape=gshape, dtype=local.dtype)
    dset.attrs["unit"] = unit
    dset.attrs["description"] = description
    for k, v in (attrs or {}).items():
        dset.attrs[k] = v
    _collective_write(dset, sl, local)
    return dset


def _collective_write(dset, sl, local) -> None:
    mpio = dset.file.driver == "mpio"
    empty = local.size == 0
    if mpio:
        with dset.collective:
            if empty:
                _write_none(dset, local)
            else:
                dset[sl] = local
    elif not empty:
        dset[sl] = local


def _write_none(dset, local) -> None:
    """Take part in a collective write with an empty selection."""
    h5py = _h5py()
    fspace = dset.id.get_space()
    fspace.select_none()
    mspace = h5py.h5s.create_simple((1,))
    mspace.select_none()
    buf = np.zeros(1, dtype=dset.dtype)
    dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
    dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
    dset.id.write(mspace, fspace, buf, dxpl=dxpl)


def read_array(f, name: str, start=None, stop=None, box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Read rows ``start:stop`` (or an n-d ``box``) of dataset ``name`` (independent read)."""
    if name not in f:
        raise InputError(f"{f.filename}: no dataset '{name}'")
    dset = f[name]
    if box is not None:
        return dset[box]
    if start is None:
        return dset[...]
    return dset[start:stop]
