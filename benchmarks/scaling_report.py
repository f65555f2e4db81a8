"""Markdown tables for docs/performance.md from the probe, harness and model outputs.

    ./run python benchmarks/scaling_report.py --probes P.json --model M.json --runs stencil=DIR phasefield=DIR fe2=DIR
"""
import argparse
import json
import os


def load(p):
    with open(p) as fh:
        return json.load(fh)


def probes_md(p):
    out = ["| ranks | copy GB/s | scale GB/s | add GB/s | triad GB/s | copy GB/s per rank |", "|---|---|---|---|---|---|"]
    for n, r in sorted(p["stream"].items(), key=lambda kv: int(kv[0])):
        g = r["GBs"]
        out.append(f"| {n} | {g['copy']:.1f} | {g['scale']:.1f} | {g['add']:.1f} | {g['triad']:.1f} | "
                   f"{r['GBs_per_rank']['copy']:.1f} |")
    out.append("")
    m = p.get("mpi")
    if m:
        out.append(f"MPI (2 ranks, shared memory): ping-pong latency α = {m['latency_s'] * 1e6:.2f} µs, "
                   f"bandwidth β = {m['bandwidth_Bs'] / 1e9:.2f} GB/s (Hockney fit over 8 B – 2 MiB); "
                   f"Allreduce of 1 double {m['allreduce_s']['1'] * 1e6:.2f} µs, of 1024 doubles "
                   f"{m['allreduce_s']['1024'] * 1e6:.2f} µs.")
        pp = ", ".join(f"{int(k)} B: {v * 1e6:.2f} µs" for k, v in sorted(m["pingpong_s"].items(), key=lambda kv: int(kv[0])))
        out.append(f"Half round-trip times: {pp}.")
    s = p.get("stencil")
    if s:
        out.append("")
        out.append(f"Stencil kernel (`bench stencil --nx {s['nx']}`, 1 rank): the 5-point update moves "
                   f"{s['compute_bandwidth_GBs']:.2f} GB/s (counting 16 B per point), "
                   f"{100 * s['fraction_of_stream_copy_1rank']:.0f} % of 1-rank STREAM copy; "
                   f"{s['compute_s_per_point_step'] * 1e9:.1f} ns per point and step.")
    return "\n".join(out)


def runs_md(name, d):
    doc = load(os.path.join(d, "scaling.json"))
    out = [f"**{name}** — `{doc['cmd']}` ({doc['cores']} cores; metric: "
           f"{next(iter(doc['results'].values()))[0].get('metric_name', '?')})", ""]
    for mode, recs in doc["results"].items():
        out.append(f"| {mode} | params | time [s] | speedup | efficiency | wall [s] |")
        out.append("|---|---|---|---|---|---|")
        for r in recs:
            flag = "*" if r.get("oversubscribed") else ""
            pr = " ".join(f"{k}={v}" for k, v in r["params"].items())
            st = "" if r["returncode"] == 0 else f" (exit {r['returncode']})"
            out.append(f"| {r['ranks']}{flag} | {pr} | {r.get('metric', float('nan')):.3g}{st} | "
                       f"{r.get('speedup', float('nan')):.2f} | {r.get('efficiency', float('nan')):.2f} | {r['wall_s']:.1f} |")
        out.append("")
    loads = [x for recs in doc["results"].values() for r in recs for x in r.get("loadavg_1min", [])]
    if loads:
        out.append(f"`*` oversubscribed (more ranks than the {doc['cores']} cores). 1-minute load average "
                   f"while these ran: {min(loads):.1f}–{max(loads):.1f} (other engineers' jobs).")
        out.append("")
    # PETSc events of the smallest strong case: where the time goes
    strong = doc["results"].get("strong") or []
    ok = [r for r in strong if r["returncode"] == 0 and r.get("petsc")]
    if ok:
        r = ok[0]
        evs = {}
        for st, e in r["petsc"]["events"].items():
            for k, v in e.items():
                evs[k] = evs.get(k, 0.0) + v["max_s"]
        top = sorted(evs.items(), key=lambda kv: -kv[1])[:6]
        out.append(f"PETSc events at {r['ranks']} rank(s) (max over ranks, s): " +
                   ", ".join(f"{k} {v:.3g}" for k, v in top) + ".")
        out.append("")
    return "\n".join(out)


def model_md(m):
    out = []
    ch = m.get("cahn_hilliard")
    if ch:
        c = ch["calibration"]
        out.append(f"Cahn–Hilliard calibration (1 rank, {ch['calibration_case']['cells']} cells, "
                   f"{ch['calibration_case']['steps']} steps): {c['n_newton']:.2f} Newton and {c['n_krylov']:.2f} "
                   f"GMRES iterations per Newton step; per cell: residual {c['c_res'] * 1e9:.0f} ns, Jacobian "
                   f"{c['c_jac'] * 1e9:.0f} ns, MatMult {c['c_matvec'] * 1e9:.0f} ns, Krylov vector work "
                   f"{c['c_vec'] * 1e9:.0f} ns, FFT preconditioner {c['c_fft'] * 1e9:.1f} ns × log₂N.")
        out.append("")
        out.append("| ranks | measured s/step | model s/step |")
        out.append("|---|---|---|")
        for v in ch["validation"]:
            out.append(f"| {v['ranks']}{'*' if v['oversubscribed'] else ''} | {v['measured_s_per_step']:.3g} | "
                       f"{v['predicted_s_per_step']:.3g} |")
        out.append("")
        out.append(extrap_md(ch["extrapolation"], "s_per_step", "s/step"))
    fe = m.get("fe2")
    if fe:
        c = fe["calibration"]
        cc = fe["calibration_case"]
        out.append(f"FE² calibration (1 rank, {cc['quadrature_points']} RVEs, {cc['evaluations']} pool evaluations, "
                   f"{cc['rve_solves']} RVE solves): {c['t_rve1'] * 1e3:.2f} ms per RVE evaluation (mix of "
                   f"elastic reuses and plastic Newton solves), macro work {c['c_macro_qp'] * 1e6:.1f} µs per "
                   f"quadrature point and evaluation.")
        out.append("")
        out.append("| ranks | measured Newton phase [s] | model [s] |")
        out.append("|---|---|---|")
        for v in fe["validation"]:
            out.append(f"| {v['ranks']}{'*' if v['oversubscribed'] else ''} | {v['measured_newton_s']:.3g} | "
                       f"{v['predicted_newton_s']:.3g} |")
        out.append("")
        out.append(extrap_md(fe["extrapolation"], "s_per_iteration", "s/iteration"))
    return "\n".join(out)


def extrap_md(ex, key, unit):
    cols = ["1024", "4096", "16384", "65536", "131072"]
    out = [f"| case | " + " | ".join(f"P={c}" for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, rows in ex.items():
        cells = []
        for c in cols:
            r = rows.get(c)
            cells.append("–" if r is None else f"{r[key]:.3g} {unit}, E={r['efficiency']:.2f}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes")
    ap.add_argument("--model")
    ap.add_argument("--runs", nargs="*", default=[])
    a = ap.parse_args()
    if a.probes:
        print(probes_md(load(a.probes)))
        print()
    for spec in a.runs:
        name, d = spec.split("=", 1)
        print(runs_md(name, d))
    if a.model:
        print(model_md(load(a.model)))


if __name__ == "__main__":
    main()
