"""Nanoindentation of a 2D crystal half-space by a rigid cylindrical indenter: quasicontinuum with
an atomistic region that grows under the indenter, and the fully atomistic reference.

Indenter (Kelchner, Plimpton & Hamilton, PRB 58, 11085 (1998)): a rigid circle of radius R centred
at c = (x_c, y_s + R − h) (y_s the undeformed surface height, h the depth) repels every atom inside
it with the force magnitude K (R − r)², r = |x_i − c|, i.e. the energy

    E_ind = Σ_i K/3 (R − r_i)³₊,

smooth (C²) at r = R.  The load on the indenter (per unit thickness, positive pushing into the
crystal) is P = Σ_i K (R − r_i)² (c_y − y_i)/r_i = ∂E_ind/∂h, and at equilibrium it equals
dE_total/dh (envelope theorem), so ∫P dh is the work done — a check the tests use.

The block is clamped on its sides and bottom (a ring wider than the cutoff); the top surface is
free.  In QC the top ``surface`` rows are atomistic everywhere (Cauchy–Born knows no surface, and
a continuum surface under a QCE energy would carry ghost forces of its own), the region near the
contact is atomistic from the start and grows by the non-affinity indicator and by contact
proximity at every depth step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .qc import QCModel, QCSites, atomistic_mask, block_sites


@dataclass
class CylinderIndenter:
    """Rigid cylinder (circle in 2D) of radius ``R`` and stiffness ``K`` (energy/length³), axis at
    ``x_c``, above a surface at height ``y_s``; ``depth`` is set per load step."""

    R: float
    K: float
    x_c: float = 0.0
    y_s: float = 0.0
    depth: float = 0.0

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x_c, self.y_s + self.R - self.depth])

    def _terms(self, x: np.ndarray):
        d = np.asarray(x, float) - self.centre
        r = np.linalg.norm(d, axis=1)
        inside = np.flatnonzero(r < self.R)
        return d[inside], np.maximum(r[inside], 1e-12), inside

    def energy_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """E_ind and ∂E_ind/∂x (N, 2) for positions ``x`` (N, 2)."""
        d, r, idx = self._terms(x)
        g = np.zeros_like(np.asarray(x, float))
        s = self.R - r
        g[idx] = (-self.K * s * s / r)[:, None] * d
        return float(self.K / 3.0 * np.sum(s**3)), g

    __call__ = energy_gradient

    def load(self, x: np.ndarray) -> float:
        """Vertical force on the indenter (per unit thickness, > 0 when pushing into the crystal)."""
        d, r, _ = self._terms(x)
        s = self.R - r
        return float(np.sum(self.K * s * s * (-d[:, 1]) / r))

    def contact(self, x: np.ndarray) -> tuple[int, float]:
        """Number of atoms inside the indenter and the largest |x − x_c| among them (a crude contact
        half-width: with a handful of atoms in contact it moves in jumps of one spacing)."""
        d, _, idx = self._terms(x)
        return len(idx), float(np.abs(d[:, 0]).max(initial=0.0))


def half_space_sites(a: float, nx: int, ny: int, ring: float) -> QCSites:
    """nx × ny triangular block with its top row at y = 0, centred in x on a site of the top row;
    the clamped ``ring`` covers the sides and the bottom only (the top surface is free)."""
    if ny % 2:
        ny += 1
    s = block_sites(a, nx, ny, ring=0.0)
    X = s.X.copy()
    top = X[:, 1].max()
    row = np.isclose(X[:, 1], top)
    xs = X[row, 0]
    X[:, 0] -= xs[np.argmin(np.abs(xs))]
    X[:, 1] -= top
    lo, hi = X.min(axis=0), X.max(axis=0)
    ringm = (X[:, 0] - lo[0] < ring) | (hi[0] - X[:, 0] < ring) | (X[:, 1] - lo[1] < ring)
    return QCSites(X, s.ij, ringm, a)


def initial_atomistic(sites: QCSites, surface: float, radius: float) -> np.ndarray:
    """The top ``surface`` (length) of the block and a disc of ``radius`` around the first contact."""
    return (sites.X[:, 1] > -surface) | atomistic_mask(sites, np.zeros((1, 2)), radius)


def _mark(model: QCModel, x: np.ndarray, indenter: CylinderIndenter, tol: float, margin: float) -> np.ndarray:
    """Continuum sites to make atomistic: non-affinity ξ/r_nn > ``tol`` (sites with a full first shell)
    or closer than ``margin`` to the indenter surface."""
    from .breakdown import nonaffinity

    lat = model.cb.lattice
    D2, _, n = nonaffinity(lat, x, None)
    xi = np.sqrt(D2 / np.maximum(n, 1)) / lat.nearest_neighbour_distance()
    near = np.linalg.norm(x - indenter.centre, axis=1) < indenter.R + margin
    return (~model.A) & (((n >= 6) & (xi > tol)) | near)


def qc_indentation(comm, cb, sites: QCSites, A0: np.ndarray, indenter: CylinderIndenter, depths,
                   adapt: bool = True, tol: float = 2e-3, grow: float = 2.0, margin: float = 3.0,
                   max_cycles: int = 6, gatol: float = 1e-9, options: dict | None = None, log=None,
                   callback=None) -> list[dict]:
    """Displacement-controlled QC indentation: for each depth in ``depths`` (ascending), relax with the
    ghost-force-corrected scheme from the previous state, then (``adapt``) mark continuum sites by the
    non-affinity indicator and by proximity (``margin``, length) to the indenter, grow the atomistic
    region by ``grow`` (length) around them, re-mesh and re-solve until nothing is marked.
    ``callback(step, model, result, record)`` is called after each converged step (output).
    Returns one record per step: depth, load, energy, contact, sizes."""
    A = A0 | sites.ring
    u_sites = np.zeros_like(sites.X)
    out = []
    model = None
    for k, h in enumerate(depths):
        indenter.depth = float(h)
        cycles = 0
        for cycles in range(1, max_cycles + 1):
            if model is None or not np.array_equal(model.A, A):
                model = QCModel(comm, cb, sites, A)
                model.external = indenter
            res = model.solve(u_sites[model.node_ids].ravel(), "gfc", gatol=gatol, options=options)
            x = model.site_positions(res["U"])
            u_sites = x - sites.X
            if not adapt:
                break
            marked = _mark(model, x, indenter, tol, margin)
            if log:
                log(f"  depth {h:.4g}, cycle {cycles}: {model.A.sum()} atomistic sites, {model.nn} repatoms, "
                    f"{marked.sum()} marked")
            if not marked.any():
                break
            A = model.A | atomistic_mask(sites, sites.X[marked], grow)
        nc, hw = indenter.contact(x)
        rec = {"step": k, "depth": float(h), "load": indenter.load(x), "energy": res["energy"],
               "contact_atoms": nc, "contact_halfwidth": hw, "atomistic_sites": int(model.A.sum()),
               "repatoms": model.nn, "dofs": model.dofs, "cycles": cycles,
               "qcf_residual": res["qcf_residual"]}
        out.append(rec)
        if callback is not None:
            callback(k, model, res, rec)
    return out


def full_indentation(comm, pot, sites: QCSites, indenter: CylinderIndenter, depths, gatol: float = 1e-9,
                     options: dict | None = None) -> tuple[list[dict], np.ndarray]:
    """Fully atomistic reference: every non-ring site free, relaxed in parallel at each depth
    (warm start from the previous one).  Returns the records and the last positions."""
    from .atoms import ParallelRelaxation

    x = sites.X.copy()
    recs = []
    for k, h in enumerate(depths):
        indenter.depth = float(h)
        rel = ParallelRelaxation(comm, pot, x, sites.ring, None, prefix="full_", external=indenter)
        r = rel.run(gatol=gatol, options=options)
        rel.destroy()
        x = r["x"]
        nc, hw = indenter.contact(x)
        recs.append({"step": k, "depth": float(h), "load": indenter.load(x), "energy": r["energy"],
                     "contact_atoms": nc, "contact_halfwidth": hw})
    return recs, x


def hertz_cylinder_load(halfwidth: np.ndarray, R: float, E_star: float) -> np.ndarray:
    """Hertz line contact of a cylinder on a half-space: P = π E* b² / (4R) per unit length for the
    contact half-width b (2D plane elasticity: E* is the 2D plane-strain modulus).  The depth of a
    2D contact has no unique Hertz law (it depends logarithmically on the body size), so the
    comparison is made in load vs contact half-width."""
    return np.pi * E_star * np.asarray(halfwidth, float) ** 2 / (4 * R)


def plane_modulus(cb) -> float:
    """E* = 4μ(λ+μ)/(λ+2μ) of the (isotropic, hexagonal) 2D lattice from its Cauchy–Born constants."""
    from .cauchy_born import elastic_constants

    C = np.asarray(elastic_constants(cb).voigt)
    if C.shape != (3, 3):
        raise InputError("plane_modulus needs a 2D lattice")
    lam, mu = C[0, 1], C[2, 2]
    return float(4 * mu * (lam + mu) / (lam + 2 * mu))


# ----------------------------------------------------------------------------------------------
# the `hpcmsm qc` branch for an [indent] table
# ----------------------------------------------------------------------------------------------

def run_indentation(args, comm, cfg, text: str) -> int:
    """``hpcmsm qc`` with ``[indent]``: QC load–depth curve (and the full atomistic one when
    ``qc.compare_full``), atoms per step (one XDMF time series) and the QC mesh per step, CSV, PNG,
    JSON summary with timers and audit."""
    import json
    import os
    import time

    from ..audit import Audit
    from ..config import petsc_table_to_options
    from ..io import FieldWriter, PointCloud, UnstructuredMesh
    from ..parallel import Log
    from ..timing import Timers
    from .cauchy_born import CauchyBorn

    log = Log(comm)
    outdir = args.output or cfg.output.dir
    timers, audit = Timers(comm), Audit()
    q, ic = cfg.qc, cfg.indent
    opts = petsc_table_to_options(cfg.petsc)
    with timers("setup"):
        pot = cfg.potential.build()
        lat = cfg.lattice.build(pot)
        cb = CauchyBorn(lat, pot)
        a = lat.a
        if q.ring * a <= pot.rc:
            raise InputError(f"[qc] ring = {q.ring} a must exceed the cutoff {pot.rc / a:.3g} a")
        sites = half_space_sites(a, q.nx, q.ny, q.ring * a)
        indenter = CylinderIndenter(R=ic.radius * a, K=ic.stiffness)
        depths = np.linspace(0.0, ic.max_depth * a, ic.steps + 1)[1:]
        A0 = initial_atomistic(sites, ic.surface * a, ic.atomistic_radius * a)
        E_star = plane_modulus(cb)
    log(f"qc indent: {len(sites.X)} sites ({lat.name} {type(pot).__name__}, a = {a:.6g}), cylinder R = "
        f"{ic.radius} a, K = {ic.stiffness}, {ic.steps} steps to depth {ic.max_depth} a")
    mine = comm.rank == 0
    wa = FieldWriter(outdir, comm, "indent_atoms", PointCloud(3), input_text=text)

    def output(k, model, res, rec):
        xs = model.site_positions(res["U"])
        p3 = np.zeros((len(xs), 3))
        p3[:, :2] = xs
        u3 = np.zeros_like(p3)
        u3[:, :2] = xs - sites.X
        rep = np.zeros(len(xs))
        rep[model.node_ids] = 1.0
        sl = slice(None) if mine else slice(0, 0)
        wa.write(k, rec["depth"], {"displacement": u3[sl], "atomistic": model.A.astype(float)[sl],
                                   "repatom": rep[sl]}, points=p3[sl])
        pts = np.zeros((model.nn, 3))
        pts[:, :2] = sites.X[model.node_ids]
        mesh = UnstructuredMesh("triangle", pts[sl], model.conn[sl])
        wm = FieldWriter(outdir, comm, f"indent_mesh_{k:03d}", mesh, input_text=text)
        un = np.zeros((model.nn, 3))
        un[:, :2] = res["U"].reshape(-1, 2)
        wm.write(0, rec["depth"], {"displacement": un[sl], "atomistic": model.A[model.node_ids].astype(float)[sl]})
        log(f"  step {k + 1}: depth {rec['depth'] / a:.4g} a, load {rec['load']:.6g}, {rec['contact_atoms']} atoms "
            f"in contact, {rec['atomistic_sites']} atomistic sites, {rec['repatoms']} repatoms, "
            f"{rec['cycles']} adapt cycles")

    t0 = time.perf_counter()
    with timers("qc-solve"):
        recs = qc_indentation(comm, cb, sites, A0, indenter, depths, adapt=q.adapt, tol=q.adapt_tol,
                              grow=q.adapt_grow * a, margin=ic.contact_margin * a, max_cycles=q.max_cycles,
                              gatol=q.gatol, options=opts.get("qc_"), callback=output)
    t_qc = time.perf_counter() - t0
    audit.add("QC: ghost-force-free residual max|f| (all steps)", max(r["qcf_residual"] for r in recs), 1e-6)
    summary = {"sites": int(len(sites.X)), "dofs_full": int(2 * (~sites.ring).sum()), "a": a,
               "radius": indenter.R, "stiffness": indenter.K, "plane_modulus": E_star, "time_qc": t_qc, "qc": recs}
    full = None
    if q.compare_full:
        t0 = time.perf_counter()
        with timers("full-atomistic"):
            full, _ = full_indentation(comm, pot, sites, indenter, depths, q.gatol, opts.get("full_"))
        t_full = time.perf_counter() - t0
        err = [abs(r["load"] - f["load"]) / max(abs(f["load"]), 1e-300) for r, f in zip(recs, full)]
        summary.update({"full": full, "time_full": t_full, "load_error_rel": err, "load_error_rel_max": max(err),
                        "dof_ratio_full_over_qc": summary["dofs_full"] / recs[-1]["dofs"],
                        "wall_time_ratio_full_over_qc": t_full / t_qc})
        log(f"  full atomistics: {summary['dofs_full']} DOFs, {t_full:.2f} s; QC: {recs[-1]['dofs']} DOFs, "
            f"{t_qc:.2f} s; load error max {max(err):.2e}")
    log(audit.summary())
    summary["audit"] = audit.as_dict()
    summary["timers"] = timers.summary()
    if mine:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=float)
        with open(os.path.join(outdir, "load_depth.csv"), "w") as fh:
            fh.write("depth,load_qc,load_full,contact_atoms,atomistic_sites,repatoms,dofs_qc\n")
            for i, r in enumerate(recs):
                lf = full[i]["load"] if full else float("nan")
                fh.write(f"{r['depth']:.10g},{r['load']:.10g},{lf:.10g},{r['contact_atoms']},"
                         f"{r['atomistic_sites']},{r['repatoms']},{r['dofs']}\n")
        if cfg.output.png:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4.5))
            h = np.r_[0.0, depths] / a
            ax.plot(h, np.r_[0.0, [r["load"] for r in recs]], "o-", label="QC (GFC, adaptive)")
            if full:
                ax.plot(h, np.r_[0.0, [f["load"] for f in full]], "x--", label="full atomistics")
            ax.set_xlabel("depth / a")
            ax.set_ylabel("load per unit thickness")
            ax.set_title(f"cylindrical indenter R = {ic.radius:g} a")
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(outdir, "load_depth.png"), dpi=120)
            plt.close(fig)
    log(f"  wrote {outdir}/summary.json, load_depth.csv, indent_atoms.xdmf, indent_mesh_*.xdmf"
        + (", load_depth.png" if cfg.output.png else ""))
    return 0 if audit.passed else 1
