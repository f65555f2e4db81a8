"""``hpcmsm phasefield`` input (TOML → dataclasses) and the run loop: stepping, snapshots (HDF5 +
XDMF + PNG), PFHub CSV, history, checkpoint/restart, audit and JSON summary."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

import numpy as np

from ..config import param, petsc_table_to_options
from ..errors import ConfigError, InputError
from . import pfhub
from .energies import FreeEnergy, make_energy


# ----------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------

@dataclass
class ProblemInput:
    """``[problem]``: equation, grid, boundaries, coefficients."""

    model: Literal["cahn_hilliard", "allen_cahn"] = param("cahn_hilliard", doc="equation")
    shape: list[int] = param(default_factory=lambda: [200, 200], doc="cells per axis (x, y[, z])")
    lengths: list[float] = param(default_factory=lambda: [200.0, 200.0], unit="length", doc="domain size per axis")
    boundary: Literal["periodic", "no_flux"] = param("periodic", doc="boundary condition")
    kappa: float = param(2.0, gt=0, unit="energy/length", doc="gradient coefficient κ (γ)")
    mobility: float = param(5.0, gt=0, doc="mobility M (CH) or L (AC)")
    mobility_kind: Literal["constant", "quadratic"] = param("constant", doc="M or M·c(1−c)")

    def validate(self):
        if len(self.shape) not in (2, 3):
            raise ConfigError("expected 2 or 3 entries", key="shape")
        if len(self.lengths) != len(self.shape):
            raise ConfigError("needs one entry per axis of 'shape'", key="lengths")
        if min(self.shape) < 3:
            raise ConfigError(f"grid too small: need at least 3 cells per axis, got {self.shape}", key="shape")
        if min(self.lengths) <= 0:
            raise ConfigError("lengths must be positive", key="lengths")
        if self.model == "allen_cahn" and self.mobility_kind != "constant":
            raise ConfigError("Allen–Cahn supports a constant mobility only", key="mobility_kind")


@dataclass
class EnergyInput:
    """``[energy]``: bulk free-energy density ψ."""

    kind: Literal["double_well", "landau", "regular_solution", "user"] = param("double_well", doc="family")
    rho: Optional[float] = param(None, gt=0, doc="double well: ρ_s")
    c_alpha: Optional[float] = param(None, doc="double well: c_α")
    c_beta: Optional[float] = param(None, doc="double well: c_β")
    A: Optional[float] = param(None, doc="Landau: quadratic coefficient")
    B: Optional[float] = param(None, gt=0, doc="Landau: quartic coefficient")
    theta: Optional[float] = param(None, gt=0, doc="regular solution: RT/V_m")
    chi: Optional[float] = param(None, ge=0, doc="regular solution: Ω/V_m")
    expression: Optional[str] = param(None, doc="user: ψ(c) as a Python/sympy expression")
    concave: Optional[str] = param(None, doc="user: concave part treated explicitly (optional)")

    _KEYS = {"double_well": ("rho", "c_alpha", "c_beta"), "landau": ("A", "B"),
             "regular_solution": ("theta", "chi"), "user": ("expression", "concave")}

    def validate(self):
        for kind, keys in self._KEYS.items():
            if kind != self.kind:
                for k in keys:
                    if getattr(self, k) is not None:
                        raise ConfigError(f"does not apply to kind = {self.kind!r}", key=k)
        if self.kind == "user" and not self.expression:
            raise ConfigError("kind = 'user' needs an expression, e.g. \"c**2*(1-c)**2\"", key="expression")
        if self.kind == "double_well" and self.c_alpha is not None and self.c_beta is not None \
                and not self.c_beta > self.c_alpha:
            raise ConfigError("need c_beta > c_alpha", key="c_beta")

    def build(self) -> FreeEnergy:
        params = {k: getattr(self, k) for k in self._KEYS[self.kind] if getattr(self, k) is not None}
        return make_energy(self.kind, **params)


@dataclass
class InitialInput:
    """``[initial]``: initial field."""

    kind: Literal["pfhub1", "pfhub1_periodic", "noise", "circle", "sphere", "constant"] = param(
        "pfhub1", doc="pfhub1 (official), pfhub1_periodic (snapped wavenumbers), noise, circle/sphere, constant")
    c0: float = param(0.5, doc="mean / background value")
    epsilon: float = param(0.01, ge=0, doc="perturbation amplitude (pfhub1, noise)")
    seed: int = param(1, ge=0, doc="random seed (noise); the field does not depend on the rank count")
    radius: float = param(20.0, gt=0, unit="length", doc="circle/sphere radius")
    inside: float = param(1.0, doc="circle/sphere value inside")
    outside: float = param(-1.0, doc="circle/sphere value outside")
    width: float = param(1.0, gt=0, unit="length", doc="circle/sphere tanh width")


@dataclass
class TimeInput:
    """``[time]``: scheme and adaptive step control."""

    t_end: float = param(1000.0, gt=0, unit="time", doc="final time")
    scheme: Literal["implicit", "convex_splitting"] = param("implicit", doc="time discretisation")
    dt0: float = param(0.1, gt=0, unit="time", doc="first step")
    dt_max: float = param(1e12, gt=0, unit="time", doc="largest step")
    dt_min: float = param(1e-8, gt=0, unit="time", doc="smallest step: below it the run stops with a checkpoint")
    tol: float = param(1e-3, gt=0, doc="local error tolerance (RMS of c)")
    adaptive: bool = param(True, doc="adaptive steps (false: fixed dt0)")
    output_times: list[float] = param(default_factory=lambda: list(pfhub.OUTPUT_TIMES), unit="time",
                                      doc="snapshot times (those ≤ t_end are used)")
    max_steps: int = param(0, ge=0, doc="stop cleanly (with a checkpoint) after this many steps (0: no limit)")


@dataclass
class OutputInput:
    """``[output]``."""

    dir: str = param("out_phasefield", doc="output directory")
    name: str = param("phasefield", doc="base name of output files")
    checkpoint_every: int = param(50, ge=0, doc="checkpoint every this many steps (0: only at the end)")
    png: bool = param(True, doc="PNG snapshots and energy plot")
    fields_every: int = param(0, ge=0, doc="also write fields every this many steps (0: output times only)")


@dataclass
class PhaseFieldInput:
    problem: ProblemInput = param(default_factory=ProblemInput)
    energy: EnergyInput = param(default_factory=EnergyInput)
    initial: InitialInput = param(default_factory=InitialInput)
    time: TimeInput = param(default_factory=TimeInput)
    output: OutputInput = param(default_factory=OutputInput)
    petsc: dict[str, dict] = param(default_factory=dict, doc="PETSc options per prefix (ch, ac)")

    def validate(self):
        for p, tab in self.petsc.items():
            if p.rstrip("_") not in ("ch", "ac"):
                raise ConfigError("PETSc prefixes of the phasefield command are 'ch' and 'ac'", key=f"petsc.{p}")
            if not isinstance(tab, dict):
                raise ConfigError("expected a table of options", key=f"petsc.{p}")
        if self.initial.kind.startswith("pfhub1") and len(self.problem.shape) != 2:
            raise ConfigError("the PFHub 1 initial condition is 2D", key="initial.kind")
        if self.initial.kind == "sphere" and len(self.problem.shape) != 3:
            raise ConfigError("'sphere' needs a 3D grid (use 'circle' in 2D)", key="initial.kind")
        if self.initial.kind == "circle" and len(self.problem.shape) != 2:
            raise ConfigError("'circle' needs a 2D grid (use 'sphere' in 3D)", key="initial.kind")

    @property
    def model(self) -> str:
        return "ch" if self.problem.model == "cahn_hilliard" else "ac"


def initial_field(inp: InitialInput, grid) -> np.ndarray:
    """Owned block of the initial field (natural order), identical for any rank count."""
    xyz = grid.coordinates_xyz()
    if inp.kind in ("pfhub1", "pfhub1_periodic"):
        return pfhub.initial_condition(xyz[0], xyz[1], periodic_ic=inp.kind == "pfhub1_periodic",
                                       c0=inp.c0, eps=inp.epsilon, length=grid.lengths_xyz[0])
    if inp.kind == "noise":
        # generate the global field from the seed and cut out the owned block (rank-count independent)
        rng = np.random.default_rng(inp.seed)
        full = inp.c0 + inp.epsilon * (2 * rng.random(grid.shape) - 1)
        return full[grid.owned]
    if inp.kind in ("circle", "sphere"):
        r = np.sqrt(sum((x - L / 2) ** 2 for x, L in zip(xyz, grid.lengths_xyz)))
        return inp.outside + (inp.inside - inp.outside) * 0.5 * (1 - np.tanh((r - inp.radius) / inp.width))
    return np.full(grid.local_shape, inp.c0)


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------

HISTORY_HEADER = "step,time,dt,free_energy,mass,newton_its,linear_its,rejected"


def _write_text(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def run(cfg: PhaseFieldInput, comm, *, input_text: str = "", command_line=None, restart: bool = False,
        quiet: bool = False, kill_at_step: int = -1) -> dict:
    """Run a phase-field simulation described by ``cfg``; returns the summary dict (all ranks)."""
    from .. import signals
    from ..audit import Audit
    from ..io import Checkpoint, FieldWriter, StructuredGrid
    from ..parallel import Log
    from ..timing import Timers
    from .solver import Mobility, PhaseFieldSolver, SolverOptions
    from .stepping import Stepper, StepperOptions

    log = Log(comm, quiet=quiet)
    timers = Timers(comm)
    P, T, O = cfg.problem, cfg.time, cfg.output
    energy = cfg.energy.build()
    model = cfg.model
    petsc = petsc_table_to_options(cfg.petsc).get(f"{model}_", {})
    with timers("setup"):
        solver = PhaseFieldSolver(comm, model, P.shape, P.lengths, P.boundary == "periodic", energy, P.kappa,
                                  Mobility(P.mobility, P.mobility_kind),
                                  options=SolverOptions(scheme=T.scheme, petsc=petsc))
    g = solver.grid
    c_init = initial_field(cfg.initial, g)
    from mpi4py import MPI

    lo = comm.allreduce(float(c_init.min()) if c_init.size else np.inf, op=MPI.MIN)
    hi = comm.allreduce(float(c_init.max()) if c_init.size else -np.inf, op=MPI.MAX)
    energy.check_domain(lo, hi)
    solver.set_state(c_init)
    stepper = Stepper(solver, StepperOptions(dt0=T.dt0, dt_min=T.dt_min, dt_max=T.dt_max, tol=T.tol, adaptive=T.adaptive))
    os.makedirs(O.dir, exist_ok=True) if comm.rank == 0 else None
    comm.Barrier()
    ckpt = Checkpoint(os.path.join(O.dir, f"{O.name}.ckpt.h5"), comm)
    box = (g.start, g.local_shape)
    if restart and ckpt.exists():
        with ckpt.load() as d:
            sl = tuple(slice(a, a + n) for a, n in zip(*box))
            X = d.read("state", box=sl + (slice(None),))
            cprev = d.read("c_prev", box=sl) if "c_prev" in d.names() else None
            hist = d.read("history")
            solver.set_state(X[..., 0], X[..., 1] if solver.dof == 2 else None)
            stepper.restore(d.scalars, cprev, hist)
        log(f"phasefield: restarted from {ckpt.path} at step {stepper.step}, t = {stepper.t:.6g}")
    elif restart:
        log(f"phasefield: no checkpoint in {O.dir}; starting from t = 0")
    spacing = tuple(g.h_xyz)
    writer = FieldWriter(O.dir, comm, O.name, StructuredGrid(tuple(P.shape), origin=tuple(h / 2 for h in spacing),
                                                            spacing=spacing),
                         command_line=command_line, input_text=input_text)
    audit = Audit()
    mass0 = stepper.mass0

    def write_fields(st: Stepper) -> None:
        fields = {"c" if model == "ch" else "phi": dict(data=solver.field(0), start=g.start,
                                                        description="order parameter")}
        if model == "ch":
            fields["mu"] = dict(data=solver.field(1), start=g.start, description="chemical potential")
        writer.write(st.step, st.t, fields, attrs={"free_energy": st.F})

    def write_png(st: Stepper, t: float) -> None:
        if not O.png:
            return
        c = solver.gather(0)
        if comm.rank == 0:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            img = c if c.ndim == 2 else c[c.shape[0] // 2]
            fig, ax = plt.subplots(figsize=(4.2, 4))
            im = ax.imshow(img, origin="lower", cmap="viridis",
                           extent=(0, P.lengths[0], 0, P.lengths[1]))
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"t = {t:g}" + (" (mid-plane z)" if c.ndim == 3 else ""))
            fig.tight_layout()
            fig.savefig(os.path.join(O.dir, f"{O.name}_t{t:g}.png"), dpi=90)
            plt.close(fig)

    def write_history(st: Stepper) -> None:
        if comm.rank != 0:
            return
        H = st.history
        _write_text(os.path.join(O.dir, "free_energy.csv"),
                    "time,free_energy\n" + "".join(f"{r.time!r},{r.free_energy!r}\n" for r in H))
        _write_text(os.path.join(O.dir, "history.csv"),
                    HISTORY_HEADER + "\n" + "".join(",".join(repr(v) for v in r.as_tuple()) + "\n" for r in H))

    def save_checkpoint(st: Stepper) -> None:
        with timers("checkpoint"):
            state = solver.grid.owned_view(solver.X, readonly=True)
            arrays = {"state": (state, g.start, g.shape)}
            if st.c_prev is not None:
                arrays["c_prev"] = (st.c_prev, g.start, g.shape)
            hist = st.history_array()
            arrays["history"] = hist if comm.rank == 0 else np.zeros((0, hist.shape[1]))
            ckpt.save(st.step, arrays, st.state(), meta={"model": model},
                      command_line=command_line, input_text=input_text)
            write_history(st)

    def on_step(st: Stepper, row) -> None:
        if O.fields_every and st.step % O.fields_every == 0:
            with timers("output"):
                write_fields(st)
        if O.checkpoint_every and st.step % O.checkpoint_every == 0:
            save_checkpoint(st)
        if st.step == kill_at_step and comm.rank == 0:  # test hook: simulate a node failure
            import signal as _signal

            os.kill(os.getpid(), _signal.SIGKILL)

    def on_output(st: Stepper, t: float) -> None:
        with timers("output"):
            write_fields(st)
            write_png(st, t)
            write_history(st)
        log(f"  t = {t:<10.6g} F = {st.F:.8g}  steps {st.step}  dt {st.dt:.3g}  "
            f"Newton {st.total_newton}  linear {st.total_linear}  rejected {st.total_rejected}")

    if stepper.step == 0:
        with timers("output"):
            write_fields(stepper)
            write_png(stepper, 0.0)
    signals.install()
    log(f"phasefield: {P.model} on {'x'.join(map(str, P.shape))} cells, {P.boundary}, {energy.name}, "
        f"{T.scheme}, {comm.size} rank(s), t_end = {T.t_end:g}")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    from ..errors import ConvergenceError

    failure = None
    with timers("time loop"):
        try:
            status = stepper.run(T.t_end, T.output_times, max_steps=(T.max_steps or None), on_step=on_step,
                                 on_output=on_output, should_stop=lambda: signals.should_stop(comm))
        except ConvergenceError as e:  # collective: every rank took the same decisions
            status, failure = "failed", str(e)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    cpu_max = comm.allreduce(cpu, op=MPI.MAX)
    save_checkpoint(stepper)
    write_history(stepper)
    # audit: conservation, monotone energy, solver health
    if model == "ch":
        audit.add("mass drift (relative)", (solver.mass() - mass0) / mass0, 1e-12)
    audit.add("largest relative energy rise of an accepted step", stepper.max_energy_rise,
              StepperOptions().energy_rtol, relation="<=")
    F = np.array([r.free_energy for r in stepper.history])
    audit.add("energy never increases (max ΔF/|F|)", float(np.max(np.diff(F) / np.abs(F[:-1]), initial=-1.0)),
              StepperOptions().energy_rtol, relation="<=")
    summary = {
        "status": status, "failure": failure, "model": model, "shape": list(P.shape), "boundary": P.boundary, "ranks": comm.size,
        "t": stepper.t, "steps": stepper.step, "free_energy": stepper.F, "wall_time_loop": wall, "cpu_time_loop_max_rank": cpu_max,
        "newton_its": stepper.total_newton, "linear_its": stepper.total_linear,
        "rejected": stepper.total_rejected, "rejected_by": stepper.rejected_by,
        "pc_type": solver.snes.getKSP().getPC().getType(),
        "timers": timers.summary(), "audit": audit.as_dict(),
    }
    if comm.rank == 0:
        with open(os.path.join(O.dir, f"{O.name}_summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
        if O.png:
            _plot_energy(stepper, os.path.join(O.dir, f"{O.name}_energy.png"))
    log(audit.summary())
    log(f"phasefield: {status} at t = {stepper.t:.6g} after {stepper.step} steps, {wall:.1f} s "
        f"(Newton {stepper.total_newton}, linear {stepper.total_linear}, rejected {stepper.total_rejected})")
    solver.destroy()
    if failure is not None:
        if comm.rank == 0:
            import sys

            print(f"hpcmsm: phasefield: {failure}; the last accepted state is in {ckpt.path} "
                  "(continue with --restart after changing [time] settings)", file=sys.stderr, flush=True)
        summary["exit"] = 3
    if status == "stopped":
        summary["exit"] = signals.stopped(comm, stepper.step, ckpt.path, what="phasefield")
    return summary


def _plot_energy(st, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H = np.array([(r.time, r.free_energy, r.dt) for r in st.history[1:]])
    if H.size == 0:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    a1.loglog(H[:, 0], H[:, 1])
    a1.set_xlabel("t")
    a1.set_ylabel("F")
    a2.loglog(H[:, 0], H[:, 2], ".")
    a2.set_xlabel("t")
    a2.set_ylabel("Δt")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
