"""Per-phase wall times: PETSc log stages (so ``-log_view`` explains where time goes) plus a
JSON summary (max and mean over ranks) for benchmarks."""
from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict


class Timers:
    """``timers = Timers(comm); with timers("assembly"): ...; timers.summary()``."""

    def __init__(self, comm, use_petsc: bool = True):
        self.comm = comm
        self.total = defaultdict(float)
        self.count = defaultdict(int)
        self._stages = {}
        self.use_petsc = use_petsc

    def _stage(self, name: str):
        if not self.use_petsc:
            return None
        st = self._stages.get(name)
        if st is None:
            try:
                from petsc4py import PETSc

                st = PETSc.Log.Stage(name)
            except Exception:
                st = False
            self._stages[name] = st
        return st or None

    @contextlib.contextmanager
    def __call__(self, name: str):
        st = self._stage(name)
        if st is not None:
            st.push()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.total[name] += time.perf_counter() - t0
            self.count[name] += 1
            if st is not None:
                st.pop()

    def summary(self) -> dict:
        """Collective: ``{phase: {"max": s, "mean": s, "calls": n}}``."""
        names = sorted(set().union(*self.comm.allgather(sorted(self.total))))
        out = {}
        for n in names:
            t = self.total.get(n, 0.0)
            out[n] = {"max": self.comm.allreduce(t, op=_max()), "mean": self.comm.allreduce(t) / self.comm.size,
                      "calls": self.count.get(n, 0)}
        return out

    def json(self) -> str:
        return json.dumps(self.summary(), indent=1, sort_keys=True)


def _max():
    from mpi4py import MPI

    return MPI.MAX
