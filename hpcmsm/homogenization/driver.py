"""Run a homogenization from a validated input: cell problems for the requested boundary
conditions, audits, bounds placement, and output (JSON, HDF5, XDMF fields, PNG)."""
from __future__ import annotations

import json
import os

import numpy as np

from ..audit import Audit
from ..parallel import Log, block_range, petsc_options
from . import bounds as bd
from . import microstructure as ms
from .rve import RVEProblem

HM_TOL = 1e-10


def component_names(kind: str, dim: int) -> list[str]:
    if kind == "conductivity":
        return ["x", "y", "z"][:dim]
    return ["11", "22", "12"] if dim == 2 else ["11", "22", "33", "23", "13", "12"]


def audit_tensor(audit: Audit, name: str, C: np.ndarray, info) -> None:
    """Symmetry, positive definiteness and Hill–Mandel checks of one effective tensor."""
    audit.add(f"{name}: Hill-Mandel residual (max over load cases)", max(info.hill_mandel), HM_TOL, "<=")
    audit.add(f"{name}: asymmetry |C-Cᵀ|/|C|", np.linalg.norm(C - C.T) / np.linalg.norm(C), 1e-8, "<=")
    audit.add(f"{name}: min eigenvalue/|C| (SPD)", np.linalg.eigvalsh(0.5 * (C + C.T)).min() / np.linalg.norm(C, 2),
              0.0, ">=")


def solve_all(micro, phases, kind: str, bcs, comm, *, options=None, keep_correctors=False):
    """Effective tensor for every boundary condition.  Returns {bc: (C, info, problem or None)}."""
    out = {}
    for bc in bcs:
        p = RVEProblem(micro, phases, bc, comm, kind=kind, options=options)
        C, info = p.effective_tensor(keep_correctors=keep_correctors and bc == "periodic")
        if keep_correctors and bc == "periodic":
            out[bc] = (C, info, p)
        else:
            p.destroy()
            out[bc] = (C, info, None)
    return out


def order_checks(audit: Audit, C: dict, tensors, fractions) -> None:
    """Reuss ≤ TUBC ≤ PBC ≤ KUBC ≤ Voigt, for the BCs present."""
    chain = [("Reuss", bd.reuss(tensors, fractions))]
    for bc, lab in (("tubc", "TUBC"), ("periodic", "PBC"), ("kubc", "KUBC")):
        if bc in C:
            chain.append((lab, C[bc]))
    chain.append(("Voigt", bd.voigt(tensors, fractions)))
    for (na, A), (nb, B) in zip(chain[:-1], chain[1:]):
        audit.add(f"order {na} <= {nb} (min eig of difference)", bd.loewner_gap(A, B), 1e-9, ">=")


def homogenize(cfg, comm, *, input_text: str = "", base_dir: str = ".", argv=None, log: Log | None = None) -> dict:
    """The ``homogenize`` command's work; returns the JSON summary (on every rank)."""
    from ..timing import Timers
    from .inputs import build_micro, build_phases

    log = log or Log(comm)
    timers = Timers(comm)
    audit = Audit()
    kind = cfg.problem.kind
    with timers("microstructure"):
        micro = build_micro(cfg.microstructure, base_dir, nphases=len(cfg.phases))
        phases, tensors = build_phases(cfg.phases, kind, micro, cfg.microstructure.seed, cfg.microstructure.index)
    dim = micro.dim
    nl = len(tensors)
    fr = micro.volume_fractions(nl)
    log(f"homogenize: {kind}, {dim}D, {micro.description}, grid {micro.shape}, {nl} phases/grains, "
        f"volume fractions {np.round(fr, 4).tolist() if nl <= 8 else '(' + str(nl) + ' grains)'}")
    opts = (cfg.petsc or {}).get("rve", {})
    with timers("cell problems"):
        res = solve_all(micro, phases, kind, cfg.problem.bc, comm, options=opts,
                        keep_correctors=cfg.output.fields)
    C = {bc: r[0] for bc, r in res.items()}
    names = component_names(kind, dim)
    for bc, (Cb, info, _) in res.items():
        audit_tensor(audit, bc, Cb, info)
        log(f"\n{bc}: effective {'conductivity' if kind == 'conductivity' else 'stiffness (Mandel)'} "
            f"[{', '.join(names)}], KSP iterations {info.iterations}, Hill-Mandel max {max(info.hill_mandel):.2e}")
        log("\n".join("  " + " ".join(f"{v: .6e}" for v in row) for row in Cb))
    if "periodic" in res and res["periodic"][2] is not None:
        p = res["periodic"][2]
        audit.add("periodic: C_hom = <C(I+grad chi)> vs energetic <(I+grad chi):C:(I+grad chi)>",
                  np.linalg.norm(p.C_energy - C["periodic"]) / np.linalg.norm(C["periodic"]), 1e-8, "<=")
    order_checks(audit, C, tensors, fr)
    reference = {}
    if "axis" in micro.meta and "periodic" in C:        # laminate: the exact layered tensor
        ex = bd.laminate_exact(tensors, fr, micro.meta["axis"], kind, dim)
        err = np.linalg.norm(C["periodic"] - ex) / np.linalg.norm(ex)
        audit.add("periodic vs exact laminate tensor (relative error)", err, 1e-8, "<=")
        reference["laminate_exact"] = ex.tolist()
    if cfg.microstructure.type == "checkerboard" and kind == "conductivity" and dim == 2 and nl == 2 \
            and "periodic" in C:
        k1, k2 = tensors[0][0, 0], tensors[1][0, 0]
        g = float(np.sqrt(k1 * k2))
        reference["checkerboard_sqrt_k1k2"] = g
        reference["checkerboard_relative_error"] = float(C["periodic"][0, 0] / g - 1)
        log(f"\ncheckerboard: k_eff = {C['periodic'][0, 0]:.6g}, sqrt(k1 k2) = {g:.6g}, "
            f"relative error {C['periodic'][0, 0] / g - 1:+.3e} (discretisation; decreases under refinement)")
    pl = {bc: bd.placement(Cb, kind, dim, tensors, fr) for bc, Cb in C.items()}
    for bc, p in pl.items():
        log(f"\nbounds and estimates vs {bc}:")
        log(bd.placement_text(p))
    # statistics of the microstructure
    S2 = None
    if nl <= 8:
        S2 = {ph: ms.radial_average(ms.two_point_correlation(micro.labels, ph), float(np.atleast_1d(micro.voxel_size)[0]))
              for ph in range(nl)}
    outdir = cfg.output.dir
    summary = {
        "kind": kind, "dim": dim, "grid": list(micro.shape), "microstructure": micro.description,
        "volume_fractions": fr.tolist(), "components": names,
        "effective": {bc: Cb.tolist() for bc, Cb in C.items()},
        "solves": {bc: r[1].as_dict() for bc, r in res.items()},
        "placement": pl, "reference": reference, "audit": audit.as_dict(),
    }
    if S2 is not None:
        summary["two_point_correlation"] = {str(k): {"r": v[0].tolist(), "S2": v[1].tolist()} for k, v in S2.items()}
    write_outputs(summary, micro, res, outdir, comm, input_text, argv, png=cfg.output.png,
                  fields=cfg.output.fields, S2=S2)
    summary["timings"] = timers.summary()
    if comm.rank == 0:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
    for _, _, p in res.values():
        if p is not None:
            p.destroy()
    log("\n" + audit.summary())
    summary["_audit"] = audit
    return summary


def _write_small(f, name, arr, comm, **kw):
    from ..io import write_array

    arr = np.asarray(arr)
    local = arr[None] if comm.rank == 0 else np.zeros((0,) + arr.shape, arr.dtype)
    d = write_array(f, name, local, comm, **kw)
    return d


def write_outputs(summary, micro, res, outdir, comm, input_text, argv, *, png=True, fields=True, S2=None):
    from ..io import FieldWriter, StructuredGrid, open_h5, stamp, write_array

    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
    comm.Barrier()
    h = np.broadcast_to(np.asarray(micro.voxel_size, float), (micro.dim,))
    with open_h5(os.path.join(outdir, "effective.h5"), "w", comm) as f:
        stamp(f, comm=comm, input_text=input_text, command_line=argv)
        for bc, (C, info, _) in res.items():
            _write_small(f, f"effective/{bc}", C, comm, unit="W/(m K)" if summary["kind"] == "conductivity" else "Pa",
                         description=f"{bc} effective tensor ({'Mandel' if summary['kind'] == 'elasticity' else 'd x d'})")
            _write_small(f, f"hill_mandel/{bc}", np.array(info.hill_mandel), comm,
                         description="relative Hill-Mandel residual per unit load case")
        _write_small(f, "volume_fractions", np.array(summary["volume_fractions"]), comm)
        lab = micro.labels.T                                   # (z,) y, x
        a, b = block_range(lab.shape[0], comm.size, comm.rank)
        write_array(f, "labels", np.ascontiguousarray(lab[a:b]), comm, start=(a,) + (0,) * (lab.ndim - 1),
                    global_shape=lab.shape, description="phase label per voxel, stored (z,) y, x")
        audit_json = json.dumps(summary["audit"])
        f.attrs["audit"] = audit_json
    if fields:
        # labels at voxel centres
        wm = FieldWriter(outdir, comm, "microstructure", StructuredGrid(micro.shape, origin=tuple(h / 2), spacing=tuple(h)),
                         command_line=argv, input_text=input_text)
        lab = micro.labels.T
        a, b = block_range(lab.shape[0], comm.size, comm.rank)
        wm.write(0, 0.0, {"labels": {"data": np.ascontiguousarray(lab[a:b]).astype(np.int32),
                                     "start": (a,) + (0,) * (lab.ndim - 1), "center": "Node",
                                     "description": "phase label"}})
        if "periodic" in res and res["periodic"][2] is not None:
            p = res["periodic"][2]
            start, count = p.owned_box()
            wc = FieldWriter(outdir, comm, "correctors", StructuredGrid(p.nodes, spacing=tuple(h)),
                             command_line=argv, input_text=input_text)
            flds = {}
            for k, chi in enumerate(p.correctors):
                arr = chi.reshape(tuple(count[::-1]) + (p.ndof,))
                if p.ndof == 2:                     # 3-component vectors for ParaView
                    arr = np.concatenate([arr, np.zeros(arr.shape[:-1] + (1,))], axis=-1)
                if p.ndof == 1:
                    arr = arr[..., 0]
                flds[f"chi_{summary['components'][k]}"] = {
                    "data": np.ascontiguousarray(arr), "start": tuple(start[::-1]), "center": "Node",
                    "unit": "m" if p.kind == "elasticity" else "K m",
                    "description": f"periodic corrector for unit macro load {summary['components'][k]}"}
            wc.write(0, 0.0, flds)
            summary["correctors_file"] = "correctors.xdmf"
            if png and micro.dim == 2:
                full = comm.gather((start, count, p.correctors), root=0)
                if comm.rank == 0:
                    summary["_chi_full"] = _assemble_2d(full, p.nodes, p.ndof, len(p.correctors))
    if png and comm.rank == 0:
        _plots(summary, micro, outdir, S2)
        summary.pop("_chi_full", None)


def _assemble_2d(parts, nodes, ndof, m):
    out = np.zeros((m, nodes[1], nodes[0], ndof))
    for start, count, chis in parts:
        for k, chi in enumerate(chis):
            out[k, start[1]:start[1] + count[1], start[0]:start[0] + count[0]] = chi.reshape(count[1], count[0], ndof)
    return out


def _plots(summary, micro, outdir, S2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # microstructure (2D image or 3D mid-plane) and correctors
    chi = summary.get("_chi_full")
    ncols = 1 + (0 if chi is None else min(len(chi), 3))
    fig, axs = plt.subplots(1, ncols, figsize=(4 * ncols, 3.6), squeeze=False)
    lab = micro.labels if micro.dim == 2 else micro.labels[:, :, micro.shape[2] // 2]
    axs[0, 0].imshow(lab.T, origin="lower", cmap="viridis", interpolation="nearest")
    axs[0, 0].set_title("labels" + (" (z mid-plane)" if micro.dim == 3 else ""))
    if chi is not None:
        for k in range(ncols - 1):
            mag = np.linalg.norm(chi[k], axis=-1)
            im = axs[0, k + 1].imshow(mag, origin="lower", cmap="magma")
            axs[0, k + 1].set_title(f"|χ| for unit load {summary['components'][k]}")
            fig.colorbar(im, ax=axs[0, k + 1], shrink=0.8)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "microstructure.png"), dpi=110)
    plt.close(fig)
    if S2:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for ph, (r, s) in S2.items():
            ax.plot(r, s, "o-", ms=3, label=f"phase {ph}")
        ax.set_xlabel("r [m]")
        ax.set_ylabel("S2(r)")
        ax.set_title("two-point correlation (radial average)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "two_point_correlation.png"), dpi=110)
        plt.close(fig)
    # bounds placement
    pl = summary["placement"]
    first = next(iter(pl.values()))
    if "moduli" in first:
        keys = list(first["moduli"])
        fig, axs = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8), squeeze=False)
        for ax, key in zip(axs[0], keys):
            p = first["moduli"][key]
            for lab_, v, c in (("Reuss", p["reuss"], "k"), ("HS-", p["hs_lower"], "b"), ("MT", p["mori_tanaka"], "g"),
                               ("SC", p["self_consistent"], "m"), ("HS+", p["hs_upper"], "r"), ("Voigt", p["voigt"], "k")):
                ax.axhline(v, color=c, ls="--" if lab_ in ("Reuss", "Voigt") else "-", lw=1)
                ax.text(1.02, v, lab_, transform=ax.get_yaxis_transform(), va="center", fontsize=8, color=c)
            for i, (bc, pb) in enumerate(pl.items()):
                ax.plot([i], [pb["moduli"][key]["value"]], "o", label=bc)
            ax.set_xticks(range(len(pl)))
            ax.set_xticklabels(list(pl))
            ax.set_xlim(-0.5, len(pl) - 0.5)
            ax.set_title(f"isotropic part: {key}")
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "bounds.png"), dpi=110)
        plt.close(fig)
