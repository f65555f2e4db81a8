"""``hpcmsm rve-study``: SVE ensembles over subcommunicators, statistics vs size, RVE size."""
from __future__ import annotations

NAME = "rve-study"
HELP = "SVE ensembles at several sizes/contrasts on MPI subcommunicators: mean, CI, variance decay, BC gap, RVE size"
ORDER = 41


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input ([problem], [microstructure], [[phases]], [study], [output])")
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir)")
    p.add_argument("--restart", action="store_true", help="continue from the checkpoint in the output directory")
    p.add_argument("--quiet", action="store_true", help="only the audit summary")


def run(args, comm) -> int:
    import os

    from ..config import load
    from ..homogenization.study import RVEStudyInput, rve_study
    from ..parallel import Log

    cfg, text = load(args.input, RVEStudyInput)
    if args.out:
        cfg.output.dir = args.out
    summary = rve_study(cfg, comm, input_text=text, base_dir=os.path.dirname(os.path.abspath(args.input)),
                        argv=getattr(args, "argv", None), restart=args.restart, log=Log(comm, quiet=args.quiet))
    audit = summary["_audit"]
    if args.quiet:
        Log(comm)(audit.summary())
    Log(comm)(f"wrote {cfg.output.dir}/summary.json, rve_study.h5" + (", rve_convergence.png" if cfg.output.png else ""))
    return 0 if audit.passed else 3
