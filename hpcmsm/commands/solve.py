"""``hpcmsm solve input.toml``: macroscale finite elements (heat, elasticity, J2 plasticity,
finite strain: Neo-Hookean and J2 plasticity in Hencky strain) on a box or a Gmsh mesh,
distributed over the MPI ranks.

Output (``[output] dir``): ``<name>.xdmf`` + per-step HDF5 fields (displacement, stress, von Mises
stress, equivalent plastic strain / temperature), ``summary.json`` (reactions, energies, audit,
timings, Newton and Krylov iterations) and, for load-stepped runs, ``load_displacement.png``."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ..config import OutputSection, param

NAME = "solve"
HELP = "macroscale FE: heat, elasticity, J2 plasticity, finite strain Neo-Hookean/J2 (box or Gmsh mesh)"
ORDER = 30

Number = Union[float, int]


@dataclass
class MeshSection:
    """``[mesh]``: a structured box or a Gmsh file."""

    type: Literal["box", "gmsh", "plate_with_hole"] = param("box", doc="box, gmsh or plate_with_hole")
    cells: list[int] = param(default_factory=lambda: [8, 8], doc="box: cells per axis (2 or 3 numbers); "
                             "plate_with_hole: [along the arc, radial]")
    lower: Optional[list[float]] = param(None, unit="m", doc="box lower corner (default 0)")
    upper: Optional[list[float]] = param(None, unit="m", doc="box upper corner (default 1)")
    cell: Literal["triangle", "quadrilateral", "tetrahedron", "hexahedron"] = param(
        "quadrilateral", doc="cell type of a box or plate_with_hole mesh")
    file: str = param("", doc="gmsh: path of the .msh file (relative to the input file)")
    degree: int = param(1, choices=(1, 2), doc="Lagrange degree (P1/P2/Q1/Q2)")
    size: float = param(1.0, gt=0, unit="m", doc="plate_with_hole: half width")
    hole_radius: float = param(0.3, gt=0, unit="m", doc="plate_with_hole: hole radius")
    partitioner: Literal["auto", "block", "rcb", "ptscotch", "parmetis"] = param(
        "auto", doc="auto (box: block, others: ptscotch), block (box generated per rank), rcb "
        "(coordinate bisection) or a PETSc graph partitioner of the cell dual graph")


@dataclass
class ProblemSection:
    """``[problem]``: physics and stepping."""

    physics: Literal["heat", "elasticity", "hyperelasticity"] = param("elasticity", doc="equation set")
    steps: int = param(1, ge=1, doc="load steps (mechanics) or time steps (heat)")
    dt: float = param(1.0, gt=0, unit="s", doc="heat: time step")
    body_force: Optional[list[float]] = param(None, unit="N/m^3", doc="mechanics: body force (full load)")
    source: float = param(0.0, unit="W/m^3", doc="heat: volumetric source")
    initial: float = param(0.0, unit="K", doc="heat: initial temperature")
    monitor: str = param("", doc="region whose reaction vs mean displacement is plotted (default: first "
                         "Dirichlet region with a non-zero value)")
    monitor_component: int = param(-1, ge=-1, le=2, doc="component of the monitor plot (-1: largest reaction)")
    max_cuts: int = param(8, ge=0, doc="mechanics: step cut-backs allowed per step")
    newton_rtol: float = param(1e-9, gt=0, lt=1, doc="mechanics: Newton relative residual tolerance")


@dataclass
class MaterialSpec:
    """``[[material]]``: a constitutive law for a region (``region = "all"`` for every cell)."""

    model: Literal["linear_elastic", "anisotropic", "j2", "neo_hookean", "j2_log", "heat"] = param(
        doc="linear_elastic, anisotropic, j2, neo_hookean, j2_log (finite-strain J2 in Hencky strain) or heat")
    region: str = param("all", doc="mesh region (cell set) this material fills")
    E: float = param(1.0, gt=0, unit="Pa", doc="Young's modulus")
    nu: float = param(0.3, gt=-1, lt=0.5, doc="Poisson's ratio")
    C: Optional[list[list[float]]] = param(None, unit="Pa", doc="anisotropic: Mandel stiffness (3x3 / 6x6)")
    sigma_y: float = param(1.0, gt=0, unit="Pa", doc="j2, j2_log: initial yield stress")
    H_iso: float = param(0.0, ge=0, unit="Pa", doc="j2, j2_log: isotropic hardening modulus")
    H_kin: float = param(0.0, ge=0, unit="Pa", doc="j2, j2_log: kinematic hardening modulus")
    kappa: Union[float, list[list[float]]] = param(1.0, unit="W/(m K)", doc="heat: conductivity (number or matrix)")
    rho_c: float = param(1.0, gt=0, unit="J/(m^3 K)", doc="heat: volumetric heat capacity")


@dataclass
class DirichletSpec:
    """``[[dirichlet]]``: prescribed value (scaled by the load factor in mechanics)."""

    region: str = param(doc="boundary region name")
    value: Union[float, list[float]] = param(0.0, doc="value (number, or one per component)")
    components: Optional[list[int]] = param(None, doc="constrained components (default: all)")


@dataclass
class NeumannSpec:
    """``[[neumann]]``: traction (mechanics, per unit area, scaled by the load factor) or heat flux
    into the body (heat)."""

    region: str = param(doc="facet region name")
    value: Union[float, list[float]] = param(0.0, doc="flux (number) or traction vector")


@dataclass
class SolveInput:
    mesh: MeshSection = param(default_factory=MeshSection, doc="mesh")
    problem: ProblemSection = param(default_factory=ProblemSection, doc="physics")
    material: list[MaterialSpec] = param(default_factory=list, doc="materials")
    dirichlet: list[DirichletSpec] = param(default_factory=list, doc="Dirichlet conditions")
    neumann: list[NeumannSpec] = param(default_factory=list, doc="Neumann conditions")
    output: OutputSection = param(default_factory=OutputSection, doc="output")
    petsc: dict[str, dict] = param(default_factory=dict, doc="PETSc options per prefix")

    def validate(self):
        from ..errors import ConfigError

        if not self.material:
            raise ConfigError("at least one [[material]] table is required", key="material")
        kinds = {"heat": {"heat"}, "elasticity": {"linear_elastic", "anisotropic", "j2"},
                 "hyperelasticity": {"neo_hookean", "j2_log"}}[self.problem.physics]
        for i, m in enumerate(self.material):
            if m.model not in kinds:
                raise ConfigError(f"model {m.model!r} does not fit physics {self.problem.physics!r} "
                                  f"(use one of {', '.join(sorted(kinds))})", key=f"material[{i}].model")
        if self.mesh.type == "gmsh" and not self.mesh.file:
            raise ConfigError("a gmsh mesh needs 'file'", key="mesh.file")
        if self.mesh.type == "box" and len(self.mesh.cells) not in (2, 3):
            raise ConfigError("a box needs 2 or 3 cell counts", key="mesh.cells")
        if self.mesh.type == "box" and min(self.mesh.cells) < 1:
            raise ConfigError("cell counts must be >= 1", key="mesh.cells")
        if self.mesh.type == "plate_with_hole":
            if len(self.mesh.cells) != 2 or self.mesh.cells[0] % 2 or min(self.mesh.cells) < 1:
                raise ConfigError("plate_with_hole needs [n_arc (even), n_radial]", key="mesh.cells")
            if self.mesh.hole_radius >= self.mesh.size:
                raise ConfigError("hole_radius must be smaller than size", key="mesh.hole_radius")
        if self.mesh.partitioner == "block" and self.mesh.type != "box":
            raise ConfigError("partitioner 'block' is for box meshes only", key="mesh.partitioner")
        if not self.dirichlet:
            raise ConfigError("at least one [[dirichlet]] condition is required", key="dirichlet")


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input file (see examples/solve_*.toml)")
    p.add_argument("--output", metavar="DIR", help="override [output] dir")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--restart", action="store_true",
                   help="continue from <output dir>/solve.ckpt.h5 (any number of ranks)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after N load/time steps (a checkpoint is written)")
    p.add_argument("--kill-at-step", type=int, default=-1, help=argparse.SUPPRESS)   # test hook (heat)


# ---------------------------------------------------------------------------------------------

def build_mesh(cfg: SolveInput, comm, base_dir: str):
    from ..fem import create_box, distribute, read_mesh
    from ..fem.mesh import plate_with_hole_global

    m = cfg.mesh
    part = m.partitioner
    if m.type == "box":
        return create_box(comm, m.cells, m.lower, m.upper, m.cell, m.degree,
                          partitioner="block" if part == "auto" else part)
    part = "ptscotch" if part == "auto" else part
    if m.type == "plate_with_hole":
        g = plate_with_hole_global(m.size, m.hole_radius, m.cells[0], m.cells[1], m.cell, degree=m.degree) \
            if comm.rank == 0 else None     # built on rank 0 only; distribute() sends each rank its part
        return distribute(comm, g, part)
    path = m.file if os.path.isabs(m.file) else os.path.join(base_dir, m.file)
    return read_mesh(comm, path, m.degree, part)


def build_material(spec: MaterialSpec, dim: int):
    """TOML material table → material object obeying hpcmsm.materials.base."""
    import numpy as np

    from ..errors import InputError
    from ..materials.base import LinearElastic, check_stiffness
    from ..materials.hyperelastic import NeoHookean
    from ..materials.j2 import J2Plasticity

    if spec.model == "linear_elastic":
        return LinearElastic.isotropic(dim, spec.E, spec.nu)
    if spec.model == "anisotropic":
        if spec.C is None:
            raise InputError(f"material in region {spec.region!r}: model 'anisotropic' needs C")
        C = check_stiffness(np.array(spec.C, float), f"material in region {spec.region!r}: C")
        if dim == 2 and C.shape[0] == 6:
            # plane strain from the full 3D stiffness: ε33 = ε23 = ε13 = 0, so the in-plane law is the
            # (11, 22, 12) block and σ33, σ23, σ13 follow exactly from rows 33, 23, 13 (for output)
            ip = [0, 1, 5]
            mat = LinearElastic(np.ascontiguousarray(C[np.ix_(ip, ip)]))
            mat.out_of_plane = np.ascontiguousarray(C[np.ix_([2, 3, 4], ip)])
            return mat
        if C.shape[0] != (3 if dim == 2 else 6):
            raise InputError(f"material in region {spec.region!r}: C must be {3 if dim == 2 else 6}x"
                             f"{3 if dim == 2 else 6} for a {dim}D mesh (or 6x6 for plane strain on 2D)")
        return LinearElastic(C)
    if spec.model == "j2":
        return J2Plasticity(dim, spec.E, spec.nu, spec.sigma_y, spec.H_iso, spec.H_kin)
    if spec.model == "neo_hookean":
        return NeoHookean(dim, spec.E, spec.nu)
    if spec.model == "j2_log":
        from ..materials.logstrain import LogStrainJ2

        return LogStrainJ2(dim, spec.E, spec.nu, spec.sigma_y, spec.H_iso, spec.H_kin)
    raise InputError(f"unknown material model {spec.model!r}")


def _materials(cfg, mesh):
    from ..errors import InputError

    out = {}
    for spec in cfg.material:
        key = None if spec.region == "all" else spec.region
        if key is not None:
            mesh.region_tag(key)            # unknown region → InputError on every rank
        if key in out:
            raise InputError(f"two materials for region {spec.region!r}")
        out[key] = spec
    if None in out and len(out) > 1:
        raise InputError("region 'all' cannot be combined with other material regions")
    return out


def run(args, comm) -> int:
    import numpy as np

    from ..config import load, petsc_table_to_options
    from ..errors import InputError
    from ..fem import Dirichlet, Neumann
    from ..parallel import Log
    from ..timing import Timers

    cfg, text = load(args.input, SolveInput)
    log = Log(comm, quiet=args.quiet)
    timers = Timers(comm)
    outdir = args.output or cfg.output.dir
    base = os.path.dirname(os.path.abspath(args.input))
    popts = petsc_table_to_options(cfg.petsc)
    unknown = sorted(set(popts) - {"macro_"})
    if unknown:
        raise InputError(f"{args.input}: [petsc] tables: only 'macro' is used by solve (got {unknown[0][:-1]!r})")
    macro_opts = popts.get("macro_", {})

    with timers("mesh"):
        mesh = build_mesh(cfg, comm, base)
    dim = mesh.dim
    for bc in cfg.dirichlet:
        mesh.boundary_nodes(bc.region)                 # unknown regions fail here, on every rank
    for bc in cfg.neumann:
        if bc.region not in mesh.facet_names:
            raise InputError(f"[[neumann]] region {bc.region!r} is not a facet set of the mesh; it has: "
                             f"{', '.join(sorted(mesh.facet_names)) or '(none)'}")
    specs = _materials(cfg, mesh)
    ncomp = 1 if cfg.problem.physics == "heat" else dim
    for i, bc in enumerate(cfg.dirichlet):
        v = np.atleast_1d(bc.value)
        nc = len(bc.components) if bc.components is not None else ncomp
        if len(v) not in (1, nc):
            raise InputError(f"[[dirichlet]] {i} on {bc.region!r}: {len(v)} values for {nc} component(s)")
        if bc.components is not None and any(c < 0 or c >= ncomp for c in bc.components):
            raise InputError(f"[[dirichlet]] {i} on {bc.region!r}: components must be in 0..{ncomp - 1}")
    for i, bc in enumerate(cfg.neumann):
        if len(np.atleast_1d(bc.value)) not in (1, ncomp):
            raise InputError(f"[[neumann]] {i} on {bc.region!r}: value needs 1 or {ncomp} entries")
    if cfg.problem.body_force is not None and len(cfg.problem.body_force) != dim:
        raise InputError(f"problem.body_force needs {dim} components")
    ncells = comm.allreduce(len(mesh.cells))
    log(f"solve: {cfg.problem.physics} on a {dim}D {mesh.element.name} mesh, {ncells} cells, "
        f"{mesh.n_global} nodes, {comm.size} rank(s)")

    dirichlet = [Dirichlet(b.region, b.value, b.components) for b in cfg.dirichlet]
    neumann = [Neumann(b.region, b.value) for b in cfg.neumann]
    summary = {"input": os.path.abspath(args.input), "ranks": comm.size, "physics": cfg.problem.physics,
               "element": mesh.element.name, "cells": ncells, "nodes": mesh.n_global}
    from ..io import FieldWriter

    writer = _NaturalWriter(mesh, FieldWriter(outdir, comm, "macro", _output_mesh(mesh),
                                              command_line=getattr(args, "argv", None), input_text=text))
    if cfg.problem.physics == "heat":
        audit = _run_heat(cfg, mesh, specs, dirichlet, neumann, macro_opts, writer, timers, log, summary,
                          outdir, args)
    else:
        audit = _run_mechanics(cfg, mesh, specs, dirichlet, neumann, macro_opts, writer, timers, log, summary,
                               outdir, args)
    summary["timings"] = timers.summary()
    summary["audit"] = audit.as_dict()
    log(audit.summary())
    if comm.rank == 0:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=float)
    log(f"output: {os.path.join(outdir, 'macro.xdmf')}, {os.path.join(outdir, 'summary.json')}")
    if summary.get("exit"):
        return summary["exit"]
    return 0 if audit.passed else 3


def _output_mesh(mesh):
    """Linear (corner-node) cells for visualisation, nodes and cells in natural (input) order, so
    output written before and after a restart on another number of ranks shares one mesh file."""
    from ..fem.mesh import to_natural
    from ..io import UnstructuredMesh

    el = mesh.element
    pts = to_natural(mesh.comm, mesh.node_ids[:mesh.n_owned], mesh.points[:mesh.n_owned], mesh.n_global)
    cells = to_natural(mesh.comm, mesh.cell_ids, mesh.node_ids[mesh.cells[:, el.vtk_corners]], mesh.n_cells_global)
    return UnstructuredMesh(mesh.cell, pts, cells)


class _NaturalWriter:
    """FieldWriter front end: node fields (owned rows) and cell fields (local cells) are moved to
    natural order before writing (see :func:`_output_mesh`)."""

    def __init__(self, mesh, writer):
        self.mesh, self.w = mesh, writer

    def write(self, step, time, fields):
        import numpy as np

        from ..fem.mesh import to_natural

        m, out = self.mesh, {}
        for k, spec in fields.items():
            spec = dict(spec)
            if spec.get("center", "Node") == "Cell":
                spec["data"] = to_natural(m.comm, m.cell_ids, np.asarray(spec["data"]), m.n_cells_global)
            else:
                spec["data"] = to_natural(m.comm, m.node_ids[:m.n_owned], np.asarray(spec["data"]), m.n_global)
            out[k] = spec
        return self.w.write(step, time, out)


def _run_heat(cfg, mesh, specs, dirichlet, neumann, opts, writer, timers, log, summary, outdir, args):
    """Backward-Euler time loop with rank-count independent checkpoints (temperature in natural
    node order + time, step count, KSP history, heat-balance maximum), ``--restart``,
    ``--max-steps`` and a graceful stop (exit 75) on SLURM's SIGUSR1/SIGTERM."""
    import numpy as np

    from .. import signals
    from ..errors import InputError
    from ..fem import HeatProblem
    from ..io import Checkpoint

    if len(specs) != 1:
        raise InputError("heat: one material (region 'all' or the single region) is supported")
    comm = mesh.comm
    spec = next(iter(specs.values()))
    kappa = spec.kappa if isinstance(spec.kappa, float) else np.array(spec.kappa, float)
    with timers("setup"):
        prob = HeatProblem(mesh, kappa, spec.rho_c, cfg.problem.source, dirichlet, neumann, dt=cfg.problem.dt,
                           petsc_options=opts)
        prob.set_initial(cfg.problem.initial)
    T = lambda: prob.u.getArray(readonly=True).copy()  # noqa: E731
    ck = Checkpoint(os.path.join(outdir, "solve.ckpt.h5"), comm)
    stamp = dict(command_line=getattr(args, "argv", None))
    nsteps = cfg.problem.steps

    from ..fem.mesh import from_natural, to_natural
    from ..parallel import block_range

    own_ids = mesh.node_ids[:mesh.n_owned]

    def save(k):
        # natural node order, stacked natural blocks: rank-count independent, and a restart reads
        # only its block (no rank holds the global field)
        with timers("checkpoint"):
            ck.save(k, {"temperature": to_natural(comm, own_ids, T(), mesh.n_global)},
                    {"t": prob.t, "max_balance": prob.max_balance},
                    {"physics": "heat", "nodes": mesh.n_global, "dt": cfg.problem.dt,
                     "iterations": [int(i) for i in prob.iterations]}, **stamp)

    step0 = 0
    if args.restart:
        with timers("restart"), ck.load() as d:
            if d.meta.get("physics") != "heat" or d.meta.get("nodes") != mesh.n_global:
                raise InputError(f"{ck.path}: not a heat checkpoint of this mesh ({d.meta.get('physics')}, "
                                 f"{d.meta.get('nodes')} nodes; the mesh has {mesh.n_global})")
            if d.meta.get("dt") != cfg.problem.dt:
                raise InputError(f"{ck.path}: written with dt = {d.meta.get('dt')}, the input has "
                                 f"dt = {cfg.problem.dt}")
            s0, e0 = block_range(mesh.n_global, comm.size, comm.rank)
            prob.u.getArray()[:] = from_natural(comm, own_ids, d.read("temperature", s0, e0), mesh.n_global)
            prob.u.ghostUpdate(prob.PETSc.InsertMode.INSERT, prob.PETSc.ScatterMode.FORWARD)
            step0 = d.step
            prob.t = float(d.scalars["t"])
            prob.max_balance = float(d.scalars["max_balance"])
            prob.step_count = step0
            prob.iterations = list(d.meta["iterations"])
        log(f"restarted from {ck.path} at step {step0}, t = {prob.t:.6g}")
    else:
        writer.write(0, 0.0, {"temperature": dict(data=T(), unit="K")})
    signals.install()
    every = cfg.output.checkpoint_every or cfg.output.every
    k = step0
    for k in range(step0 + 1, nsteps + 1):
        with timers("solve"):
            prob.step()
        if k % cfg.output.every == 0 or k == nsteps:
            with timers("output"):
                writer.write(k, prob.t, {"temperature": dict(data=T(), unit="K")})
        if k % every == 0 or k == nsteps:
            save(k)
        if k == args.kill_at_step and comm.rank == 0:      # test hook: a node failure after step k
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if k < nsteps and args.max_steps and k - step0 >= args.max_steps:
            if k % every:
                save(k)
            log(f"stopped after --max-steps at step {k}; checkpoint {ck.path} (continue with --restart)")
            break
        if k < nsteps and signals.should_stop(comm):
            if k % every:
                save(k)
            summary["exit"] = signals.stopped(comm, k, ck.path, what="solve (heat)")
            break
    its = prob.iterations or [0]
    log(f"heat: steps {step0 + 1}..{k} of dt = {cfg.problem.dt:g}, KSP iterations per step "
        f"{min(its)}..{max(its)}")
    from mpi4py import MPI

    Tl = prob.u.getArray(readonly=True)
    summary.update({"t_end": prob.t, "steps_done": k, "ksp_iterations": prob.iterations,
                    "T_min": comm.allreduce(float(Tl.min(initial=np.inf)), op=MPI.MIN),
                    "T_max": comm.allreduce(float(Tl.max(initial=-np.inf)), op=MPI.MAX)})
    audit = prob.finish_audit()
    prob.destroy()
    return audit


def _cell_average(values):
    """(c, q, ...) → (c, ...)."""
    return values.mean(axis=1)


def _mechanics_fields(prob, physics):
    import numpy as np

    from ..materials.base import mandel_to_tensor

    mesh = prob.mesh
    d = mesh.dim
    nc = len(mesh.cells)
    u = prob.u.getArray(readonly=True).reshape(-1, d).copy()
    sig = np.zeros((nc, 3, 3))
    vm = np.zeros(nc)
    peeq = np.zeros(nc)
    if physics == "elasticity":
        for g in prob.groups:
            if g.stress is None or not len(g.cells):
                continue
            s = mandel_to_tensor(_cell_average(g.stress))
            S = np.zeros((len(g.cells), 3, 3))
            S[:, :d, :d] = s
            mat = g.material
            if d == 2:     # plane strain: σ33
                if hasattr(mat, "out_of_plane"):      # 6x6 C given: exact σ33, σ23, σ13
                    o = _cell_average(g.strain) @ mat.out_of_plane.T                  # Mandel (33, 23, 13)
                    S[:, 2, 2] = o[:, 0]
                    S[:, 1, 2] = S[:, 2, 1] = o[:, 1] / np.sqrt(2)
                    S[:, 0, 2] = S[:, 2, 0] = o[:, 2] / np.sqrt(2)
                elif hasattr(mat, "stress3"):
                    nq = g.strain.shape[1]
                    s3 = mat.stress3(g.strain.reshape(-1, 3), g.state).reshape(len(g.cells), nq, 6)
                    S[:, 2, 2] = s3[..., 2].mean(axis=1)
                elif hasattr(mat, "C"):
                    C = np.broadcast_to(mat.C, (1, 3, 3)) if np.ndim(mat.C) == 2 else mat.C
                    lam = C[..., 0, 1].mean()
                    e = _cell_average(g.strain)
                    S[:, 2, 2] = lam * (e[:, 0] + e[:, 1])
            sig[g.cells] = S
            if "alpha" in g.state:
                peeq[g.cells] = g.state["alpha"].reshape(len(g.cells), -1).mean(axis=1)
    else:
        for g, F in prob.deformation_gradients():
            if not len(g.cells):
                continue
            Ff = F.reshape(-1, d, d)
            J = np.linalg.det(Ff)
            if hasattr(g.material, "kirchhoff"):           # history law: τ (3D) of the committed state
                tau = g.material.kirchhoff(Ff, g.state) / J[:, None, None]
                sig[g.cells] = tau.reshape(len(g.cells), -1, 3, 3).mean(axis=1)
                peeq[g.cells] = g.material.plastic_strain_eq(g.state).reshape(len(g.cells), -1).mean(axis=1)
                continue
            P = g.material.stress(Ff)
            s = np.einsum("qiJ,qkJ->qik", P, Ff) / J[:, None, None]        # Cauchy
            s = s.reshape(len(g.cells), -1, d, d).mean(axis=1)
            S = np.zeros((len(g.cells), 3, 3))
            S[:, :d, :d] = s
            if d == 2:
                mu, lam = g.material.mu, g.material.lam
                Jc = np.linalg.det(F).mean(axis=1)
                S[:, 2, 2] = (mu * (1 - 1) + lam * np.log(Jc)) / Jc      # F33 = 1: σ33 = (μ(1-1) + λ lnJ)/J
            sig[g.cells] = S
    dev = sig - np.trace(sig, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3
    vm = np.sqrt(1.5 * np.einsum("cij,cij->c", dev, dev))
    return {"displacement": dict(data=u, unit="m", description="displacement"),
            "stress": dict(data=sig.reshape(nc, 9), center="Cell", unit="Pa",
                           description="Cauchy stress, cell average"),
            "von_mises": dict(data=vm, center="Cell", unit="Pa", description="von Mises stress, cell average"),
            "eq_plastic_strain": dict(data=peeq, center="Cell", description="equivalent plastic strain")}


def _run_mechanics(cfg, mesh, specs, dirichlet, neumann, opts, writer, timers, log, summary, outdir, args):
    import numpy as np

    from ..fem import ElasticityProblem, HyperelasticProblem

    mats = {k: build_material(v, mesh.dim) for k, v in specs.items()}
    if None in mats:
        mats = mats[None]
    bf = None if cfg.problem.body_force is None else np.array(cfg.problem.body_force, float)
    cls = ElasticityProblem if cfg.problem.physics == "elasticity" else HyperelasticProblem
    kw = {"rtol": cfg.problem.newton_rtol} if cls is ElasticityProblem else {}
    with timers("setup"):
        prob = cls(mesh, mats, dirichlet, neumann, bf, petsc_options=opts, **kw)
    monitor = cfg.problem.monitor
    if not monitor:     # the loaded boundary: a non-zero Dirichlet region, else the first traction
        nz = [b.region for b in cfg.dirichlet if np.any(np.atleast_1d(b.value) != 0)]
        monitor = (nz or [b.region for b in cfg.neumann] or [cfg.dirichlet[0].region])[0]
    mesh.boundary_nodes(monitor)
    curve = [(0.0, np.zeros(mesh.dim), np.zeros(mesh.dim))]
    regions = sorted({b.region for b in cfg.dirichlet})
    ckpt = os.path.join(outdir, "solve.ckpt.h5")
    stamp = dict(command_line=getattr(args, "argv", None))
    if args.restart:
        with timers("restart"):
            meta = prob.load_checkpoint(ckpt)
        curve = [(c[0], np.array(c[1]), np.array(c[2])) for c in meta["extra"]["curve"]]
        log(f"restarted from {ckpt} at λ = {prob.lam:.6g} ({len(prob.history)} steps done)")
    else:
        writer.write(0, 0.0, {"displacement": dict(data=prob.u.getArray(readonly=True).reshape(-1, mesh.dim).copy(),
                                                    unit="m")})

    def save():
        with timers("checkpoint"):
            prob.save_checkpoint(ckpt, {"curve": [(c[0], np.asarray(c[1]).tolist(), np.asarray(c[2]).tolist())
                                                  for c in curve]}, **stamp)

    from .. import signals

    signals.install()

    class _Stop(Exception):
        pass

    def on_step(p, rec):
        step = len(p.history)
        R = p.reaction(monitor)
        U = p.mean_displacement(monitor)
        curve.append((rec["lam"], U, R))
        if step % cfg.output.every == 0 or abs(rec["lam"] - 1.0) < 1e-12:
            with timers("output"):
                writer.write(step, rec["lam"], _mechanics_fields(p, cfg.problem.physics))
            every = cfg.output.checkpoint_every or cfg.output.every
            if step % every == 0:
                save()
        if p.lam < 1.0 - 1e-12 and signals.should_stop(mesh.comm):   # SLURM's warning: checkpoint, exit 75
            save()
            summary["exit"] = signals.stopped(mesh.comm, step, ckpt, what="solve")
            raise _Stop

    remaining = max(1, int(round(cfg.problem.steps * (1.0 - prob.lam))))
    with timers("solve"):
        try:
            prob.solve(remaining, max_cuts=cfg.problem.max_cuts, callback=on_step, log=log,
                       max_steps=args.max_steps)
        except _Stop:
            pass
    if prob.lam < 1.0 - 1e-12 and not summary.get("exit"):
        save()
        log(f"stopped after --max-steps at λ = {prob.lam:.6g}; checkpoint {ckpt} (continue with --restart)")
    audit = prob.energy_audit()
    reactions = {r: prob.reaction(r).tolist() for r in regions}
    for r, v in reactions.items():
        log(f"reaction on {r}: " + ", ".join(f"{x:.6g}" for x in v))
    e = prob.energies
    log(f"energy: external work {e['external_work']:.6g}, stored {e['stored']:.6g}, "
        f"dissipation {e['dissipation']:.6g}")
    summary.update({"reactions": reactions, "energies": e, "history": prob.history,
                    "ksp_iterations": getattr(prob, "ksp_iterations", []),
                    "load_displacement": {"region": monitor, "lam": [c[0] for c in curve],
                                          "displacement": [c[1].tolist() for c in curve],
                                          "reaction": [c[2].tolist() for c in curve]}})
    comp = cfg.problem.monitor_component
    if comp < 0:
        comp = int(np.argmax(np.abs(curve[-1][2])))
    if comp >= mesh.dim:
        from ..errors import InputError

        raise InputError(f"problem.monitor_component {comp} exceeds the mesh dimension")
    if cfg.output.png and mesh.comm.rank == 0 and len(curve) > 1:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        # Σ f_int over the region = force applied to the body there (support reaction or traction)
        ax.plot([c[1][comp] for c in curve], [c[2][comp] for c in curve], "o-")
        ax.set_xlabel(f"mean displacement u_{'xyz'[comp]} on '{monitor}' [m]")
        ax.set_ylabel(f"applied force F_{'xyz'[comp]} on '{monitor}' [N]")
        ax.set_title(f"{cfg.problem.physics}: load–displacement")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "load_displacement.png"), dpi=110)
        plt.close(fig)
    prob.destroy()
    return audit
