"""``hpcmsm verify [SUITE ...]``: code-verification suites of every solver → markdown/JSON/PNG report."""
from __future__ import annotations

NAME = "verify"
HELP = "run the verification suites (MMS orders, GCI, DWR) and write the report; --hierarchy adds validation"
ORDER = 80
DESCRIPTION = ("Runs the manufactured-solution convergence suite of every solver (expected vs observed "
               "order, pass/fail), the consistency checks of the V&V machinery and the DWR benchmarks (deal.II "
               "step-14 point value; mean stress in a region for plane elasticity), and "
               "writes verification.md/.json and PNG plots. Missing solvers show as 'not available'. "
               "--inject-bug SUITE perturbs one coefficient inside that solver to show that the order test "
               "catches it. --hierarchy runs consistency → MMS → DWR → validation and refuses to report "
               "validation if verification failed.")


def add_arguments(p) -> None:
    p.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all; see --list)")
    p.add_argument("--input", "-i", metavar="TOML", help="a TOML input with [verify] and [output] tables")
    p.add_argument("--list", action="store_true", help="list the suites and whether their solver is available")
    p.add_argument("--full", action="store_true", help="more refinement levels (slower)")
    p.add_argument("--out", metavar="DIR", help="output directory (default out/verify)")
    p.add_argument("--docs", metavar="MD", help="also write the report as this docs page (docs/verification.md)")
    p.add_argument("--inject-bug", metavar="SUITE", default=None,
                   help="perturb one coefficient in this suite's solver call (the suite must then FAIL)")
    p.add_argument("--perturbation", type=float, default=None, help="factor for --inject-bug (default 1.05)")
    p.add_argument("--hierarchy", action="store_true", help="V&V hierarchy report ending with validation")
    p.add_argument("--validation", metavar="TOML", help="validation input for --hierarchy")
    p.add_argument("--no-png", action="store_true", help="skip the plots")


def run(args, comm) -> int:
    import json
    import os

    from ..config import load
    from ..errors import InputError
    from ..parallel import Log
    from ..timing import Timers
    from ..vv import report as rp
    from ..vv.suites import SUITES, availability, run_suite

    log = Log(comm)
    if args.list:
        for name, s in SUITES.items():
            ok, why = availability(s)
            log(f"{name:18s} {s.kind:12s} {'available' if ok else 'not available: ' + why}  — {s.description}")
        return 0
    base_dir = "."
    if args.input:
        cfg, _ = load(args.input, rp.VerifyInput)
        base_dir = os.path.dirname(os.path.abspath(args.input))
    else:
        cfg = rp.VerifyInput()
    v = cfg.verify
    for s in args.suites:
        if s not in SUITES:
            raise InputError(f"unknown suite {s!r} (known: {', '.join(SUITES)})")
    if args.inject_bug is not None and args.inject_bug not in SUITES:
        raise InputError(f"--inject-bug: unknown suite {args.inject_bug!r} (known: {', '.join(SUITES)})")
    names = list(args.suites or v.suites or SUITES)
    quick = v.quick and not args.full
    bug = args.inject_bug if args.inject_bug is not None else v.inject_bug
    pert = args.perturbation if args.perturbation is not None else v.perturbation
    if not pert > 0:
        raise InputError("--perturbation must be positive")
    hierarchy = args.hierarchy or v.hierarchy
    val_path = args.validation or (os.path.join(base_dir, v.validation) if v.validation else None)
    val_cfg, val_dir = None, "."
    if hierarchy:
        if not val_path:
            raise InputError("--hierarchy needs --validation TOML (or [verify] validation = ...)")
        vin, _ = load(val_path, rp.ValidationInput)
        val_cfg, val_dir = vin.validation, os.path.dirname(os.path.abspath(val_path))
        # the hierarchy needs every verification level
        names = list(dict.fromkeys(names + [n for n, s in SUITES.items() if s.kind in ("consistency", "solution")]))
    outdir = args.out or (os.path.join(base_dir, cfg.output.dir) if args.input else "out/verify")
    png = cfg.output.png and not args.no_png
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
    comm.Barrier()
    timers = Timers(comm)
    results = []
    for name in names:
        log(f"verify: {name} ...")
        with timers(name):
            r = run_suite(comm, name, quick, pert if name == bug else 1.0)
        results.append(r)
        log(f"verify: {name}: {r.status} ({r.seconds:.1f} s)" + (f" — {r.message.splitlines()[0]}" if r.message else ""))
    cmd = " ".join(getattr(args, "argv", ["hpcmsm", "verify"]))
    body = rp.suites_markdown(results, outdir if comm.rank == 0 else None, png)
    md = ["# Verification report", "", rp.verification_header(results, cmd), "## Suites", "", body]
    summary = {"suites": [r.as_dict() for r in results], "quick": quick, "injected_bug": bug or None,
               "timers": timers.summary()}
    from ..audit import Audit

    audit = Audit()
    for r in results:
        audit.add(f"suite {r.name} ({r.status})", 0.0 if r.status in ("pass", "not available") else 1.0, 0.0, "<=",
                  note="injected bug: failure expected" if r.perturb != 1.0 else "")
    summary["audit"] = audit.as_dict()
    rc = 0 if audit.passed else 1
    if hierarchy:
        h = rp.hierarchy_report(comm, results, val_cfg, val_dir)
        md.insert(3, h.markdown + "\n")
        summary["hierarchy"] = h.as_dict()
        if h.validation is not None and png and comm.rank == 0:
            rp.plot_validation(h.validation, os.path.join(outdir, "validation.png"))
            md.insert(4, "![validation](validation.png)\n")
    text = "\n".join(md)
    if comm.rank == 0:
        with open(os.path.join(outdir, "verification.md"), "w") as fh:
            fh.write(text)
        with open(os.path.join(outdir, "verification.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=float)
        if args.docs:
            docs_dir = os.path.dirname(os.path.abspath(args.docs))
            figdir = os.path.join(docs_dir, "figures", "verification")
            if png:
                os.makedirs(figdir, exist_ok=True)
            parts = [rp.DOC_INTRO, rp.verification_header(results, cmd)]
            if hierarchy:
                parts.append(h.markdown)
                if h.validation is not None and png:
                    rp.plot_validation(h.validation, os.path.join(figdir, "validation.png"))
                    parts.append("![validation](figures/verification/validation.png)\n")
            parts += ["## Suites\n", rp.suites_markdown(results, figdir if png else None, png, "figures/verification/")]
            with open(args.docs, "w") as fh:
                fh.write("\n".join(parts))
    log("")
    log(audit.summary())
    log(f"report: {os.path.join(outdir, 'verification.md')}")
    return rc
