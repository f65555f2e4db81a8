"""Strong/weak scaling harness: run a command at several rank counts, collect times, plot.

For every mode (``strong``: fixed total size; ``weak``: fixed size per rank) and rank count n
the harness

1. evaluates the size parameters (``--strong nx=512``, ``--weak "nx=round(256*n**0.5)"``: Python
   arithmetic in ``n``), renders an optional TOML template (``${name}`` placeholders, plus
   ``${n}``, ``${outdir}``) to ``<case>/input.toml`` and the command (``{name}`` placeholders,
   plus ``{n}``, ``{outdir}``, ``{input}``, ``{json}``);
2. launches it with the project launcher ``run -n n`` (``srun`` inside a SLURM allocation,
   ``mpirun`` otherwise) with ``-log_view :<case>/log_view.txt`` appended;
3. parses PETSc's per-stage times (``Summary of Stages``) and per-event maxima from that file,
   and hpcmsm's JSON timings (any ``{phase: {"max", "mean", "calls"}}`` table found in JSON files
   the command wrote into ``<case>``), plus the launcher's wall time;
4. writes ``scaling.json`` (everything), ``scaling.md`` (table) and ``strong.png`` /
   ``weak.png`` (time per phase, speedup, parallel efficiency, ideal lines).

The metric for speedup/efficiency is, in order of preference: ``--metric`` if given (a JSON
phase, a PETSc stage, ``total`` = sum of JSON phase maxima, or ``wall``), else ``total``, else the
sum of PETSc stages other than the Main Stage, else ``wall`` (includes start-up; least useful).
Rank counts above the core count are flagged ``oversubscribed`` (time-sharing cores; efficiency
there measures the machine, not the code).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import string
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# environment variables of an enclosing mpirun/singleton that must not leak into the child job
_MPI_ENV_PREFIXES = ("OMPI_COMM_", "OMPI_MCA_ess", "OMPI_MCA_orte", "OMPI_MCA_pmix", "PMIX_", "OMPI_FILE_",
                     "OMPI_UNIVERSE", "OMPI_FIRST", "OMPI_APP", "OMPI_NUM_APP", "OMPI_MCA_initial",
                     "OMPI_MCA_mpi_", "OMPI_MCA_shmem", "OMPI_ARGV", "OMPI_COMMAND", "OMPI_MCA_rmaps_ppr",
                     "HPCMSM_TEST_REPORT")


def clean_env(extra: dict | None = None) -> dict:
    """The current environment without an enclosing MPI job's wiring (so a child job starts clean)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_MPI_ENV_PREFIXES)}
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------

_STAGE = re.compile(r"^\s*(\d+):\s+(.+?):\s+([0-9.eE+-]+)\s+([0-9.]+)%")
_EVSTAGE = re.compile(r"^--- Event Stage (\d+): (.*)$")
_EVENT = re.compile(r"^(\S+)\s+(\d+)\s+([0-9.]+)\s+([0-9.eE+-]+)\s+([0-9.]+)\s+([0-9.eE+-]+)\s+([0-9.]+)\s+"
                    r"([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)")


def parse_log_view(text: str) -> dict:
    """PETSc ``-log_view`` (ASCII) → ``{"stages": {name: avg_s}, "events": {stage: {event: {...}}},
    "total_s": max_s}``."""
    stages, events = {}, {}
    total = None
    in_stages = in_events = False
    cur = None
    for line in text.splitlines():
        if line.startswith("Time (sec):"):
            total = float(line.split()[2])
        if line.startswith("Summary of Stages"):
            in_stages = True
            continue
        if in_stages:
            m = _STAGE.match(line)
            if m:
                stages[m.group(2).strip()] = float(m.group(3))
                continue
            if line.startswith("---"):
                in_stages = False
        m = _EVSTAGE.match(line)
        if m:
            in_events = True
            cur = m.group(2).strip()
            events.setdefault(cur, {})
            continue
        if line.startswith("Object Type"):
            in_events = False
        if in_events and cur is not None:
            m = _EVENT.match(line)
            if m:
                events[cur][m.group(1)] = {"count": int(m.group(2)), "max_s": float(m.group(4)),
                                           "ratio": float(m.group(5)), "flop": float(m.group(6)),
                                           "messages": float(m.group(8)), "avg_len": float(m.group(9)),
                                           "reductions": float(m.group(10))}
    return {"stages": stages, "events": {k: v for k, v in events.items() if v}, "total_s": total}


def find_timer_tables(obj) -> dict:
    """All ``{phase: {"max": s, "mean": s, ...}}`` tables inside a JSON object, merged."""
    found = {}

    def walk(o):
        if isinstance(o, dict):
            if o and all(isinstance(v, dict) and "max" in v and "mean" in v for v in o.values()):
                for k, v in o.items():
                    found[k] = {"max": float(v["max"]), "mean": float(v["mean"]), "calls": v.get("calls")}
                return
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return found


def collect_json(case_dir: str) -> tuple[dict, dict]:
    """Timer tables and the raw JSON documents found under ``case_dir``."""
    timers, docs = {}, {}
    for dp, _, files in os.walk(case_dir):
        for f in sorted(files):
            if f.endswith(".json") and f != "case.json":
                p = os.path.join(dp, f)
                try:
                    with open(p) as fh:
                        d = json.load(fh)
                except (OSError, ValueError):
                    continue
                docs[os.path.relpath(p, case_dir)] = d
                timers.update(find_timer_tables(d))
    return timers, docs


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------

_SAFE = {k: getattr(math, k) for k in ("sqrt", "ceil", "floor", "log2", "log", "exp")}
_SAFE.update(round=round, int=int, float=float, min=min, max=max, abs=abs)


def eval_params(specs: list[str], n: int) -> dict:
    """``["nx=round(256*n**0.5)", "steps=50"]`` at ``n`` ranks → ``{"nx": 362, "steps": 50}``."""
    out = {}
    for s in specs:
        if "=" not in s:
            raise ValueError(f"parameter {s!r}: expected NAME=EXPR")
        k, e = s.split("=", 1)
        v = eval(e, {"__builtins__": {}}, {**_SAFE, "n": n, **out})  # noqa: S307 (user's own sweep spec)
        out[k.strip()] = v
    return out


def mpi_launcher(n: int) -> list[str]:
    """The launcher words the project's ``run`` would use: HPCMSM_MPIRUN, srun in SLURM, mpirun."""
    import shutil

    if os.environ.get("HPCMSM_MPIRUN"):
        return [*shlex.split(os.environ["HPCMSM_MPIRUN"]), "-n", str(n)]
    if os.environ.get("SLURM_JOB_ID") and shutil.which("srun"):
        return ["srun", "-n", str(n)]
    return ["mpirun", "-n", str(n)]


def run_case(cmd: str, n: int, params: dict, case_dir: str, *, template: str | None = None,
             launcher: list[str] | None = None, log_view: bool = True, timeout: float = 3600,
             env: dict | None = None) -> dict:
    """Run one case and return its record (times, parsed profiles, return code)."""
    os.makedirs(case_dir, exist_ok=True)
    subs = {**{k: v for k, v in params.items()}, "n": n, "outdir": case_dir,
            "input": os.path.join(case_dir, "input.toml"), "json": os.path.join(case_dir, "summary.json")}
    if template:
        with open(template) as fh:
            text = string.Template(fh.read()).substitute({k: str(v) for k, v in subs.items()})
        with open(subs["input"], "w") as fh:
            fh.write(text)
    words = shlex.split(cmd.format(**subs))
    lv = os.path.join(case_dir, "log_view.txt")
    if launcher:
        launch = launcher
    elif words and words[0].endswith(".py"):  # a Python script (e.g. benchmarks/scaling_ch.py)
        words[0] = os.path.abspath(os.path.join(ROOT, words[0])) if not os.path.isabs(words[0]) else words[0]
        launch = mpi_launcher(n) + [sys.executable]
    else:
        launch = [os.path.join(ROOT, "run"), "-n", str(n)]
    full = [*launch, *words] + (["-log_view", f":{lv}"] if log_view else [])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=clean_env(env), cwd=case_dir)
    wall = time.perf_counter() - t0
    with open(os.path.join(case_dir, "stdout.txt"), "w") as fh:
        fh.write(p.stdout)
    with open(os.path.join(case_dir, "stderr.txt"), "w") as fh:
        fh.write(p.stderr)
    rec = {"ranks": n, "params": params, "command": full, "returncode": p.returncode, "wall_s": wall,
           "loadavg_1min": [load0, os.getloadavg()[0]]}  # other jobs on the machine: noise to report
    if log_view and os.path.exists(lv):
        with open(lv) as fh:
            rec["petsc"] = parse_log_view(fh.read())
    timers, docs = collect_json(case_dir)
    rec["timers"] = timers
    rec["json_files"] = sorted(docs)
    if p.returncode != 0:
        rec["stderr_tail"] = p.stderr[-2000:]
    with open(os.path.join(case_dir, "case.json"), "w") as fh:
        json.dump(rec, fh, indent=1)
    return rec


def metric_of(rec: dict, metric: str | None) -> tuple[float, str]:
    """The time used for speedup/efficiency, and the name of what it is."""
    timers = rec.get("timers") or {}
    stages = (rec.get("petsc") or {}).get("stages", {})
    if metric and metric not in ("total", "wall"):
        if metric in timers:
            return timers[metric]["max"], metric
        if metric in stages:
            return stages[metric], metric
        return float("nan"), metric
    if metric == "wall":
        return rec["wall_s"], "wall"
    if timers:
        return sum(t["max"] for t in timers.values()), "total"
    if metric == "total":
        return float("nan"), "total"
    st = {k: v for k, v in stages.items() if k != "Main Stage"}
    if st:
        return sum(st.values()), "petsc stages"
    return rec["wall_s"], "wall"


def analyse(records: list[dict], mode: str, metric: str | None, cores: int) -> list[dict]:
    """Add speedup and efficiency to each record (relative to the smallest rank count)."""
    ok = [r for r in records if r["returncode"] == 0]
    if not ok:
        return records
    base = min(ok, key=lambda r: r["ranks"])
    t1, name = metric_of(base, metric)
    n1 = base["ranks"]
    for r in records:
        t, _ = metric_of(r, metric)
        r["metric"], r["metric_name"] = t, name
        r["oversubscribed"] = r["ranks"] > cores
        if r["returncode"] != 0 or not (t > 0):
            r["speedup"] = r["efficiency"] = float("nan")
            continue
        if mode == "strong":
            r["speedup"] = t1 / t
            r["efficiency"] = r["speedup"] * n1 / r["ranks"]
        else:  # weak: ideal is constant time
            r["speedup"] = t1 / t * r["ranks"] / n1   # scaled speedup
            r["efficiency"] = t1 / t
    return records


# ----------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------

def table(results: dict) -> str:
    """Markdown table of all modes: ranks, params, metric, speedup, efficiency, top phases."""
    lines = []
    for mode, recs in results.items():
        if not recs:
            continue
        phases = sorted({p for r in recs for p in (r.get("timers") or {})})
        if not phases:
            phases = sorted({p for r in recs for p in (r.get("petsc") or {}).get("stages", {}) if p != "Main Stage"})
        lines.append(f"### {mode} scaling ({recs[0].get('metric_name', '?')} time)\n")
        head = ["ranks", "params", "time [s]", "speedup", "efficiency", "wall [s]"] + [f"{p} [s]" for p in phases]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in recs:
            ph = []
            for p in phases:
                t = (r.get("timers") or {}).get(p, {}).get("max")
                if t is None:
                    t = (r.get("petsc") or {}).get("stages", {}).get(p)
                ph.append("" if t is None else f"{t:.4g}")
            pr = " ".join(f"{k}={v}" for k, v in r["params"].items())
            flag = "*" if r.get("oversubscribed") else ""
            status = "" if r["returncode"] == 0 else f" (exit {r['returncode']})"
            lines.append(f"| {r['ranks']}{flag} | {pr} | {r.get('metric', float('nan')):.4g}{status} | "
                         f"{r.get('speedup', float('nan')):.3g} | {r.get('efficiency', float('nan')):.3g} | "
                         f"{r['wall_s']:.3g} | " + " | ".join(ph) + " |")
        lines.append("")
    loads = [x for recs in results.values() for r in recs for x in r.get("loadavg_1min", [])]
    lines.append("`*` oversubscribed: more ranks than cores; wall includes launch and start-up." +
                 (f" 1-minute load average during the runs: {min(loads):.1f}–{max(loads):.1f}." if loads else ""))
    return "\n".join(lines) + "\n"


def plot(results: dict, outdir: str, title: str = "") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for mode, recs in results.items():
        ok = [r for r in recs if r["returncode"] == 0 and r.get("metric", 0) > 0]
        if not ok:
            continue
        n = [r["ranks"] for r in ok]
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
        t = [r["metric"] for r in ok]
        ax[0].loglog(n, t, "o-", label=ok[0]["metric_name"])
        phases = sorted({p for r in ok for p in (r.get("timers") or {})})
        for p in phases:
            ax[0].loglog(n, [(r.get("timers") or {}).get(p, {}).get("max", float("nan")) for r in ok], ".--", label=p, lw=1)
        if mode == "strong":
            ax[0].loglog(n, [t[0] * n[0] / k for k in n], "k:", label="ideal")
        else:
            ax[0].loglog(n, [t[0] for _ in n], "k:", label="ideal")
        ax[0].set(xlabel="MPI ranks", ylabel="time [s]", title=f"{mode}: time")
        ax[0].legend(fontsize=7)
        ax[1].plot(n, [r["speedup"] for r in ok], "o-", label="measured")
        ax[1].plot(n, [k / n[0] for k in n], "k:", label="ideal")
        ax[1].set(xlabel="MPI ranks", ylabel="speedup" if mode == "strong" else "scaled speedup", title=f"{mode}: speedup")
        ax[1].legend(fontsize=7)
        ax[2].plot(n, [r["efficiency"] for r in ok], "o-")
        ax[2].axhline(1.0, color="k", ls=":")
        ax[2].set(xlabel="MPI ranks", ylabel="parallel efficiency", title=f"{mode}: efficiency", ylim=(0, 1.2))
        over = [r["ranks"] for r in ok if r.get("oversubscribed")]
        from matplotlib.ticker import NullFormatter

        for a in ax:
            a.xaxis.set_minor_formatter(NullFormatter())
            a.set_xticks(n)
            a.set_xticklabels([str(k) for k in n])
            if over:
                a.axvspan(min(over) - 0.5 if min(over) > 1 else 0.5, max(n) + 0.5, color="0.9", zorder=-1)
        if over:
            ax[2].text(min(over), 0.05, "oversubscribed", fontsize=7)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        p = os.path.join(outdir, f"{mode}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("--cmd", required=True,
                   help="hpcmsm command and arguments, e.g. 'bench stencil --nx {nx} --json {json}' "
                        "(placeholders {n} {outdir} {input} {json} and the size parameters), or a "
                        "Python script and its arguments ('benchmarks/scaling_ch.py --nx {nx}')")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4], help="rank counts (default 1 2 4)")
    p.add_argument("--mode", choices=["strong", "weak", "both"], default="both")
    p.add_argument("--strong", action="append", default=[], metavar="NAME=EXPR",
                   help="size parameter for strong scaling (same at every n), repeatable")
    p.add_argument("--weak", action="append", default=[], metavar="NAME=EXPR",
                   help="size parameter for weak scaling as a function of n, e.g. 'nx=round(256*n**0.5)'")
    p.add_argument("--template", default=None, help="TOML input template with ${name} placeholders → {input}")
    p.add_argument("--metric", default=None, help="phase/stage for speedup (default: sum of JSON phases)")
    p.add_argument("--repeat", type=int, default=1, help="repetitions per case (the fastest is kept)")
    p.add_argument("--out", default="scaling", help="output directory")
    p.add_argument("--title", default="", help="plot title")
    p.add_argument("--no-log-view", action="store_true", help="do not append -log_view")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")


def main_from_args(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    out = os.path.abspath(args.out)
    cores = os.cpu_count() or 1
    if os.environ.get("SLURM_CPUS_ON_NODE") and os.environ.get("SLURM_JOB_NUM_NODES"):
        cores = int(os.environ["SLURM_CPUS_ON_NODE"]) * int(os.environ["SLURM_JOB_NUM_NODES"])
    modes = ["strong", "weak"] if args.mode == "both" else [args.mode]
    results = {}
    failed = 0
    for mode in modes:
        specs = args.strong if mode == "strong" else args.weak
        recs = []
        for n in args.ranks:
            params = eval_params(specs, n)
            best = None
            for rep in range(args.repeat):
                case = os.path.join(out, mode, f"n{n}" + (f"_r{rep}" if args.repeat > 1 else ""))
                rec = run_case(args.cmd, n, params, case, template=args.template,
                               log_view=not args.no_log_view, timeout=args.timeout)
                t, _ = metric_of(rec, args.metric)
                if best is None or (rec["returncode"] == 0 and (best["returncode"] != 0 or t < metric_of(best, args.metric)[0])):
                    best = rec
            failed += best["returncode"] != 0
            print(f"scaling {mode} n={n} {params}: exit {best['returncode']}, wall {best['wall_s']:.2f} s, "
                  f"metric {metric_of(best, args.metric)[0]:.4g} s", flush=True)
            if best["returncode"] != 0:
                print(best.get("stderr_tail", ""), file=sys.stderr)
            recs.append(best)
        results[mode] = analyse(recs, mode, args.metric, cores)
    doc = {"cmd": args.cmd, "ranks": args.ranks, "cores": cores, "metric": args.metric,
           "host": os.uname().nodename, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "results": results}
    with open(os.path.join(out, "scaling.json"), "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    md = table(results)
    with open(os.path.join(out, "scaling.md"), "w") as fh:
        fh.write(f"Command: `{args.cmd}` ({cores} cores)\n\n" + md)
    pngs = plot(results, out, args.title or args.cmd)
    print(md)
    print("wrote", os.path.join(out, "scaling.json"), os.path.join(out, "scaling.md"), *pngs)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpcmsm.bench.scaling", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return main_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
