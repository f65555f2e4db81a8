"""``hpcmsm cauchy-born``: elastic constants, stability and stress–strain curves of a crystal from
its interatomic potential via the Cauchy–Born rule."""
from __future__ import annotations

NAME = "cauchy-born"
HELP = "Cauchy-Born continuum from a potential: elastic constants, stability, stress-strain curves"
ORDER = 70


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input with [lattice], [potential], optional [[path]] and [output]")
    p.add_argument("-o", "--output", help="output directory (overrides [output].dir)")


def run(args, comm) -> int:
    import json
    import os
    import numpy as np

    from ..atomistic.cauchy_born import elastic_constants, make_cauchy_born, stability
    from ..atomistic.inputs import CauchyBornInput
    from ..atomistic.potentials import EV_PER_A3_IN_GPA
    from ..audit import Audit
    from ..config import load
    from ..errors import ConfigError
    from ..io import open_h5, stamp, write_array
    from ..parallel import block_range, rprint
    from ..timing import Timers

    cfg, text = load(args.input, CauchyBornInput)
    outdir = args.output or cfg.output.dir
    timers = Timers(comm)
    audit = Audit()
    with timers("setup"):
        pot = cfg.potential.build(os.path.dirname(os.path.abspath(args.input)))
        lat = cfg.lattice.build(pot)
        cb = make_cauchy_born(lat, pot, relax=cfg.lattice.relax)
    d = cb.dim
    for i, pth in enumerate(cfg.path):
        G = np.asarray(pth.G, dtype=float) if pth.G else None
        if G is None or G.shape != (d, d):
            raise ConfigError(f"expected a {d}x{d} list of rows for this {d}D lattice", file=args.input,
                              key=f"path[{i}].G")
        # validate the whole path on every rank before any rank evaluates its share of it
        t = np.linspace(0.0, pth.t_max, pth.steps)
        Fp = np.eye(d)[None] + t[:, None, None] * G[None]
        det = np.linalg.det(Fp)
        if np.any(det <= 0):
            raise ConfigError(f"det F <= 0 along the path (first at t = {t[np.argmax(det <= 0)]:.4g})",
                              file=args.input, key=f"path[{i}].G")
        smin = np.linalg.svd(Fp, compute_uv=False)[:, -1]
        if np.any(smin < 0.2):
            raise ConfigError(f"the path compresses a direction below 0.2 (t = {t[np.argmax(smin < 0.2)]:.4g}): "
                              "outside the range of the Cauchy-Born lattice sums", file=args.input, key=f"path[{i}].G")
    to_gpa = EV_PER_A3_IN_GPA if pot.units == "metal" else 1.0
    unit = "GPa" if pot.units == "metal" else "epsilon/sigma^d"
    with timers("constants"):
        ec = elastic_constants(cb)
        st = stability(cb)
        res0 = cb.evaluate(np.eye(d))
        ph = None
        if cb.nb == 1 and not pot.three_body and not getattr(pot, "eam", False):
            from ..atomistic.phonons import phonon_stability

            ph = phonon_stability(lat, pot, n=8)
    rprint(comm, f"cauchy-born: {lat.name} a = {lat.a:.10g}, {cb.nb} atom(s)/cell, {len(cb.bonds.d)} bonds, "
                 f"{type(pot).__name__} ({getattr(pot, 'cutoff', '')} cutoff, rc = {pot.rc:.4g})")
    rprint(comm, f"  W(I) = {res0.W[0]:.10g}  (energy per atom {res0.W[0] * lat.volume / cb.nb:.10g})")
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    rprint(comm, f"  C = d2W/dE2 at F = I, Voigt [{unit}] (relaxed):\n{ec.voigt * to_gpa}")
    if cb.nb > 1:
        rprint(comm, f"  unrelaxed (frozen basis):\n{ec.voigt_unrelaxed * to_gpa}")
    rprint(comm, f"  stability: Born min eig {st['born_min'] * to_gpa:.5g}, acoustic min {st['acoustic_min'] * to_gpa:.5g}"
                 f" -> {'stable' if st['stable'] else 'UNSTABLE'}")
    if ph is not None:
        rprint(comm, f"  phonons (8^{d} q-grid): min omega^2 {ph['omega2_min']:.5g} at q = {ph['q_min_reduced']} "
                     f"(reduced) -> {'stable' if ph['stable'] else 'SOFT MODE'}")
    # analytic tangent vs a finite difference of the analytic stress at a random F: run-time check
    rng = np.random.default_rng(0)
    F1 = np.eye(d) + 0.01 * rng.standard_normal((d, d))
    r1 = cb.evaluate(F1)
    h = 1e-6
    Afd = np.empty_like(r1.A[0])
    for k in range(d):
        for L in range(d):
            dF = np.zeros((d, d))
            dF[k, L] = h
            Afd[:, :, k, L] = (cb.evaluate(F1 + dF, order=1).P[0] - cb.evaluate(F1 - dF, order=1).P[0]) / (2 * h)
    audit.add("tangent vs FD of stress (rel)", np.abs(Afd - r1.A[0]).max() / np.abs(r1.A[0]).max(), 1e-6)
    audit.add("reference stress residual", 0.0 if not cfg.lattice.equilibrate else
              np.trace(res0.P[0]) / d / np.abs(ec.voigt).max(), 1e-9, note="mean stress / C at F = I")

    curves = {}
    with timers("paths"):
        for pth in cfg.path:
            t = np.linspace(0.0, pth.t_max, pth.steps)
            G = np.asarray(pth.G, dtype=float)
            lo, hi = block_range(len(t), comm.size, comm.rank)
            F = np.eye(d)[None] + t[lo:hi, None, None] * G[None]
            if hi > lo:
                r = cb.evaluate(F)
                nn = np.array([stability_direction_min(r.A[i]) for i in range(hi - lo)])
                loc = {"W": r.W, "P": r.P.reshape(hi - lo, -1), "acoustic_min": nn}
            else:
                loc = {"W": np.zeros(0), "P": np.zeros((0, d * d)), "acoustic_min": np.zeros(0)}
            parts = comm.allgather(loc)
            cur = {k: np.concatenate([p[k] for p in parts]) for k in loc}
            cur["t"] = t
            unstable = np.flatnonzero(cur["acoustic_min"] <= 0)
            cur["t_unstable"] = float(t[unstable[0]]) if len(unstable) else None
            # energy consistency along the path: dW/dt = P : G (trapezoid), an energy audit
            dW = np.trapz(np.einsum("nk,k->n", cur["P"], G.ravel()), t)
            audit.add(f"path {pth.name}: W(t_max) - W(0) - int P:G dt (rel)",
                      (cur["W"][-1] - cur["W"][0] - dW) / max(abs(cur["W"][-1] - cur["W"][0]), 1e-300),
                      5.0 / pth.steps**2 * 10, note="trapezoid rule, O(dt^2)")
            curves[pth.name] = cur
            rprint(comm, f"  path {pth.name}: {pth.steps} points to t = {pth.t_max}, "
                         + (f"loses strong ellipticity at t = {cur['t_unstable']:.4g}" if cur["t_unstable"] is not None
                            else "strongly elliptic throughout"))

    breakdown = {}
    if cfg.breakdown is not None:
        breakdown = run_breakdown(cfg, cb, comm, outdir, text, audit, timers)

    rprint(comm, audit.summary())
    summary = {"lattice": lat.name, "a": lat.a, "c_over_a": lat.c_over_a, "atoms_per_cell": cb.nb,
               "potential": pot.describe(), "units": unit, "W0": float(res0.W[0]),
               "energy_per_atom": float(res0.W[0] * lat.volume / cb.nb),
               "voigt": (ec.voigt * to_gpa).tolist(), "voigt_unrelaxed": (ec.voigt_unrelaxed * to_gpa).tolist(),
               "stress": (ec.stress * to_gpa).tolist(), "stability": st, "phonons": ph,
               "paths": {k: {"t_unstable": v["t_unstable"]} for k, v in curves.items()},
               "breakdown": breakdown,
               "audit": audit.as_dict(), "timers": timers.summary()}
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
    comm.Barrier()
    with open_h5(os.path.join(outdir, "cauchy_born.h5"), "w", comm) as f:
        stamp(f, comm=comm, input_text=text)
        mine = comm.rank == 0
        write_array(f, "voigt", ec.voigt * to_gpa if mine else np.zeros((0, ec.voigt.shape[1])), comm, unit=unit,
                    description="relaxed d2W/dE2 at F = I (Voigt)")
        write_array(f, "voigt_unrelaxed", ec.voigt_unrelaxed * to_gpa if mine else np.zeros((0, ec.voigt.shape[1])),
                    comm, unit=unit, description="frozen-basis d2W/dE2 at F = I (Voigt)")
        for k, v in curves.items():
            for q, u, desc in (("t", "1", "path parameter"), ("W", unit, "energy density"),
                               ("P", unit, "first Piola-Kirchhoff stress (row-major)"),
                               ("acoustic_min", unit, "smallest acoustic-tensor eigenvalue")):
                arr = v[q] if mine else v[q][:0]
                write_array(f, f"paths/{k}/{q}", arr, comm, unit=u, description=desc)
        audit.write_h5(f)
    if comm.rank == 0:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
        if cfg.output.png and curves:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(1, 2, figsize=(10, 4))
            for k, v in curves.items():
                G = np.asarray(next(p.G for p in cfg.path if p.name == k), float).ravel()
                Pg = v["P"] @ G / max(np.linalg.norm(G), 1e-300)
                ax[0].plot(v["t"], Pg * to_gpa, label=k)
                ax[1].plot(v["t"], v["acoustic_min"] * to_gpa, label=k)
                if v["t_unstable"] is not None:
                    ax[0].axvline(v["t_unstable"], ls=":", color="k")
            ax[0].set_xlabel("t  (F = I + tG)")
            ax[0].set_ylabel(f"P : G/|G|  [{unit}]")
            ax[1].axhline(0, color="k", lw=0.5)
            ax[1].set_xlabel("t")
            ax[1].set_ylabel(f"min acoustic eigenvalue [{unit}]")
            ax[0].legend()
            fig.suptitle(f"Cauchy-Born {lat.name}, {type(pot).__name__}")
            fig.tight_layout()
            fig.savefig(os.path.join(outdir, "cauchy_born_paths.png"), dpi=120)
            plt.close(fig)
    rprint(comm, f"  wrote {outdir}/summary.json, cauchy_born.h5" + (", cauchy_born_paths.png" if curves else ""))
    return 0 if audit.passed else 1


def stability_direction_min(A, ndir: int = 600) -> float:
    """Smallest eigenvalue of the acoustic tensor over sampled directions (one tangent A)."""
    import numpy as np

    from ..atomistic.cauchy_born import _directions

    nn = _directions(A.shape[0], ndir)
    Q = np.einsum("iJkL,nJ,nL->nik", A, nn, nn)
    return float(np.linalg.eigvalsh(Q).min())


def run_breakdown(cfg, cb, comm, outdir, text, audit, timers) -> dict:
    """Relax each requested defect in parallel, fit the decay of the Cauchy–Born error, write
    atoms (HDF5/XDMF point clouds) and plots.  Returns {defect: summary}."""
    import os

    import numpy as np

    from ..atomistic.breakdown import analyse_defect, edge_dislocation_system, plot_breakdown, vacancy_system
    from ..config import petsc_table_to_options
    from ..errors import InputError
    from ..io import FieldWriter, PointCloud
    from ..parallel import block_range, rprint

    bd = cfg.breakdown
    lat = cb.lattice
    if cb.potential.three_body or getattr(cb.potential, "eam", False):
        raise InputError("[breakdown] needs a pair potential (lj or morse): the per-atom energies and non-affinity "
                         "analysis are written for pair potentials")
    ring_min = (cb.potential.rc + 0.3) / lat.a
    if "edge_dislocation" in bd.defects and bd.ring <= ring_min:
        raise InputError(f"[breakdown] ring = {bd.ring} a must exceed the interaction range {ring_min:.3g} a")
    opts = petsc_table_to_options(cfg.petsc).get("relax_", {})
    out = {}
    for kind in bd.defects:
        with timers(f"breakdown-{kind}"):
            if kind == "vacancy":
                system = vacancy_system(lat, bd.vacancy_cells)
            else:
                system = edge_dislocation_system(lat, bd.dislocation_radius * lat.a, bd.ring * lat.a)
            res = analyse_defect(comm, cb, system, bd.tol_xi, bd.tol_energy, bd.gatol, opts)
        A = res.pop("arrays")
        out[kind] = res
        rprint(comm, f"  breakdown {kind}: {res['atoms']} atoms, TAO {res['tao_iterations']} its, "
                     f"|xi| ~ r^-{res['fit_xi_exponent']:.2f} (predicted {res['predicted_xi_exponent']}), "
                     f"|dE| ~ r^-{res['fit_dE_exponent']:.2f} (predicted {res['predicted_dE_exponent']}); "
                     f"breakdown radius {res['breakdown_radius_xi']:.2f} a (xi), {res['breakdown_radius_energy']:.2f} a (energy)")
        audit.add(f"breakdown {kind}: relaxed gradient norm", res["gnorm"], 1e3 * bd.gatol)
        lo, hi = block_range(len(A["x"]), comm.size, comm.rank)
        gdim = A["x"].shape[1]
        pts = np.zeros((hi - lo, 3))
        pts[:, :gdim] = A["x"][lo:hi]
        u3 = np.zeros((hi - lo, 3))
        u3[:, :gdim] = A["u"][lo:hi]
        w = FieldWriter(outdir, comm, f"atoms_{kind}", PointCloud(3), input_text=text)
        w.write(0, 0.0, {"displacement": dict(data=u3, description="relaxed minus lattice site"),
                         "xi": dict(data=A["xi"][lo:hi], description="sqrt(D2min / neighbours)"),
                         "D2min": A["D2min"][lo:hi],
                         "dE_cb": dict(data=np.nan_to_num(A["dE"][lo:hi]), description="E_i - E_CB(J_i)"),
                         "energy": A["e_atom"][lo:hi], "fixed": A["fixed"][lo:hi].astype(float)}, points=pts)
        if comm.rank == 0 and cfg.output.png:
            plot_breakdown({**res, "arrays": A}, os.path.join(outdir, f"breakdown_{kind}.png"), lat.a)
    return out
