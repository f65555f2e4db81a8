"""Adaptive, energy-monotone time stepping for the phase-field solvers.

Step-size control: after a step cⁿ → cⁿ⁺¹ of size Δt the linear extrapolation
c_p = cⁿ + Δt (cⁿ − cⁿ⁻¹)/Δtₙ₋₁ is compared with the implicit solution; for a first-order
scheme the local error is ≈ Δt/(Δt + Δtₙ₋₁)·max|cⁿ⁺¹ − c_p|.  A step is accepted only if the
Newton solve converged, the error estimate is below ``tol`` and the discrete free energy did not
increase (beyond round-off); otherwise it is repeated with a smaller Δt.  Accepted steps propose
Δt·min(grow, max(shrink, safety·√(tol/err))), so Δt grows by orders of magnitude as coarsening
slows.  The extrapolation is also Newton's initial guess: it has exactly the old mass, so the
Newton updates (whose mean is zero) keep ∫c dx to round-off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import ConvergenceError
from .solver import PhaseFieldSolver


@dataclass
class StepperOptions:
    dt0: float = 1e-2          # first step [time]
    dt_min: float = 1e-8
    dt_max: float = 1e12
    tol: float = 1e-3          # local error tolerance (max-norm, units of c)
    safety: float = 0.9
    grow: float = 2.0          # largest growth factor per step
    shrink: float = 0.25       # factor after a failed Newton solve / energy rise
    energy_rtol: float = 1e-11  # allowed relative energy rise (round-off)
    check_energy: bool = True  # off for forced (manufactured) problems
    max_rejects: int = 30      # consecutive rejections before giving up
    adaptive: bool = True
    norm: str = "rms"          # error norm: "rms" (root mean square) or "max"


@dataclass
class HistoryRow:
    step: int
    time: float
    dt: float
    free_energy: float
    mass: float
    newton_its: int
    linear_its: int
    rejected: int

    FIELDS = ("step", "time", "dt", "free_energy", "mass", "newton_its", "linear_its", "rejected")

    def as_tuple(self):
        return tuple(getattr(self, k) for k in self.FIELDS)


class Stepper:
    """Drive a :class:`PhaseFieldSolver` in time.  All methods are collective."""

    def __init__(self, solver: PhaseFieldSolver, options: StepperOptions | None = None, t0: float = 0.0):
        self.s = solver
        self.o = options or StepperOptions()
        self.t = float(t0)
        self.dt = float(self.o.dt0)
        self.dt_prev: float | None = None
        self.c_prev: np.ndarray | None = None
        self.step = 0
        self.F = solver.free_energy()
        self.mass0 = solver.mass()
        self.history: list[HistoryRow] = [HistoryRow(0, self.t, 0.0, self.F, self.mass0, 0, 0, 0)]
        self.total_newton = 0
        self.total_linear = 0
        self.total_rejected = 0
        self.rejected_by = {"newton": 0, "energy": 0, "error": 0}
        self.max_energy_rise = 0.0  # largest relative F increase among accepted steps (≤ energy_rtol)

    # ------------------------------------------------------------------------------------------
    def _error(self, c_new: np.ndarray, c_n: np.ndarray, dt: float) -> float:
        if self.c_prev is None or self.dt_prev is None:
            return 0.0
        from mpi4py import MPI

        pred = c_n + dt * (c_n - self.c_prev) / self.dt_prev
        diff = c_new - pred
        if self.o.norm == "max":
            e = self.s.comm.allreduce(float(np.max(np.abs(diff))) if diff.size else 0.0, op=MPI.MAX)
        else:
            e = math.sqrt(self.s.comm.allreduce(float(np.sum(diff * diff))) / self.s.grid.ncells)
        return dt / (dt + self.dt_prev) * e

    def advance(self, t_stop: float) -> HistoryRow:
        """Take one accepted step, not past ``t_stop``; returns its history row."""
        s, o = self.s, self.o
        rejects = 0
        n_its = l_its = 0
        c_n = s.field(0)
        while True:
            dt = min(self.dt, o.dt_max)
            clipped = False
            if self.t + dt >= t_stop * (1 - 1e-14) or t_stop - (self.t + dt) < 1e-3 * dt:
                dt, clipped = t_stop - self.t, True
            guess = None
            if self.c_prev is not None and o.adaptive:
                guess = c_n + dt * (c_n - self.c_prev) / self.dt_prev
            res = s.step(dt, self.t + dt, guess)
            n_its += res.newton_its
            l_its += res.linear_its
            ok, factor = res.converged, o.shrink
            why = "newton"
            if ok:
                why = "energy"
                F_new = s.free_energy()
                rise = (F_new - self.F) / max(abs(self.F), 1e-300)
                if o.check_energy and rise > o.energy_rtol:
                    ok = False
            if ok and o.adaptive:
                err = self._error(s.field(0), c_n, dt)
                if err > o.tol:
                    ok, why = False, "error"
                    factor = max(o.shrink, o.safety * math.sqrt(o.tol / err))
            if ok:
                break
            s.undo()
            rejects += 1
            self.total_rejected += 1
            self.rejected_by[why] += 1
            if not o.adaptive or rejects > o.max_rejects or dt * factor < o.dt_min:
                raise ConvergenceError(
                    f"time step controller cannot make progress at t = {self.t:.6g} "
                    f"(dt = {dt:.3g}, {rejects} rejected steps, last SNES reason {res.reason})")
            self.dt = dt * factor
        # accepted
        if o.adaptive:
            err = self._error(s.field(0), c_n, dt)
            fac = o.grow if err <= 0 else min(o.grow, max(o.shrink, o.safety * math.sqrt(o.tol / err)))
            new_dt = dt * fac
            if clipped:  # a step shortened to hit an output time should not shrink the next one
                new_dt = max(new_dt, self.dt)
            self.dt = min(new_dt, o.dt_max)
        self.max_energy_rise = max(self.max_energy_rise, rise)
        self.c_prev, self.dt_prev = c_n, dt
        self.t += dt
        self.step += 1
        self.F = F_new
        self.total_newton += n_its
        self.total_linear += l_its
        row = HistoryRow(self.step, self.t, dt, F_new, s.mass(), n_its, l_its, rejects)
        self.history.append(row)
        return row

    def run(self, t_end: float, output_times: Sequence[float] = (), max_steps: int | None = None,
            on_step: Callable[["Stepper", HistoryRow], None] | None = None,
            on_output: Callable[["Stepper", float], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> str:
        """Step to ``t_end``, landing exactly on each of ``output_times`` (calling ``on_output``).

        Returns ``"done"``, ``"max_steps"`` or ``"stopped"`` (``should_stop()`` was true).
        """
        outs = sorted(t for t in output_times if self.t < t <= t_end * (1 + 1e-14))
        steps = 0
        while self.t < t_end * (1 - 1e-14):
            nxt = min([t for t in outs if t > self.t * (1 + 1e-14)] + [t_end])
            row = self.advance(nxt)
            steps += 1
            if on_step:
                on_step(self, row)
            if on_output and abs(self.t - nxt) <= 1e-12 * max(1.0, abs(nxt)) and nxt in outs:
                on_output(self, nxt)
            if max_steps is not None and steps >= max_steps:
                return "max_steps"
            if should_stop is not None and should_stop():
                return "stopped"
        return "done"

    # ------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Scalars needed to continue exactly (for checkpoints)."""
        return {"t": self.t, "dt": self.dt, "dt_prev": -1.0 if self.dt_prev is None else self.dt_prev,
                "step": self.step, "F": self.F, "mass0": self.mass0, "total_newton": self.total_newton,
                "total_linear": self.total_linear, "total_rejected": self.total_rejected,
                "max_energy_rise": self.max_energy_rise}

    def restore(self, scalars: dict, c_prev: np.ndarray | None, history: np.ndarray) -> None:
        self.t, self.dt = float(scalars["t"]), float(scalars["dt"])
        dp = float(scalars["dt_prev"])
        self.dt_prev = None if dp < 0 else dp
        self.c_prev = c_prev if self.dt_prev is not None else None
        self.step = int(scalars["step"])
        self.F, self.mass0 = float(scalars["F"]), float(scalars["mass0"])
        self.total_newton = int(scalars["total_newton"])
        self.total_linear = int(scalars["total_linear"])
        self.total_rejected = int(scalars["total_rejected"])
        self.max_energy_rise = float(scalars["max_energy_rise"])
        self.history = [HistoryRow(int(r[0]), *map(float, r[1:5]), int(r[5]), int(r[6]), int(r[7])) for r in history]

    def history_array(self) -> np.ndarray:
        return np.array([r.as_tuple() for r in self.history], dtype=float).reshape(-1, len(HistoryRow.FIELDS))
