"""RVE-size study: SVE ensembles at a sequence of sizes (and phase contrasts), statistics,
variance decay, KUBC–TUBC gap, recommended RVE size; the ``rve-study`` command's work."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from ..audit import Audit
from ..config import param
from ..errors import ConfigError, InputError
from ..parallel import Log, Progress
from . import bounds as bd
from .ensemble import power_fit, run_tasks, sample_stats, scalar_quantities, size_for_tolerance, variance_ci
from .inputs import MicrostructureSection, OutputSection, PhaseSection, ProblemSection, build_micro, build_phases

HM_TOL = 1e-10


@dataclass
class StudySection:
    """``[study]``"""

    dim: int = param(2, choices=(2, 3), doc="dimension of the SVEs (cubes/squares of edge L)")
    sizes: list[int] = param(default_factory=lambda: [8, 16, 32], ge=2, doc="SVE edge lengths L in voxels")
    realizations: int = param(8, ge=2, doc="SVEs per size (and contrast)")
    group_size: int = param(1, ge=1, doc="MPI ranks per SVE (must divide the number of ranks)")
    tolerance: float = param(0.02, gt=0, lt=1, doc="relative tolerance for the recommended RVE size")
    confidence: float = param(0.95, gt=0, lt=1, doc="confidence level of the intervals")
    contrasts: list[float] = param(default_factory=list, gt=0,
                                   doc="phase contrasts c (phase 1 := c x phase 0); empty: phases as given")
    quantity: str = param("auto", doc="scalar for the size analysis: auto, k, K, mu or Cii (e.g. C00)")


@dataclass
class StudyOutput(OutputSection):
    dir: str = param("out/rve_study", doc="output directory")


@dataclass
class RVEStudyInput:
    problem: ProblemSection = param(default_factory=ProblemSection)
    microstructure: MicrostructureSection = param(default_factory=lambda: None)
    phases: list[PhaseSection] = param(default_factory=list)
    study: StudySection = param(default_factory=StudySection)
    output: StudyOutput = param(default_factory=StudyOutput)
    petsc: dict[str, dict] = param(default_factory=dict, doc="PETSc options per prefix, e.g. [petsc.rve]")

    def validate(self):
        if self.microstructure is None:
            raise ConfigError("missing [microstructure] table", key="microstructure")
        if self.microstructure.shape:
            raise ConfigError("the SVE shapes come from [study] dim and sizes; remove shape",
                              key="microstructure.shape")
        if self.microstructure.type in ("numpy", "hdf5", "image"):
            raise ConfigError("an RVE-size study needs a generator, not a file", key="microstructure.type")
        if not self.phases:
            raise ConfigError("define at least one [[phases]] table", key="phases")
        if self.study.contrasts and len(self.phases) != 2:
            raise ConfigError("contrasts need exactly two phases (phase 1 := c x phase 0)", key="study.contrasts")
        if sorted(set(self.study.sizes)) != list(self.study.sizes):
            raise ConfigError("sizes must be increasing and distinct", key="study.sizes")
        for p in self.petsc:
            if p != "rve":
                raise ConfigError("unknown PETSc prefix (known: rve)", key=f"petsc.{p}")


def _tasks(cfg) -> list[dict]:
    contrasts = cfg.study.contrasts or [None]
    out = []
    for ci, c in enumerate(contrasts):
        for si, L in enumerate(cfg.study.sizes):
            for r in range(cfg.study.realizations):
                # the realization stream index depends on size and realization, not on the contrast:
                # common random numbers make the contrast comparison sharper
                out.append({"contrast_index": ci, "contrast": c, "size_index": si, "L": int(L), "r": r,
                            "index": si * 1_000_000 + r})
    return out


def _solve_task(cfg, base_dir, options):
    from .rve import RVEProblem

    kind, dim = cfg.problem.kind, cfg.study.dim

    def solve(task, sub):
        micro = build_micro(cfg.microstructure, base_dir, index=task["index"], shape=[task["L"]] * dim)
        phases, tensors = build_phases(cfg.phases, kind, micro, cfg.microstructure.seed, task["index"])
        if task["contrast"] is not None:
            from .phases import make_phase

            tensors = [tensors[0], task["contrast"] * tensors[0]]
            phases = [make_phase(kind, dim, T) for T in tensors]
        res = {"C": {}, "hm": {}, "its": {}, "vf": micro.volume_fractions(len(tensors)).tolist()}
        for bc in cfg.problem.bc:
            p = RVEProblem(micro, phases, bc, sub, kind=kind, options=options)
            C, info = p.effective_tensor()
            p.destroy()
            res["C"][bc] = C.tolist()
            res["hm"][bc] = float(max(info.hill_mandel))
            res["its"][bc] = float(np.mean(info.iterations))
        return res

    return solve


def _input_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rve_study(cfg, comm, *, input_text: str = "", base_dir: str = ".", argv=None, restart: bool = False,
              log: Log | None = None) -> dict:
    from ..io import Checkpoint, open_h5, stamp, write_array
    from ..timing import Timers

    log = log or Log(comm)
    timers = Timers(comm)
    audit = Audit()
    kind = cfg.problem.kind
    dim = cfg.study.dim
    if comm.size % cfg.study.group_size:
        raise InputError(f"study.group_size {cfg.study.group_size} does not divide the {comm.size} MPI ranks")
    tasks = _tasks(cfg)
    bcs = list(cfg.problem.bc)
    m = dim if kind == "conductivity" else (3 if dim == 2 else 6)
    opts = (cfg.petsc or {}).get("rve", {})
    outdir = cfg.output.dir
    ck = Checkpoint(os.path.join(outdir, "rve_study.ckpt.h5"), comm)
    results: list = [None] * len(tasks)
    ih = _input_hash(input_text)
    if restart and ck.exists():
        with ck.load() as data:
            if data.meta.get("input_hash") != ih:
                raise InputError(f"{ck.path}: checkpoint belongs to a different input; remove it or drop --restart")
            saved = json.loads(data.meta["results"])
        results = [None if r is None else r for r in saved]
        log(f"rve-study: restarting, {sum(r is not None for r in results)}/{len(tasks)} SVEs already done")
    ngroups = comm.size // cfg.study.group_size
    log(f"rve-study: {kind}, {dim}D {cfg.microstructure.type}, sizes {cfg.study.sizes}, "
        f"{cfg.study.realizations} realizations, BCs {bcs}, contrasts {cfg.study.contrasts or 'as given'}; "
        f"{len(tasks)} SVEs on {ngroups} group(s) of {cfg.study.group_size} rank(s)")
    solve = _solve_task(cfg, base_dir, opts)
    bar = Progress(comm, label="SVE sizes", total=len(cfg.study.sizes))
    with timers("sve ensemble"):
        for si, L in enumerate(cfg.study.sizes):
            todo = [i for i, t in enumerate(tasks) if t["size_index"] == si and results[i] is None]
            if todo:
                res = run_tasks(comm, cfg.study.group_size, [tasks[i] for i in todo],
                                [float(L) ** dim] * len(todo), solve, name="sve")
                for i, r in zip(todo, res):
                    results[i] = r
                ck.save(si, meta={"input_hash": ih, "results": json.dumps(results)}, input_text=input_text,
                        command_line=argv)
            bar.update(1, f"L={L}")
        bar.close()
    with timers("statistics"):
        summary = analyse(cfg, tasks, results, kind, dim, bcs, audit)
    summary["timings"] = timers.summary()
    summary["audit"] = audit.as_dict()
    summary["group_size"] = cfg.study.group_size
    summary["tolerance"] = cfg.study.tolerance
    summary["ranks"] = comm.size
    _report(summary, log)
    # HDF5: every tensor
    Call = np.array([[results[i]["C"][bc] for bc in bcs] for i in range(len(tasks))])
    with open_h5(os.path.join(outdir, "rve_study.h5"), "w", comm) as f:
        stamp(f, comm=comm, input_text=input_text, command_line=argv)
        local = Call if comm.rank == 0 else np.zeros((0,) + Call.shape[1:])
        write_array(f, "effective", local, comm, description=f"effective tensors [task, bc={bcs}, m, m]")
        tab = np.array([[t["contrast_index"], t["size_index"], t["L"], t["r"], t["index"]] for t in tasks], np.int64)
        write_array(f, "tasks", tab if comm.rank == 0 else np.zeros((0, 5), np.int64), comm,
                    description="contrast_index, size_index, L, realization, stream index")
        f.attrs["summary"] = json.dumps({k: v for k, v in summary.items() if k != "timings"})
    if comm.rank == 0:
        with open(os.path.join(outdir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
        if cfg.output.png:
            _plots(summary, outdir, dim)
    log("\n" + audit.summary())
    summary["_audit"] = audit
    return summary


def _quantity_name(cfg, kind: str) -> str:
    q = cfg.study.quantity
    if q == "auto":
        return "k" if kind == "conductivity" else "K"
    return q


def analyse(cfg, tasks, results, kind, dim, bcs, audit: Audit) -> dict:
    """Statistics per (contrast, size, BC), variance decay, BC gap, recommended RVE size."""
    conf, tol = cfg.study.confidence, cfg.study.tolerance
    qname = _quantity_name(cfg, kind)
    sizes = list(cfg.study.sizes)
    contrasts = cfg.study.contrasts or [None]
    hm = max(r["hm"][bc] for r in results for bc in bcs)
    audit.add("Hill-Mandel residual (max over all SVEs and load cases)", hm, HM_TOL, "<=")
    # ordering on every realization
    worst = np.inf
    pairs = [(a, b) for a, b in (("tubc", "periodic"), ("periodic", "kubc"), ("tubc", "kubc")) if a in bcs and b in bcs]
    for r in results:
        for a, b in pairs:
            worst = min(worst, bd.loewner_gap(np.array(r["C"][a]), np.array(r["C"][b])))
    if pairs:
        audit.add("order TUBC <= PBC <= KUBC on every SVE (min eig of differences)", worst, 1e-9, ">=")
    out = {"quantity": qname, "sizes": sizes, "contrasts": [c for c in contrasts], "bcs": bcs, "per_contrast": []}
    for ci, c in enumerate(contrasts):
        block = {"contrast": c, "sizes": []}
        for si, L in enumerate(sizes):
            ids = [i for i, t in enumerate(tasks) if t["contrast_index"] == ci and t["size_index"] == si]
            entry = {"L": L, "n": len(ids), "bc": {}}
            vf = np.array([results[i]["vf"][1] if len(results[i]["vf"]) > 1 else results[i]["vf"][0] for i in ids])
            entry["volume_fraction"] = sample_stats(vf, conf)
            for bc in bcs:
                Cs = np.array([results[i]["C"][bc] for i in ids])
                qs = [scalar_quantities(C, kind, dim) for C in Cs]
                if qname not in qs[0]:
                    raise InputError(f"study.quantity '{qname}' unknown (choose from {', '.join(qs[0])})")
                vals = np.array([q[qname] for q in qs])
                st = sample_stats(vals, conf)
                st["var_ci"] = list(variance_ci(st["var"], st["n"], conf))
                st["rel_std"] = st["std"] / abs(st["mean"])
                st["mean_tensor"] = Cs.mean(axis=0).tolist()
                st["std_tensor"] = Cs.std(axis=0, ddof=1).tolist()
                st["ci_half_tensor"] = (Cs.std(axis=0, ddof=1) / np.sqrt(len(Cs)) *
                                        _tq(conf, len(Cs))).tolist()
                st["iterations_mean"] = float(np.mean([results[i]["its"][bc] for i in ids]))
                # realizations needed at this size for a CI half-width of tol·mean
                st["realizations_for_tolerance"] = int(np.ceil((_tq(conf, len(Cs)) * st["std"] /
                                                                (tol * abs(st["mean"]))) ** 2)) if st["std"] > 0 else 1
                entry["bc"][bc] = st
            if "kubc" in bcs and "tubc" in bcs:
                ref = entry["bc"]["periodic"]["mean"] if "periodic" in bcs else \
                    0.5 * (entry["bc"]["kubc"]["mean"] + entry["bc"]["tubc"]["mean"])
                gaps = np.array([(scalar_quantities(np.array(results[i]["C"]["kubc"]), kind, dim)[qname] -
                                  scalar_quantities(np.array(results[i]["C"]["tubc"]), kind, dim)[qname]) / ref
                                 for i in ids])
                entry["gap_kubc_tubc"] = sample_stats(gaps, conf)
            block["sizes"].append(entry)
        # fits: variance decay and gap decay, RVE size
        Ls = np.array(sizes, float)
        fits = {}
        for bc in bcs:
            var = np.array([e["bc"][bc]["var"] for e in block["sizes"]])
            mean = np.array([e["bc"][bc]["mean"] for e in block["sizes"]])
            fv = power_fit(Ls, var)
            # single-SVE relative std a·L^p/2 ≤ tol  ⇔  var ≤ (tol·mean)²
            L_var = size_for_tolerance({"a": fv["a"], "exponent": fv["exponent"]}, (tol * mean[-1]) ** 2)
            fits[bc] = {"variance_fit": fv, "expected_exponent": -dim, "L_for_tolerance_variance": L_var}
        fvf = power_fit(Ls, np.array([e["volume_fraction"]["var"] for e in block["sizes"]]))
        fits["volume_fraction_variance_fit"] = fvf
        if "kubc" in bcs and "tubc" in bcs:
            g = np.array([e["gap_kubc_tubc"]["mean"] for e in block["sizes"]])
            fg = power_fit(Ls, g)
            fits["gap_fit"] = fg
            fits["L_for_tolerance_gap"] = size_for_tolerance(fg, tol)
        rec_candidates = [fits[bc]["L_for_tolerance_variance"] for bc in bcs]
        if "L_for_tolerance_gap" in fits:
            rec_candidates.append(fits["L_for_tolerance_gap"])
        rec = float(np.nanmax(rec_candidates)) if np.any(np.isfinite(rec_candidates)) else float("nan")
        fits["recommended_L"] = rec
        fits["recommended_L_extrapolated"] = bool(np.isfinite(rec) and rec > sizes[-1])
        block["fits"] = fits
        out["per_contrast"].append(block)
    if len(contrasts) > 1 and "kubc" in bcs and "tubc" in bcs:
        out["gap_vs_contrast"] = {str(L): [b["sizes"][si]["gap_kubc_tubc"]["mean"] for b in out["per_contrast"]]
                                  for si, L in enumerate(sizes)}
    return out


def _tq(conf: float, n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + conf / 2, n - 1)) if n > 1 else float("nan")


def _report(s: dict, log: Log) -> None:
    q = s["quantity"]
    for block in s["per_contrast"]:
        c = block["contrast"]
        log(f"\ncontrast {c if c is not None else '(as given)'}: {q} per size (mean ± CI half-width, rel. std)")
        for e in block["sizes"]:
            parts = [f"{bc} {st['mean']:.5g} ± {st['ci_half']:.2g} ({st['rel_std']:.1e})" for bc, st in e["bc"].items()]
            gap = f"; KUBC-TUBC gap {e['gap_kubc_tubc']['mean']:.3e}" if "gap_kubc_tubc" in e else ""
            log(f"  L={e['L']:>4}: " + ", ".join(parts) + gap)
        f = block["fits"]
        for bc in s["bcs"]:
            fv = f[bc]["variance_fit"]
            log(f"  {bc}: Var[{q}] ~ L^{fv['exponent']:.2f} ± {fv['stderr']:.2f} (finite-range expectation "
                f"{f[bc]['expected_exponent']})")
        if "gap_fit" in f:
            log(f"  KUBC-TUBC gap ~ L^{f['gap_fit']['exponent']:.2f}")
        rec = f["recommended_L"]
        log(f"  recommended RVE size for tolerance: L = {rec:.1f} voxels"
            + (" (extrapolated beyond the sizes studied)" if f["recommended_L_extrapolated"] else ""))


def _plots(s: dict, outdir: str, dim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = s["quantity"]
    colors = {"tubc": "tab:blue", "periodic": "tab:green", "kubc": "tab:red"}
    blocks = s["per_contrast"]
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.2))
    b0 = blocks[0]
    Ls = np.array([e["L"] for e in b0["sizes"]], float)
    for bc in s["bcs"]:
        mean = np.array([e["bc"][bc]["mean"] for e in b0["sizes"]])
        half = np.array([e["bc"][bc]["ci_half"] for e in b0["sizes"]])
        axs[0].errorbar(Ls, mean, yerr=half, fmt="o-", capsize=3, color=colors.get(bc), label=bc)
        var = np.array([e["bc"][bc]["var"] for e in b0["sizes"]])
        axs[1].loglog(Ls, var, "o", color=colors.get(bc), label=f"{bc}")
        fv = b0["fits"][bc]["variance_fit"]
        if np.isfinite(fv["a"]):
            axs[1].loglog(Ls, fv["a"] * Ls ** fv["exponent"], "-", color=colors.get(bc), lw=1,
                          label=f"fit L^{fv['exponent']:.2f}")
    ref = np.array([e["bc"][s["bcs"][0]]["var"] for e in b0["sizes"]])
    if ref[0] > 0:
        axs[1].loglog(Ls, ref[0] * (Ls / Ls[0]) ** (-dim), "k:", label=f"L^-{dim}")
    axs[0].set_xlabel("L [voxels]")
    axs[0].set_ylabel(f"{q} (mean ± CI)")
    axs[0].set_title("apparent property vs SVE size")
    axs[0].legend()
    axs[1].set_xlabel("L [voxels]")
    axs[1].set_ylabel(f"Var[{q}]")
    axs[1].set_title("variance decay")
    axs[1].legend(fontsize=7)
    for b in blocks:
        if "gap_kubc_tubc" in b["sizes"][0]:
            g = np.array([e["gap_kubc_tubc"]["mean"] for e in b["sizes"]])
            axs[2].loglog(Ls, np.maximum(g, 1e-16), "o-", label=f"contrast {b['contrast']}" if b["contrast"] else "gap")
    axs[2].axhline(s.get("tolerance", 0) or np.nan, color="k", ls=":")
    axs[2].set_xlabel("L [voxels]")
    axs[2].set_ylabel(f"({q}_KUBC - {q}_TUBC) / {q}_ref")
    axs[2].set_title("boundary-condition gap")
    if axs[2].lines:
        axs[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "rve_convergence.png"), dpi=110)
    plt.close(fig)
    if "gap_vs_contrast" in s:
        fig, ax = plt.subplots(figsize=(5, 3.8))
        cs = [b["contrast"] for b in blocks]
        for L, g in s["gap_vs_contrast"].items():
            ax.loglog(cs, np.maximum(g, 1e-16), "o-", label=f"L={L}")
        ax.set_xlabel("phase contrast")
        ax.set_ylabel("relative KUBC-TUBC gap")
        ax.set_title("boundary-condition gap vs contrast")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "rve_gap_contrast.png"), dpi=110)
        plt.close(fig)
