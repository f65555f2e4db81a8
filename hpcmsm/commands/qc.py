"""``hpcmsm qc``: 2D quasicontinuum with ghost-force correction and adaptive atomistic region,
compared with the full atomistic solution."""
from __future__ import annotations

NAME = "qc"
HELP = "2D quasicontinuum (ghost-force corrected, adaptive): defects or nanoindentation, vs full atomistics"
ORDER = 71


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input with [lattice], [potential], [qc], [output]")
    p.add_argument("-o", "--output", help="output directory (overrides [output].dir)")


def run(args, comm) -> int:
    import json
    import os
    import time

    import numpy as np

    from ..atomistic.breakdown import volterra_edge
    from ..atomistic.cauchy_born import CauchyBorn
    from ..atomistic.inputs import QCInput
    from ..atomistic.qc import QCModel, adapt, atomistic_mask, block_sites, compare, full_atomistic
    from ..audit import Audit
    from ..config import load, petsc_table_to_options
    from ..errors import ConfigError, InputError
    from ..io import FieldWriter, PointCloud, UnstructuredMesh
    from ..parallel import Log, init_petsc
    from ..timing import Timers

    cfg, text = load(args.input, QCInput)
    if cfg.lattice.type != "triangular":
        raise ConfigError("the QC solver is 2D: use the triangular lattice", file=args.input, key="lattice.type")
    if cfg.potential.type in ("sw", "eam"):
        raise ConfigError("the QC solver needs a pair potential (lj or morse)", file=args.input, key="potential.type")
    init_petsc()
    if cfg.indent is not None:
        from ..atomistic.indent import run_indentation

        return run_indentation(args, comm, cfg, text)
    log = Log(comm)
    outdir = args.output or cfg.output.dir
    timers, audit = Timers(comm), Audit()
    q = cfg.qc
    opts = petsc_table_to_options(cfg.petsc)
    with timers("setup"):
        pot = cfg.potential.build()
        lat = cfg.lattice.build(pot)
        cb = CauchyBorn(lat, pot)
        a = lat.a
        if q.ring * a <= pot.rc:
            raise InputError(f"[qc] ring = {q.ring} a must exceed the cutoff {pot.rc / a:.3g} a")
        h = a * np.sqrt(3) / 2
        vac = np.asarray(q.vacancies, float).reshape(-1, 2) * a
        sites = block_sites(a, q.nx, q.ny + q.ny % 2, q.ring * a, vac)
        F = np.asarray(q.F, float)
        centres = [vac] if len(vac) else []
        u_extra = np.zeros_like(sites.X)
        if q.dislocation_dipole is not None:
            c = np.asarray(q.dislocation_dipole, float).reshape(2, 2) * a + np.array([0.25 * a, 0.5 * h])
            # both cuts run along the ray c1 -> c2 and beyond: they cancel past c2, so the
            # displacement jumps only on the segment between the cores (inside A)
            ang = float(np.arctan2(*(c[1] - c[0])[::-1]))
            u_extra = volterra_edge(sites.X, c[0], a, cut_angle=ang) + volterra_edge(sites.X, c[1], -a, cut_angle=ang)
            # the slip cut between the cores must be atomistic: sample the segment densely
            t = np.linspace(0, 1, 2 + int(np.linalg.norm(c[1] - c[0]) / a))[:, None]
            centres.append(c[0] * (1 - t) + c[1] * t)
        centres = np.vstack(centres)

        def u_start(X):
            return X @ (F - np.eye(2)).T + u_extra

        A0 = atomistic_mask(sites, centres, q.atomistic_radius * a)
    log(f"qc: {len(sites.X)} sites ({lat.name} {type(pot).__name__}, a = {a:.6g}), {len(vac)} vacancies"
        + (", an edge dipole" if q.dislocation_dipole is not None else "") + f", scheme {q.scheme}")
    t0 = time.perf_counter()
    with timers("qc-solve"):
        if q.adapt:
            model, res, history = adapt(comm, cb, sites, A0, u_start, q.adapt_tol, q.adapt_grow, q.max_cycles,
                                        q.scheme, q.gatol, opts.get("qc_"), log)
        else:
            model = QCModel(comm, cb, sites, A0)
            res = model.solve(u_start(sites.X)[model.node_ids].ravel(), q.scheme, gatol=q.gatol,
                              options=opts.get("qc_"))
            history = []
    t_qc = time.perf_counter() - t0
    log(f"  QC: {model.nn} repatoms ({model.A.sum()} atomistic), {model.dofs} DOFs, energy {res['energy']:.10g}, "
        f"{res['outer_iterations']} ghost-force iterations, QCF residual {res['qcf_residual']:.2e}, {t_qc:.2f} s")
    if q.scheme == "gfc":
        audit.add("QC: ghost-force-free residual max|f|", res["qcf_residual"], 1e-6)
    summary = {"sites": int(len(sites.X)), "repatoms": model.nn, "atomistic_sites": int(model.A.sum()),
               "dofs_qc": model.dofs, "dofs_full": int(2 * (~sites.ring).sum()), "energy_qc": res["energy"],
               "scheme": q.scheme, "outer_iterations": res["outer_iterations"], "qcf_residual": res["qcf_residual"],
               "time_qc": t_qc, "adapt_history": history, "a": a}
    x0 = sites.X + u_start(sites.X)
    if q.compare_full:
        t0 = time.perf_counter()
        with timers("full-atomistic"):
            ex = full_atomistic(comm, pot, sites, x0, q.gatol, opts.get("full_"))
        t_full = time.perf_counter() - t0
        c = compare(model, res, ex, x0)
        summary.update(c)
        summary.update({"time_full": t_full, "wall_time_ratio_full_over_qc": t_full / t_qc,
                        "dof_ratio_full_over_qc": c["dofs_full"] / c["dofs_qc"]})
        log(f"  full atomistics: {c['dofs_full']} DOFs, energy {ex['energy']:.10g}, {t_full:.2f} s")
        log(f"  QC error: energy {c['energy_error_rel_deformation']:.2e} of the deformation energy "
            f"({c['energy_error_rel_relaxation']:.2e} of the relaxation energy), displacement max "
            f"{c['displacement_error_max']:.2e} ({c['displacement_error_rel']:.2e} of the largest relaxation); "
            f"DOFs / {c['dofs_full'] / c['dofs_qc']:.1f}, wall time / {t_full / t_qc:.2f}")
        audit.add("QC configuration energy >= full minimum (admissible)",
                  min(0.0, c["true_energy_of_qc_configuration"] - ex["energy"]), 1e-8 * abs(ex["energy"]))
    log(audit.summary())
    summary["audit"] = audit.as_dict()
    summary["timers"] = timers.summary()
    # ---- output: mesh (deformed nodes), atoms (all sites) ------------------------------------
    mine = comm.rank == 0
    U = res["U"].reshape(-1, 2)
    Xn = sites.X[model.node_ids]
    pts = np.zeros((model.nn, 3))
    pts[:, :2] = Xn
    mesh = UnstructuredMesh("triangle", pts if mine else pts[:0], model.conn if mine else model.conn[:0])
    w = FieldWriter(outdir, comm, "qc_mesh", mesh, input_text=text)
    u3 = np.zeros((model.nn, 3))
    u3[:, :2] = U
    w.write(0, 0.0, {"displacement": u3 if mine else u3[:0],
                     "atomistic": (model.A[model.node_ids].astype(float)) if mine else np.zeros(0)})
    xs = model.site_positions(res["U"])
    p3 = np.zeros((len(xs), 3))
    p3[:, :2] = xs
    us = np.zeros_like(p3)
    us[:, :2] = xs - sites.X
    wa = FieldWriter(outdir, comm, "qc_atoms", PointCloud(3), input_text=text)
    wa.write(0, 0.0, {"displacement": us if mine else us[:0], "atomistic": model.A.astype(float) if mine else np.zeros(0),
                      "repatom": np.isin(np.arange(len(xs)), model.node_ids).astype(float) if mine else np.zeros(0)},
             points=p3 if mine else p3[:0])
    if mine:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=float)
        if cfg.output.png:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(1, 2, figsize=(13, 6))
            ax[0].triplot(Xn[:, 0] / a, Xn[:, 1] / a, model.conn, lw=0.3, color="0.4")
            ax[0].plot(sites.X[model.A, 0] / a, sites.X[model.A, 1] / a, ".", ms=1.5, color="C3", label="atomistic")
            ax[0].set_aspect("equal")
            ax[0].set_title(f"QC mesh: {model.nn} repatoms, {model.dofs} DOFs")
            ax[0].legend(loc="upper right", fontsize=8)
            du = np.linalg.norm(xs - sites.X - (x0 - sites.X), axis=1)
            sc = ax[1].scatter(xs[:, 0] / a, xs[:, 1] / a, c=np.log10(du + 1e-12), s=1, cmap="magma")
            ax[1].set_aspect("equal")
            ax[1].set_title("log10 |relaxation displacement| (QC)")
            fig.colorbar(sc, ax=ax[1])
            fig.tight_layout()
            fig.savefig(os.path.join(outdir, "qc.png"), dpi=120)
            plt.close(fig)
    log(f"  wrote {outdir}/summary.json, qc_mesh.xdmf, qc_atoms.xdmf" + (", qc.png" if cfg.output.png else ""))
    return 0 if audit.passed else 1
