"""One load-stepping driver for every quasi-static macro problem.

A problem is *steppable* if it has

* ``lam`` — the committed load factor (float), ``history`` — a list of step records;
* ``try_step(target) -> (ok, iterations, why)`` — solve for load factor ``target`` starting from
  the committed state; on failure (solver divergence, a material that cannot be evaluated,
  det F ≤ 0, ...) it returns ``ok = False`` with a reason and leaves the committed state alone.
  Collective, and the result must be identical on every rank;
* ``commit(target)`` — accept the converged trial: material state per quadrature point,
  energy bookkeeping, ``lam = target``.

:func:`step_load` walks the load factor from ``problem.lam`` to ``lam_end`` in ``nsteps`` equal
increments, halves the increment after a failed step (at most ``max_cuts`` times in a row, and
never below ``min_step`` of the nominal increment), grows it back by ×2 after a success, and calls
``callback(problem, record)`` after every committed step (output, checkpoints).  Nothing in here
knows about the material: :class:`~hpcmsm.fem.mechanics.ElasticityProblem` (Newton, any
``materials/base.py`` small-strain law including history-dependent and homogenized ones) and
:class:`~hpcmsm.fem.mechanics.HyperelasticProblem` (SNES) both use it.
"""
from __future__ import annotations

from typing import Callable, Protocol

from ..errors import ConvergenceError, InputError


class Steppable(Protocol):
    lam: float
    history: list

    def try_step(self, target: float) -> tuple[bool, int, str]: ...

    def commit(self, target: float) -> None: ...


def step_load(problem: Steppable, nsteps: int = 1, lam_end: float = 1.0, *, min_step: float = 1e-4,
              max_cuts: int = 8, callback: Callable | None = None, log: Callable[[str], None] | None = None,
              max_steps: int | None = None, solver: str = "Newton") -> list[dict]:
    """Load stepping with cut-back (collective).  Returns ``problem.history``.

    ``max_steps`` stops after that many committed steps (a restartable partial run); a step that
    still fails after ``max_cuts`` consecutive halvings, or whose increment would fall below
    ``min_step`` × the nominal one, raises :class:`ConvergenceError` with the last reason."""
    if nsteps < 1:
        raise InputError("number of load steps must be >= 1")
    dlam0 = (lam_end - problem.lam) / nsteps
    dlam, cuts, done = dlam0, 0, 0
    sgn = 1.0 if dlam0 >= 0 else -1.0
    tol = 1e-12 * max(abs(lam_end), abs(dlam0))
    while sgn * (lam_end - problem.lam) > tol:
        # the last step lands exactly on lam_end (no overshoot from accumulated increments)
        target = problem.lam + dlam if sgn * (lam_end - problem.lam - dlam) > tol else lam_end
        ok, its, why = problem.try_step(target)
        if not ok:
            cuts += 1
            if cuts > max_cuts or abs(dlam / dlam0) < min_step:
                raise ConvergenceError(f"load step to λ={target:.6g} failed after {cuts - 1} cut-backs: {why}")
            if log:
                log(f"  step to λ={target:.6g} failed ({why}); cutting the increment to {dlam / 2:.4g}")
            dlam /= 2
            continue
        problem.commit(target)
        rec = {"lam": target, "newton_iterations": its, "cutbacks": cuts}
        problem.history.append(rec)
        if callback:
            callback(problem, rec)
        if log:
            log(f"  λ = {target:.6g}: {its} {solver} iterations" + (f" after {cuts} cut-back(s)" if cuts else ""))
        cuts = 0
        done += 1
        if max_steps is not None and done >= max_steps:
            break
        dlam = dlam0 if abs(2 * dlam) >= abs(dlam0) else 2 * dlam
    return problem.history
