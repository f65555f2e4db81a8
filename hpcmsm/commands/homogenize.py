"""``hpcmsm homogenize``: effective tensors of a voxel microstructure (KUBC/TUBC/PBC)."""
from __future__ import annotations

NAME = "homogenize"
HELP = "effective conductivity/stiffness of a voxel RVE with KUBC, TUBC and periodic BCs, bounds, correctors"
ORDER = 40


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input ([problem], [microstructure], [[phases]], [output], [petsc.rve])")
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir)")
    p.add_argument("--quiet", action="store_true", help="only the audit summary")


def run(args, comm) -> int:
    import os

    from ..config import load
    from ..homogenization.driver import homogenize
    from ..homogenization.inputs import HomogenizeInput
    from ..parallel import Log

    cfg, text = load(args.input, HomogenizeInput)
    if args.out:
        cfg.output.dir = args.out
    log = Log(comm, quiet=args.quiet)
    summary = homogenize(cfg, comm, input_text=text, base_dir=os.path.dirname(os.path.abspath(args.input)),
                         argv=getattr(args, "argv", None), log=log)
    audit = summary["_audit"]
    if args.quiet:
        Log(comm)(audit.summary())
    Log(comm)(f"wrote {cfg.output.dir}/summary.json, effective.h5"
              + (", correctors.xdmf, microstructure.xdmf" if cfg.output.fields else "")
              + (", PNG plots" if cfg.output.png else ""))
    return 0 if audit.passed else 3
