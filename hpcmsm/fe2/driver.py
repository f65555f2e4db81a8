"""The FE² run: macro Newton over load steps with an RVE pool, output, checkpoint/restart, audits."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..audit import Audit
from ..errors import InputError
from ..parallel import Log, block_range
from ..timing import Timers
from .inputs import FE2Input
from .macro import Dirichlet, MacroProblem, Mesh, NewtonDriver, box_mesh, plate_with_hole_mesh
from .pool import HomogenizedMaterial, RVEPool


# ----------------------------------------------------------------------------------------------
def _bc_spec(mc):
    """Dirichlet conditions as (node set, component, final value), and the loaded set."""
    if mc.geometry == "plate_with_hole":
        return [("left", 0, 0.0), ("bottom", 1, 0.0), ("right", 0, mc.displacement)], "right"
    spec = [("xmin", 0, 0.0), ("ymin", 1, 0.0)] + ([("zmin", 2, 0.0)] if mc.dim == 3 else [])
    return spec + [("xmax", 0, mc.displacement)], "xmax"


def build_macro(cfg: FE2Input, comm=None):
    """Mesh, Dirichlet conditions and the loaded node set for the input's geometry.

    With ``comm``, only rank 0 generates the geometry (the only copy :class:`MacroProblem` reads
    before distributing it); the other ranks get an empty mesh of the right dimension and the
    same Dirichlet conditions without node lists, and the loaded face's natural node ids (for
    reactions) are broadcast: O(boundary) instead of O(mesh) replicated data."""
    mc = cfg.macro
    spec, loaded_set = _bc_spec(mc)
    if comm is None or comm.rank == 0:
        if mc.geometry == "plate_with_hole":
            mesh = plate_with_hole_mesh(mc.size, mc.hole_radius, mc.cells[0], mc.cells[1], mc.grading)
        else:
            mesh = box_mesh([mc.size] * mc.dim, mc.cells)
        sets = mesh.sets
    else:
        mesh = Mesh(np.zeros((0, mc.dim)), np.zeros((0, 2 ** mc.dim), dtype=np.int64), {})
        sets = {name: np.zeros(0, dtype=np.int64) for name, _, _ in spec}
    bcs = [Dirichlet(sets[name], comp, value) for name, comp, value in spec]
    loaded = sets[loaded_set]
    if comm is not None and comm.size > 1:
        loaded = comm.bcast(loaded if comm.rank == 0 else None, root=0)
    return mesh, bcs, loaded


def phase_material(ph, dim: int):
    """The material of a [micro.matrix]/[micro.particle] table (see PhaseSection.model)."""
    from ..materials.base import LinearElastic
    from ..materials.hyperelastic import NeoHookean
    from ..materials.j2 import J2Plasticity

    law = ph.law
    if law == "neo_hookean":
        return NeoHookean(dim, ph.E, ph.nu)
    if law == "j2_log":
        from ..materials.logstrain import LogStrainJ2

        return LogStrainJ2(dim, ph.E, ph.nu, ph.sigma_y, ph.H)
    if law == "linear_elastic":
        return LinearElastic.isotropic(dim, ph.E, ph.nu)
    return J2Plasticity(dim, ph.E, ph.nu, ph.sigma_y, ph.H)


def microstructure(mi, dim: int) -> np.ndarray:
    """Phase labels (n,)*dim, indexed [x, y(, z)]: 0 matrix, 1 particle."""
    from ..homogenization import microstructure as ms

    shape = (mi.voxels,) * dim
    if mi.microstructure == "homogeneous":
        return np.zeros(shape, dtype=int)
    if mi.microstructure == "particle":
        return ms.inclusion_array(shape, mi.volume_fraction).labels
    if mi.microstructure == "laminate":
        return ms.laminate(shape, [1 - mi.volume_fraction, mi.volume_fraction]).labels
    return ms.random_inclusions(shape, mi.volume_fraction, mi.particle_radius, seed=mi.seed).labels


def micro_factory(cfg: FE2Input):
    """``factory(group_comm) -> micro model`` for the input's [micro] table."""
    from .micro import PointMicro
    from .rve import VoxelRVE

    mi, dim = cfg.micro, cfg.macro.dim
    if mi.model == "point":
        return lambda sub: PointMicro(phase_material(mi.matrix, dim))
    labels = microstructure(mi, dim)
    mats = [phase_material(mi.matrix, dim), phase_material(mi.particle, dim)]
    if labels.max() == 0:
        mats = mats[:1]
    from ..config import petsc_table_to_options

    mopts = petsc_table_to_options(cfg.petsc).get("micro_") or {}      # [petsc.micro]
    if mi.solver == "distributed":
        from .rve_dist import DistributedRVE as rve
    else:
        rve = VoxelRVE
    return lambda sub: rve(labels, mats, sub, bc=mi.bc, rtol=mi.rtol, max_iterations=mi.max_iterations,
                           petsc_options=mopts)


# ----------------------------------------------------------------------------------------------
HISTORY_COLS = ["step", "load_factor", "displacement", "reaction", "external_work", "stored_energy",
                "dissipation", "newton_iterations", "newton_order", "hill_mandel_max",
                "dissipation_min", "plastic_qps", "rve_solves", "rve_reused", "cutbacks", "wall_time"]


def run_fe2(cfg: FE2Input, comm, *, restart: bool = False, input_text: str = "", argv=None,
            quiet: bool = False) -> dict:
    """Run an FE² simulation; returns the summary dict (same on every rank)."""
    from .. import signals
    from ..config import petsc_table_to_options
    from ..io import Checkpoint, FieldWriter

    log = Log(comm, quiet=quiet)
    timers = Timers(comm)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    outdir = cfg.output.dir
    mesh, bcs, loaded = build_macro(cfg, comm)
    if comm.size % cfg.pool.group_size:
        raise InputError(f"[pool] group_size {cfg.pool.group_size} does not divide the {comm.size} MPI ranks")
    popts = petsc_table_to_options(cfg.petsc)
    # macro problem first (it knows the QP ownership), then the pool, then the material block
    finite = cfg.macro.kinematics == "finite"
    p = MacroProblem(comm, mesh, [], bcs, popts.get("macro_"), kinematics=cfg.macro.kinematics)
    ne = p.fmesh.n_cells_global
    with timers("rve_setup"):
        pool = RVEPool(comm, micro_factory(cfg), p.nqp_global, p.qp_owner, cfg.pool.group_size,
                       balance=cfg.pool.balance, elastic_reuse=cfg.pool.elastic_reuse,
                       cost_measure=cfg.pool.cost_measure)
    # every group builds the same micro model from the same input: the check agrees on all ranks
    mk = getattr(pool.micro, "kinematics", "small")
    if mk != cfg.macro.kinematics or pool.m != p.m:
        pool.free()
        p.destroy()
        raise InputError(f"[micro] model {cfg.micro.model!r} gives a {mk}-strain micro problem (m = {pool.m}) "
                         f"but [macro] kinematics = {cfg.macro.kinematics!r} (m = {p.m})")
    mat = HomogenizedMaterial(pool, p.qp_ids, mesh.dim)
    p.blocks = [(mat, np.arange(len(p.qp_ids)))]
    drv = NewtonDriver(p, rtol=cfg.newton.rtol, max_iterations=cfg.newton.max_iterations)
    nsteps = cfg.macro.steps
    d = mesh.dim
    log(f"hpcmsm fe2 ({cfg.macro.kinematics} strain): {ne} macro elements, {p.nqp_global} quadrature points = RVEs, "
        f"{pool.ens.ngroups} group(s) of {pool.ens.group_size} rank(s), micro model {cfg.micro.model}"
        + (f" {cfg.micro.voxels}^{d} voxels ({cfg.micro.microstructure})" if cfg.micro.model == "voxel" else ""))
    # ---------------------------------------------------------------- restart
    ck = Checkpoint(os.path.join(outdir, "fe2.ckpt.h5"), comm)
    history: list[list[float]] = []
    step0 = 0
    lam = 0.0
    # Wf = Σ f_int·ū over the Dirichlet DOFs at the last converged state, for the trapezoidal
    # external work ½(Wf_n + Wf_n+1)·Δλ (the discrete balance with the trapezoidal dissipation of
    # materials.j2 is then exact: no backward-Euler "algorithmic dissipation" term)
    totals = dict(W=0.0, D=0.0, Wf=0.0)
    if restart and ck.exists():
        with timers("restart"), ck.load() as data:
            meta = data.meta
            if meta.get("nqp") != p.nqp_global or meta.get("state_size") != pool.S or meta.get("steps") != nsteps:
                raise InputError(f"{ck.path}: checkpoint does not match this input (mesh, RVE or steps differ)")
            if meta.get("kinematics", "small") != cfg.macro.kinematics:   # older checkpoints: small strain
                raise InputError(f"{ck.path}: checkpoint is a {meta.get('kinematics', 'small')}-strain run, "
                                 f"this input has kinematics = {cfg.macro.kinematics!r}")
            step0, lam = data.step, float(data.scalars["load_factor"])
            totals = {k: float(data.scalars[k]) for k in totals}
            s, e = block_range(p.nn_global, comm.size, comm.rank)
            p.set_u_natural(data.read("u", s, e))        # natural node order: any rank count
            hist = data.read("history")
            history = [list(r) for r in hist]
            qs, qe = block_range(p.nqp_global, comm.size, comm.rank)
            states = data.read("rve_states", qs, qe)
            cost = data.read("rve_cost")
            pool.load_natural_states(states, qs)
            pool.cost = cost
            if cfg.pool.balance == "cost" and pool.ens.ngroups > 1 and cost.sum() > 0:
                pool.rebalance(cost)
            drv.lam = lam
            drv.states = [{"version": np.zeros(len(p.qp_ids), dtype=np.int64)}]
        log(f"restarted from {ck.path} at step {step0} (load factor {lam:.4g})")
    elif restart:
        log(f"no checkpoint in {outdir}: starting from the beginning")
    # ---------------------------------------------------------------- output set-up
    writer = FieldWriter(outdir, comm, "fe2_macro", p.output_mesh(), command_line=argv, input_text=input_text)
    qp_xyz = p.quadrature_points()
    micro_sel = _select_micro_qps(cfg, p, qp_xyz, comm)
    micro_writers: dict[int, object] = {}
    signals.install()
    # ---------------------------------------------------------------- load stepping
    audit = Audit()
    hm_max, dis_min, orders = 0.0, 0.0, []
    for step in range(step0 + 1, nsteps + 1):
        t_step = time.perf_counter()
        target = step / nsteps
        dl = target - lam
        cut = 0
        its = 0
        rates_step = []
        while lam < target - 1e-14:
            lam_try = min(lam + dl, target)
            with timers("newton"):
                res = drv.step(lam_try)
            if not res.converged:
                cut += 1
                if cut > cfg.newton.max_cutbacks:
                    raise_error = f"load step {step}: {res.message}; giving up after {cut - 1} cut-backs"
                    _fail(comm, raise_error)
                log(f"  step {step}: {res.message} -> cutting the increment back to {dl / 2:.3g}")
                dl /= 2
                continue
            its += res.iterations
            rates_step += res.rates
            # energies of the converged increment
            f = drv.f_int
            wf = float(comm.allreduce(float(f[p.bc_local] @ p.bc_own_vals)))
            h = lam_try - lam
            qi = drv.qp_info
            dD = drv.integrate(qi["dissipation"])
            totals["W"] += 0.5 * (totals["Wf"] + wf) * h
            if finite and dD == 0.0:
                # Hermite-corrected trapezoid, O(h^4): at finite strain the force-displacement path
                # is nonlinear (small strain: the plain trapezoid is exact).  Not in a step with
                # yielding: the path has a kink there, and the plain trapezoid matches the
                # trapezoidal dissipation of the history laws.
                s0, s1 = res.slopes
                totals["W"] += h * h / 12.0 * (s0 - s1)
            totals["Wf"] = wf
            totals["D"] += dD
            hm_max = max(hm_max, comm.allreduce(float(qi["hill_mandel"].max(initial=0.0)), op=_mx()))
            dis_min = min(dis_min, comm.allreduce(float(qi["dissipation"].min(initial=0.0)), op=_mn()))
            lam = lam_try
        psi = drv.integrate(drv.qp_info["psi"])
        reaction = p.reaction(drv.f_int, loaded, 0)
        costs = pool.step_costs()
        plastic_qps = int(comm.allreduce(int((drv.qp_info["plastic"] > 0).sum())))
        order = rates_step[-1] if rates_step else float("nan")
        if rates_step:
            orders.append(order)
        history.append([step, lam, lam * cfg.macro.displacement, reaction, totals["W"], psi, totals["D"],
                        its, order, hm_max, dis_min, plastic_qps, pool.stats.solves,
                        pool.stats.reused, cut, time.perf_counter() - t_step])
        log(f"step {step:3d}/{nsteps}  u = {lam * cfg.macro.displacement:.4g}  F = {reaction:.5g}  "
            f"Newton {its} it (order {order:.2f})  plastic QPs {plastic_qps}/{p.nqp_global}  "
            f"RVE solves {pool.stats.solves} (reused {pool.stats.reused})  {time.perf_counter() - t_step:.1f}s")
        # ------------------------------------------------------------ output
        if step % cfg.output.every == 0 or step == nsteps:
            with timers("output"):
                _write_macro(writer, p, drv, step, lam, d)
                _write_rve_summary(outdir, comm, p, drv, pool, step, qp_xyz, argv, input_text)
                _write_micro(outdir, pool, micro_sel, micro_writers, step, lam)
                _write_history(outdir, comm, history, cfg.output.png)
        # ------------------------------------------------------------ rebalance, checkpoint
        if cfg.pool.balance == "cost" and pool.ens.ngroups > 1:
            with timers("rebalance"):
                pool.rebalance(costs, cfg.pool.min_gain)
        ce = cfg.output.checkpoint_every or cfg.output.every
        if os.environ.get("HPCMSM_FE2_STOP_AFTER") == str(step):   # test hook: a deterministic "kill"
            signals.request_stop(f"HPCMSM_FE2_STOP_AFTER={step}")
        stop = signals.should_stop(comm)
        if step % ce == 0 or step == nsteps or stop:
            with timers("checkpoint"):
                _checkpoint(ck, p, pool, step, lam, totals, history, nsteps, argv, input_text)
        if stop and step < nsteps:
            return {"stopped": True, "step": step, "exit": signals.stopped(comm, step, ck.path)}
    # ---------------------------------------------------------------- audits and summary
    H = np.array(history) if history else np.zeros((0, len(HISTORY_COLS)))
    W = totals["W"]
    psi = H[-1, 5] if len(H) else 0.0
    scale = max(abs(W), 1e-300)
    if cfg.micro.model == "voxel":
        audit.add("Hill-Mandel residual (max over QPs and steps)", hm_max, 1e-8, "<=")
    if finite and totals["D"] == 0.0:
        # hyperelastic phases: W_ext = stored energy exactly; the Hermite rule's error is
        # O(Δλ⁴) (plate with a hole, 30 % stretch: 7e-5 in 2 steps, 4e-6 in 4, 9e-8 in 10), a
        # P that is not ∂ψ/∂F or a wrong tangent slope gives O(1)
        rule, tol = "Hermite-corrected trapezoid, O(dλ^4)", 1e-3
    elif finite:
        # finite-strain plasticity (j2_log): the trapezoidal work and the trapezoidal dissipation
        # in log strain agree only to O(Δλ²) (e.g. 9e-4 / 2e-4 in 4 / 8 steps of a 5 % stretch)
        rule, tol = "trapezoidal, O(dλ^2) at finite strain", 1e-2
    else:
        rule, tol = "trapezoidal", 1e-9
    audit.add(f"energy balance |W_ext - (stored + dissipated)| / W_ext ({rule})", (W - psi - totals["D"]) / scale,
              tol, "abs<=", note=f"W={W:.4g} stored={psi:.4g} D={totals['D']:.4g}")
    audit.add("dissipation increment >= 0 (min over QPs)", dis_min / scale, 1e-12, ">=")
    if orders:
        # median over steps: a step in which micro points switch between elastic and plastic
        # (the return map is only piecewise smooth) may show a lower order in one iteration
        audit.add("macro Newton observed order (median over steps) - 1.5", float(np.median(orders)) - 1.5, 0.0,
                  ">=", note=f"quadratic with the consistent homogenized tangent; min {min(orders):.2f}")
    tsum = timers.summary()
    st = pool.stats
    rve_t = comm.allreduce(st.rve_time, op=_mx())
    exch_t = comm.allreduce(st.exchange_time, op=_mx())
    solves = comm.allreduce(st.solves if pool.ens.sub.rank == 0 else 0)
    reused = comm.allreduce(st.reused if pool.ens.sub.rank == 0 else 0)
    wall = time.perf_counter() - t_start
    summary = {
        "command": "fe2", "ranks": comm.size, "groups": pool.ens.ngroups, "group_size": pool.ens.group_size,
        "macro_elements": ne, "quadrature_points": p.nqp_global, "micro_model": cfg.micro.model,
        "kinematics": cfg.macro.kinematics,
        "voxels": cfg.micro.voxels if cfg.micro.model == "voxel" else 0, "steps": nsteps,
        "history_columns": HISTORY_COLS, "history": H.tolist(),
        "rve_solves": int(solves), "rve_reused": int(reused),
        "rve_newton_iterations": int(comm.allreduce(st.newton_iterations if pool.ens.sub.rank == 0 else 0)),
        "rve_time_max": rve_t, "exchange_time_max": exch_t,
        "cpu_time_per_rank": comm.allgather(time.process_time() - cpu_start),
        "rve_time_per_group": comm.allgather(st.rve_time if pool.ens.sub.rank == 0 else None),
        "reuse_time": comm.allreduce(st.reuse_time if pool.ens.sub.rank == 0 else 0.0),
        "full_solve_time": comm.allreduce(st.full_time if pool.ens.sub.rank == 0 else 0.0), "exchange_bytes": int(comm.allreduce(st.bytes_sent)),
        "evaluations": st.evaluations, "macro_ksp_iterations": int(sum(p.ksp_iterations)),
        "newton_orders": orders, "timers": tsum, "wall_time": wall,
        "rve_solves_per_second": solves / wall if wall > 0 else 0.0,
        "audit": audit.as_dict(), "balance": cfg.pool.balance,
    }
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "fe2_summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
    log(audit.summary())
    log(f"done: {nsteps} steps, {solves} RVE evaluations ({reused} exact elastic reuses), "
        f"{wall:.1f} s wall, output in {outdir}/")
    pool.free()
    p.destroy()
    summary["audit_passed"] = audit.passed
    return summary


def _fail(comm, msg):
    from ..errors import ConvergenceError

    raise ConvergenceError(msg)


def _mx():
    from mpi4py import MPI

    return MPI.MAX


def _mn():
    from mpi4py import MPI

    return MPI.MIN


def _select_micro_qps(cfg: FE2Input, p: MacroProblem, qp_xyz: np.ndarray, comm) -> list[int]:
    sel = [int(q) for q in cfg.output.micro_qps]
    for q in sel:
        if not 0 <= q < p.nqp_global:
            raise InputError(f"output.micro_qps: QP {q} does not exist (0..{p.nqp_global - 1})")
    for pt in cfg.output.micro_points:
        dist = np.linalg.norm(qp_xyz - np.asarray(pt, float), axis=1)
        k = int(np.argmin(dist)) if len(dist) else -1
        best = comm.allgather((float(dist[k]) if k >= 0 else np.inf, int(p.qp_ids[k]) if k >= 0 else -1))
        sel.append(min(best)[1])
    return sorted(set(sel))


def _write_macro(writer, p: MacroProblem, drv: NewtonDriver, step: int, lam: float, d: int) -> None:
    # node and cell fields in natural order (one mesh file whatever the rank count)
    u = p.u_natural()
    u3 = np.zeros((len(u), 3))
    u3[:, :d] = u
    ne = len(p.cells)
    avg = lambda a: p.cells_natural(a.reshape(ne, p.nq, -1).mean(axis=1))  # noqa: E731
    qi = drv.qp_info
    if p.finite:
        F = drv.eps.reshape(-1, d, d)
        P = drv.sig.reshape(-1, d, d)
        sig = cauchy_stress(F, P)
        kin = {
            "deformation_gradient": dict(data=avg(drv.eps), center="Cell",
                                         description="macro deformation gradient F (row-major iJ, cell mean)"),
            "first_piola": dict(data=avg(drv.sig), center="Cell", unit="MPa",
                                description="homogenized first Piola-Kirchhoff stress P (row-major iJ, cell mean)"),
            "cauchy": dict(data=avg(sig.reshape(len(F), -1)), center="Cell", unit="MPa",
                           description="Cauchy stress P F^T / det F (cell mean)"),
            "det_F": dict(data=avg(np.linalg.det(F))[:, 0], center="Cell", description="det F (cell mean)"),
        }
    else:
        kin = {
            "stress": dict(data=avg(drv.sig), center="Cell", unit="MPa", description="homogenized stress (Mandel, cell mean)"),
            "strain": dict(data=avg(drv.eps), center="Cell", description="macro strain (Mandel, cell mean)"),
        }
    fields = {
        "displacement": dict(data=u3, unit="m", description="macro displacement"),
        **kin,
        "peeq": dict(data=avg(qi["peeq"])[:, 0], center="Cell", description="RVE-mean equivalent plastic strain"),
        "plastic": dict(data=avg(qi["plastic"])[:, 0], center="Cell", description="fraction of yielding micro points"),
        "rve_cost": dict(data=avg(qi["cost"])[:, 0], center="Cell", unit="s", description="RVE cost (last solve)"),
    }
    writer.write(step, lam, fields)


def cauchy_stress(F: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Cauchy stress σ = P Fᵀ / det F (n, d, d) from F and the first Piola–Kirchhoff P (MPa)."""
    return np.matmul(P, np.swapaxes(F, -1, -2)) / np.linalg.det(F)[:, None, None]


def _write_rve_summary(outdir, comm, p, drv, pool, step, qp_xyz, argv, input_text) -> None:
    from ..io import open_h5, stamp, write_array

    from ..fem.mesh import to_natural

    path = os.path.join(outdir, f"fe2_rve_{step:06d}.h5")
    # rows in natural QP order (the macro partition is not a block partition of the QPs)
    nat = lambda a: to_natural(comm, p.qp_ids, np.asarray(a), p.nqp_global)  # noqa: E731
    qi = {k: nat(v) for k, v in drv.qp_info.items()}
    with open_h5(path + ".tmp", "w", comm) as f:
        stamp(f, comm=comm, command_line=argv, input_text=input_text)
        f.attrs["step"] = step
        write_array(f, "qp_id", nat(p.qp_ids.astype(np.int64)), comm, description="macro quadrature point id")
        write_array(f, "position", nat(qp_xyz), comm, unit="m", description="QP coordinates")
        f.attrs["kinematics"] = p.kinematics
        if p.finite:
            write_array(f, "strain", nat(drv.eps), comm, description="macro deformation gradient F (row-major iJ)")
            write_array(f, "stress", nat(drv.sig), comm, unit="MPa",
                        description="homogenized first Piola-Kirchhoff stress P (row-major iJ)")
        else:
            write_array(f, "strain", nat(drv.eps), comm, description="macro strain E (Mandel)")
            write_array(f, "stress", nat(drv.sig), comm, unit="MPa", description="homogenized stress (Mandel)")
        write_array(f, "group", nat(pool.assign[p.qp_ids].astype(np.int32)), comm,
                    description="RVE group that solved it")
        for k, desc in (("psi", "stored energy density"), ("dissipation", "dissipation increment"),
                        ("peeq", "mean equivalent plastic strain"), ("plastic", "yielding fraction"),
                        ("hill_mandel", "Hill-Mandel relative residual"), ("iterations", "RVE Newton iterations"),
                        ("reused", "1 if the exact elastic reuse applied"), ("cost", "RVE cost this step")):
            write_array(f, k, qi[k], comm, description=desc)
    comm.Barrier()
    if comm.rank == 0:
        os.replace(path + ".tmp", path)
    comm.Barrier()


def _write_micro(outdir, pool, sel, writers, step, lam) -> None:
    """Full micro fields of selected QPs, written by the group that holds them (ParaView: XDMF)."""
    from ..io import FieldWriter, StructuredGrid

    micro = pool.micro
    if not hasattr(micro, "micro_fields"):
        return
    sub = pool.ens.sub
    n, d = micro.n, micro.dim
    for q in sel:
        if pool.assign[q] != pool.ens.group:
            continue
        k = int(np.searchsorted(pool.mine, q))
        fl = micro.micro_fields(pool.committed[k])
        name = f"fe2_micro_qp{q}"
        if name not in writers:
            writers[name] = FieldWriter(outdir, sub, name, StructuredGrid((n + 1,) * d, spacing=(1.0 / n,) * d))
        head = sub.rank == 0
        cshape = (n,) * d

        def cell(a):
            a = np.asarray(a)
            arr = a.reshape(cshape + a.shape[1:], order="F")             # [x, y, z] → reverse for (z, y, x)
            arr = np.transpose(arr, tuple(reversed(range(d))) + tuple(range(d, arr.ndim)))
            if not head:
                arr = arr[:0]
            return dict(data=np.ascontiguousarray(arr), start=(0,) * d, center="Cell")

        # nodal displacement E·x + w on the (n+1)^d grid (periodic fluctuation wrapped)
        grid = np.stack(np.meshgrid(*([np.arange(n + 1)] * d), indexing="ij"), -1).reshape(-1, d)
        if micro.bc == "periodic":
            nid = ((grid % n) * n ** np.arange(d)).sum(1)
        else:
            nid = (grid * (n + 1) ** np.arange(d)).sum(1)
        from ..materials.base import mandel_to_tensor

        if getattr(micro, "kinematics", "small") == "finite":
            Et = np.asarray(fl["E"]).reshape(d, d) - np.eye(d)      # x − X = (F̄ − I) X + w
        else:
            Et = mandel_to_tensor(fl["E"])
        xg = grid / n
        uu = xg @ Et.T + fl["fluctuation"][nid]
        u3 = np.zeros((len(uu), 3))
        u3[:, :d] = uu
        u3 = u3.reshape((n + 1,) * d + (3,))
        u3 = np.transpose(u3, tuple(reversed(range(d))) + (d,))
        writers[name].write(step, lam, {
            "phase": cell(fl["phase"]), "peeq": cell(fl["peeq"]), "stress": cell(fl["stress"]),
            "strain": cell(fl["strain"]),
            "displacement": dict(data=np.ascontiguousarray(u3 if head else u3[:0]), start=(0,) * d),
        })


def _write_history(outdir, comm, history, png: bool) -> None:
    if comm.rank != 0:
        return
    path = os.path.join(outdir, "fe2_load_displacement.csv")
    with open(path + ".tmp", "w") as fh:
        fh.write(",".join(HISTORY_COLS) + "\n")
        for r in history:
            fh.write(",".join(repr(float(v)) for v in r) + "\n")
    os.replace(path + ".tmp", path)
    if png and history:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        H = np.array(history)
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
        ax[0].plot(np.r_[0, H[:, 2]], np.r_[0, H[:, 3]], "o-")
        ax[0].set_xlabel("applied displacement")
        ax[0].set_ylabel("reaction force (per unit thickness)")
        ax[0].set_title("FE² load–displacement")
        ax[1].plot(H[:, 0], H[:, 4], "k-", label="external work")
        ax[1].plot(H[:, 0], H[:, 5], label="stored")
        ax[1].plot(H[:, 0], H[:, 6], label="dissipated")
        ax[1].plot(H[:, 0], H[:, 5] + H[:, 6], "--", label="stored+dissipated")
        ax[1].set_xlabel("load step")
        ax[1].legend(fontsize=7)
        ax[1].set_title("energy balance")
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "fe2_load_displacement.png"), dpi=110)
        plt.close(fig)


def _checkpoint(ck, p, pool, step, lam, totals, history, nsteps, argv, input_text) -> None:
    comm = p.comm
    u = p.u_natural()
    states, _ = pool.natural_states()
    hist = np.array(history) if comm.rank == 0 else np.zeros((0, len(HISTORY_COLS)))
    cost = pool.cost if comm.rank == 0 else np.zeros(0)
    ck.save(step, {"u": u, "rve_states": states, "history": hist.reshape(-1, len(HISTORY_COLS)), "rve_cost": cost},
            {"load_factor": lam, **totals},
            {"nqp": p.nqp_global, "state_size": pool.S, "steps": nsteps, "nodes": p.nn_global,
             "kinematics": p.kinematics},
            command_line=argv, input_text=input_text)
