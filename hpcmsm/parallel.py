"""MPI plumbing: PETSc start-up, collective-safe error handling, rank-0 output, RVE farming.

Every function takes the communicator explicitly; nothing here uses ``COMM_WORLD`` implicitly.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import InputError

_PETSC_READY = False


def init_petsc(petsc_args: Sequence[str] = ()) -> None:
    """Initialise petsc4py once, passing command-line PETSc options (``-prefix_option value``)."""
    global _PETSC_READY
    if _PETSC_READY:
        return
    import petsc4py

    try:
        petsc4py.init([sys.argv[0] if sys.argv else "hpcmsm", *petsc_args])
    except Exception:  # already initialised by an import elsewhere: push the options instead
        from petsc4py import PETSc

        opts = PETSc.Options()
        i = 0
        while i < len(petsc_args):
            key = petsc_args[i].lstrip("-")
            if i + 1 < len(petsc_args) and not petsc_args[i + 1].startswith("-"):
                opts[key] = petsc_args[i + 1]
                i += 2
            else:
                opts[key] = None
                i += 1
    _PETSC_READY = True


# ----------------------------------------------------------------------------------------------
# rank-0 output
# ----------------------------------------------------------------------------------------------

def rprint(comm, *args, file=None, flush=True, **kw) -> None:
    """``print`` on rank 0 of ``comm`` only."""
    if comm.rank == 0:
        print(*args, file=file or sys.stdout, flush=flush, **kw)


class Log:
    """Rank-0 logger with an optional verbosity switch: ``log = Log(comm); log("step", 3)``."""

    def __init__(self, comm, quiet: bool = False, prefix: str = ""):
        self.comm, self.quiet, self.prefix = comm, quiet, prefix

    def __call__(self, *args, **kw) -> None:
        if not self.quiet:
            rprint(self.comm, self.prefix + " ".join(str(a) for a in args), **kw)

    def warn(self, *args) -> None:
        rprint(self.comm, "hpcmsm: warning:", *args, file=sys.stderr)


class Progress:
    """A progress bar drawn by rank 0 (a bar on a terminal, a line per 10 % otherwise).

    >>> for step in Progress(comm, range(100), "time steps"): ...
    """

    def __init__(self, comm, iterable: Iterable | None = None, label: str = "", total: int | None = None,
                 enabled: bool = True, stream=None):
        self.comm, self.it, self.label = comm, iterable, label
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.enabled = enabled and comm.rank == 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.count, self.t0, self._last_decile = 0, time.perf_counter(), -1

    def __iter__(self) -> Iterator:
        for item in self.it:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1, info: str = "") -> None:
        self.count += n
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        if self.total:
            frac = min(self.count / self.total, 1.0)
            eta = el / frac - el if frac > 0 else 0.0
            if self.tty:
                bar = "#" * int(30 * frac)
                self.stream.write(f"\r{self.label} [{bar:<30}] {self.count}/{self.total} "
                                  f"{el:6.1f}s eta {eta:6.1f}s {info}")
                self.stream.flush()
            else:
                dec = int(10 * frac)
                if dec > self._last_decile:
                    self._last_decile = dec
                    self.stream.write(f"{self.label}: {100 * frac:3.0f}% ({self.count}/{self.total}) "
                                      f"{el:.1f}s {info}\n")
                    self.stream.flush()
        elif self.tty:
            self.stream.write(f"\r{self.label}: {self.count} {el:6.1f}s {info}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------------------------
# collective-safe errors
# ----------------------------------------------------------------------------------------------

def _all_ranks_failing(comm, timeout: float) -> bool:
    """True if every rank of ``comm`` reaches this point within ``timeout`` seconds.

    Uses a non-blocking barrier on a private duplicate of the communicator, so it can never be
    matched against a collective that a healthy rank is blocked in.
    """
    if comm.size == 1:
        return True
    try:
        dup = _guard_comms.get(id(comm))
        if dup is None:
            return False
        req = dup.Ibarrier()
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if req.Test():
                return True
            time.sleep(0.01)
        return False
    except Exception:
        return False


_guard_comms: dict = {}


@contextlib.contextmanager
def abort_on_error(comm, timeout: float | None = None):
    """Turn an exception on any rank into a prompt, clean end of all ranks.

    * :class:`InputError` raised on every rank (bad input found before any collective): rank 0
      prints the message once, all ranks exit with status 2.
    * Any other exception, or an error on only some ranks: the failing rank prints its message
      (with rank number and a short traceback for internal errors) and calls ``MPI_Abort``, which
      ends every rank within seconds instead of leaving them blocked in a collective.
    """
    if timeout is None:
        timeout = float(os.environ.get("HPCMSM_ERROR_SYNC_TIMEOUT", "3"))
    if comm.size > 1 and id(comm) not in _guard_comms:
        _guard_comms[id(comm)] = comm.Dup()
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _abort(comm, "interrupted", 130)
    except InputError as e:
        if _all_ranks_failing(comm, timeout):
            if comm.rank == 0:
                print(f"hpcmsm: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        _abort(comm, f"error on rank {comm.rank}: {e}", 2)
    except Exception as e:  # an internal error: keep a short traceback for the bug report
        tb = traceback.format_exception(type(e), e, e.__traceback__, limit=-4)
        msg = f"error on rank {comm.rank} of {comm.size}: {type(e).__name__}: {e}"
        if os.environ.get("HPCMSM_DEBUG"):
            msg += "\n" + "".join(tb)
        else:
            frames = traceback.extract_tb(e.__traceback__)
            if frames:
                f = frames[-1]
                msg += f"\n  at {f.filename}:{f.lineno} in {f.name} (HPCMSM_DEBUG=1 shows the traceback)"
        _abort(comm, msg, 1)


def _abort(comm, msg: str, code: int) -> None:
    print(f"hpcmsm: {msg}", file=sys.stderr, flush=True)
    sys.stderr.flush()
    sys.stdout.flush()
    if comm.size > 1:
        comm.Abort(code)
    raise SystemExit(code)


def check_all(comm, ok: bool, message: str) -> None:
    """Collective check: raise :class:`InputError` on *every* rank if ``ok`` is false on any.

    Use it where a condition can only be evaluated on some ranks (local data), so the error is
    still raised identically everywhere before the next collective.
    """
    bad = comm.allreduce(0 if ok else 1)
    if bad:
        raise InputError(message if not ok else f"{message} (detected on another rank)")


# ----------------------------------------------------------------------------------------------
# decomposition helpers
# ----------------------------------------------------------------------------------------------

def block_range(n: int, size: int, rank: int) -> tuple[int, int]:
    """Contiguous block of ``range(n)`` owned by ``rank`` of ``size`` (first ranks get one more)."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return start, start + q + (1 if rank < r else 0)


def exscan_offset(comm, nlocal: int) -> tuple[int, int]:
    """Global offset of this rank's block and the global total."""
    offset = comm.exscan(nlocal)
    total = comm.allreduce(nlocal)
    return (offset or 0) if comm.rank else 0, total


# ----------------------------------------------------------------------------------------------
# subcommunicator farming (RVE pool, SVE ensembles)
# ----------------------------------------------------------------------------------------------

@dataclass
class Ensemble:
    """Split ``comm`` into groups of ``group_size`` ranks for farming independent subproblems.

    ``sub`` is this rank's group communicator (name ``"<name>-group<k>"``); ``heads`` links rank 0
    of every group (``None`` on the other ranks).  Tasks ``0..n-1`` are assigned with
    :meth:`my_tasks` (round-robin by default, or any assignment array) and results collected
    with :meth:`gather`.  Call :meth:`free` (or use as a context manager) when done.
    """

    comm: object
    group_size: int = 1
    name: str = "ensemble"

    def __post_init__(self):
        size = self.comm.size
        if self.group_size < 1 or size % self.group_size:
            raise InputError(f"{self.name}: group size {self.group_size} does not divide the "
                             f"{size} MPI ranks (choose a divisor of {size})")
        self.ngroups = size // self.group_size
        self.group = self.comm.rank // self.group_size
        self.sub = self.comm.Split(self.group, self.comm.rank)
        self.sub.Set_name(f"{self.name}-group{self.group}")
        self.heads = self.comm.Split(0 if self.sub.rank == 0 else 1, self.comm.rank)
        if self.sub.rank != 0:
            self.heads.Free()
            self.heads = None

    def assignment(self, ntasks: int, owner: np.ndarray | None = None) -> np.ndarray:
        """Group owning each task: ``owner`` if given, else round-robin."""
        if owner is None:
            return np.arange(ntasks) % self.ngroups
        owner = np.asarray(owner, dtype=int)
        if owner.shape != (ntasks,) or owner.min(initial=0) < 0 or owner.max(initial=0) >= self.ngroups:
            raise ValueError("assignment must give a group in [0, ngroups) for every task")
        return owner

    def my_tasks(self, ntasks: int, owner: np.ndarray | None = None) -> np.ndarray:
        return np.flatnonzero(self.assignment(ntasks, owner) == self.group)

    def gather(self, ntasks: int, local: dict, owner: np.ndarray | None = None, root: int | None = None):
        """Collect ``{task: result}`` dicts from the group heads onto every rank (or ``root``).

        Results must be picklable.  Every rank of ``comm`` must call this.
        """
        mine = local if self.sub.rank == 0 else {}
        if root is None:
            parts = self.comm.allgather(mine)
        else:
            parts = self.comm.gather(mine, root=root)
            if parts is None:
                return None
        out = {}
        for p in parts:
            out.update(p)
        return [out[i] for i in range(ntasks)]

    def free(self) -> None:
        if self.sub is not None:
            self.sub.Free()
            self.sub = None
        if self.heads is not None:
            self.heads.Free()
            self.heads = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()


# ----------------------------------------------------------------------------------------------
# PETSc options under a prefix
# ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def petsc_options(prefix: str, options: dict | None):
    """Push ``options`` under ``prefix`` into PETSc's database for the duration of the block.

    Options already set (e.g. from the command line) win over these defaults; the ones this
    block added are removed afterwards.
    """
    from petsc4py import PETSc

    opts = PETSc.Options()
    added = []
    for k, v in (options or {}).items():
        key = f"{prefix}{k}"
        if opts.hasName(key):
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        opts[key] = None if v is None else str(v)
        added.append(key)
    try:
        yield
    finally:
        for key in added:
            opts.delValue(key)
