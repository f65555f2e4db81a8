"""Graceful stop before a wall-time limit: trap a warning signal, agree on it, checkpoint, exit.

SLURM can warn a job before its time limit (``#SBATCH --signal=B:USR1@120`` sends SIGUSR1 to the
batch shell 120 s before the end; ``--signal=USR1@120`` sends it to every task), and it sends
SIGTERM to every task when the limit is reached (SIGKILL follows ``KillWait`` seconds later).
A long-running solver uses this module as::

    from hpcmsm import signals

    signals.install()                        # once, before the time loop (main thread)
    for step in range(step0 + 1, nsteps + 1):
        ...advance one step...
        if signals.should_stop(comm):        # collective: every rank gets the same answer
            ck.save(step, ...)               # the usual rank-count independent checkpoint
            return signals.stopped(comm, step, ck.path)   # message on rank 0, EXIT_STOPPED

How it works and why:

* The handler only sets a flag (async-signal safe: no MPI, no I/O).  Python runs handlers
  between bytecodes on the main thread, so a signal that arrives while a rank is inside an MPI
  call is seen as soon as that call returns.
* Usually only some ranks receive the signal (or receive it at different moments), so the flag
  must be agreed on: :func:`should_stop` is an ``allreduce(MAX)`` of the flag over ``comm``.
  Every rank of ``comm`` must call it at the same step boundaries, like any collective.
* A second delivery of the same signal restores the default action and re-raises it, so a
  user's repeated ``kill`` (or a solver that never polls) still ends the process.
* A deadline (``HPCMSM_STOP_AT`` = Unix time in seconds, or :func:`set_deadline`) is an
  alternative for systems that send no warning signal: :func:`should_stop` also becomes true
  once rank 0's clock passes it.

Exit status: :data:`EXIT_STOPPED` = 75 (``EX_TEMPFAIL`` of sysexits.h, "try again later") when a
run stopped early but cleanly with a checkpoint; job scripts test for it to resubmit with
``--restart``.  0 still means "finished".
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Iterable

#: Exit status of a run that stopped on request after writing a checkpoint (resubmit it).
EXIT_STOPPED = 75

#: Signals trapped by default: SLURM's warning (USR1, as chosen in our job scripts) and the
#: time-limit/scancel SIGTERM.
DEFAULT_SIGNALS = ("SIGUSR1", "SIGTERM")

_state = {"flag": 0, "signum": None, "when": None, "deadline": None, "reason": None}
_previous: dict[int, object] = {}


def _handler(signum, frame) -> None:
    if _state["flag"] and _state["signum"] == signum:
        # second delivery of the same signal: the user insists (or nobody polls) -> default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _state["flag"] = 1
    _state["signum"] = signum
    _state["when"] = time.time()


def _resolve(sig) -> signal.Signals:
    if isinstance(sig, str):
        return signal.Signals[sig if sig.startswith("SIG") else "SIG" + sig]
    return signal.Signals(sig)


def install(signals: Iterable = DEFAULT_SIGNALS, deadline: float | None = None) -> list[str]:
    """Trap ``signals`` (names like ``"USR1"``/``"SIGTERM"`` or numbers) so they request a stop.

    Idempotent.  Must be called from the main thread (Python's rule for signal handlers); from
    another thread it does nothing and returns ``[]``.  ``deadline`` (Unix time, s) or the
    environment variable ``HPCMSM_STOP_AT`` sets a wall-clock stop.  Returns the trapped names.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    names = []
    for s in signals:
        sig = _resolve(s)
        if sig not in _previous:
            _previous[sig] = signal.signal(sig, _handler)
        names.append(sig.name)
    env = os.environ.get("HPCMSM_STOP_AT")
    if deadline is not None:
        set_deadline(deadline)
    elif env:
        try:
            set_deadline(float(env))
        except ValueError:
            print(f"hpcmsm: warning: ignoring HPCMSM_STOP_AT={env!r} (expected Unix time in seconds)",
                  file=sys.stderr)
    return names


def uninstall() -> None:
    """Restore the handlers that were active before :func:`install` and clear the state."""
    for sig, prev in list(_previous.items()):
        signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        del _previous[sig]
    reset()


def reset() -> None:
    """Forget a pending stop request and the deadline (tests, or after a handled stop)."""
    _state.update(flag=0, signum=None, when=None, deadline=None, reason=None)


def set_deadline(t_unix: float | None) -> None:
    """Stop at the first :func:`should_stop` after Unix time ``t_unix`` (s); ``None`` clears it."""
    _state["deadline"] = None if t_unix is None else float(t_unix)


def request_stop(reason: str = "requested") -> None:
    """Ask for a stop from code (e.g. a solver's own wall-clock budget); rank-local like a signal."""
    _state["flag"] = 1
    _state["reason"] = reason
    _state["when"] = time.time()


def requested() -> bool:
    """This rank's own flag (not agreed with other ranks: use :func:`should_stop` in solvers)."""
    return bool(_state["flag"])


def reason() -> str:
    """Why a stop was requested, for messages (``"SIGUSR1"``, ``"deadline"``, ...)."""
    if _state["signum"] is not None:
        return signal.Signals(_state["signum"]).name
    return _state["reason"] or ""


def should_stop(comm) -> bool:
    """Collective: true on every rank of ``comm`` if any rank received a stop request.

    Call it at step boundaries (every rank, same places).  One ``allreduce`` of an int: a few
    microseconds on a node, a collective-latency on a big machine, so poll once per step, not per
    Newton iteration.  Once true it stays true (the flag is set on every rank).
    """
    mine = _state["flag"]
    dl = _state["deadline"]
    if dl is not None and comm.rank == 0 and time.time() >= dl:
        mine = 1
        if not _state["flag"]:
            _state["reason"] = "deadline"
    from mpi4py import MPI

    agreed = comm.allreduce(mine, op=MPI.MAX) if comm.size > 1 else mine
    if agreed and not _state["flag"]:
        _state["flag"] = 1
        _state["reason"] = "stop request on another rank"
    return bool(agreed)


def stopped(comm, step: int, checkpoint: str | None = None, what: str = "run") -> int:
    """Report a clean early stop on rank 0 and return :data:`EXIT_STOPPED` for ``run()``."""
    if comm.rank == 0:
        why = reason() or "stop request"
        msg = f"hpcmsm: {what} stopped cleanly after step {step} ({why})"
        if checkpoint:
            msg += f"; checkpoint {checkpoint}; continue with --restart"
        print(msg, file=sys.stderr, flush=True)
    return EXIT_STOPPED
