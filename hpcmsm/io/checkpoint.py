"""Atomic, rank-count independent checkpoints.

A checkpoint is one HDF5 file holding global arrays in natural ordering plus scalars and a JSON
blob, so a run can restart on a different number of ranks.  It is written to ``<path>.tmp``
collectively, flushed and fsync'ed, and renamed over ``<path>`` by rank 0: a run killed at any
moment leaves either the previous complete checkpoint or the new complete one, never a torn file.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..errors import InputError
from .hdf5 import open_h5, read_array, stamp, write_array


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoint:
    """``ck = Checkpoint("out/run.ckpt.h5", comm)``; ``ck.save(step, arrays, scalars, meta)``;
    ``ck.exists()``; ``data = ck.load()``; ``data.read(name, start, stop)``."""

    def __init__(self, path: str | os.PathLike, comm):
        self.path = os.fspath(path)
        self.comm = comm

    def exists(self) -> bool:
        ok = os.path.exists(self.path) if self.comm.rank == 0 else None
        return bool(self.comm.bcast(ok, root=0))

    def save(self, step: int, arrays: dict[str, Any] | None = None, scalars: dict[str, Any] | None = None,
             meta: dict | None = None, *, command_line=None, input_text=None) -> None:
        """Collective. ``arrays[name]`` is a local row block (stacked in rank order) or a tuple
        ``(local, start, global_shape)`` for an n-d box; ``scalars`` are the same on all ranks."""
        tmp = self.path + ".tmp"
        d = os.path.dirname(self.path) or "."
        if self.comm.rank == 0:
            os.makedirs(d, exist_ok=True)
        self.comm.Barrier()
        with open_h5(tmp, "w", self.comm) as f:
            stamp(f, command_line=command_line, input_text=input_text, comm=self.comm)
            f.attrs["step"] = int(step)
            f.attrs["meta"] = json.dumps(meta or {}, sort_keys=True)
            g = f.create_group("scalars")
            for k, v in (scalars or {}).items():
                g.attrs[k] = v
            for name, a in (arrays or {}).items():
                if isinstance(a, tuple):
                    local, start, gshape = a
                    write_array(f, "arrays/" + name, np.asarray(local), self.comm, start=start, global_shape=gshape)
                else:
                    write_array(f, "arrays/" + name, np.asarray(a), self.comm)
        self.comm.Barrier()
        if self.comm.rank == 0:
            _fsync_path(tmp)
            os.replace(tmp, self.path)
            _fsync_path(d)
        self.comm.Barrier()

    def load(self) -> "CheckpointData":
        if not self.exists():
            raise InputError(f"{self.path}: no checkpoint to restart from")
        return CheckpointData(self.path, self.comm)


class CheckpointData:
    def __init__(self, path: str, comm):
        self.f = open_h5(path, "r", comm)
        self.step = int(self.f.attrs["step"])
        self.meta = json.loads(self.f.attrs["meta"])
        self.scalars = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
                        for k, v in self.f["scalars"].attrs.items()}

    def names(self) -> list[str]:
        return list(self.f["arrays"].keys()) if "arrays" in self.f else []

    def shape(self, name: str) -> tuple[int, ...]:
        return self.f["arrays/" + name].shape

    def read(self, name: str, start=None, stop=None, box=None) -> np.ndarray:
        return read_array(self.f, "arrays/" + name, start, stop, box)

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
