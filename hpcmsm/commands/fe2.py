"""``hpcmsm fe2``: concurrent FE² — macro Newton with an RVE at every quadrature point."""
from __future__ import annotations

NAME = "fe2"
HELP = "FE² multiscale: macro FE with a nonlinear RVE per quadrature point, solved on MPI groups"
ORDER = 50


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input ([macro], [micro], [pool], [newton], [output], [petsc.macro])")
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir)")
    p.add_argument("--restart", action="store_true", help="continue from the checkpoint in the output directory")
    p.add_argument("--group-size", type=int, metavar="G", help="ranks per RVE group (overrides [pool] group_size)")
    p.add_argument("--balance", choices=("round_robin", "cost", "block"), help="overrides [pool] balance")
    p.add_argument("--steps", type=int, metavar="N", help="overrides [macro] steps")
    p.add_argument("--quiet", action="store_true", help="only the audit summary")


def run(args, comm) -> int:
    from ..config import load
    from ..errors import InputError
    from ..fe2.driver import run_fe2
    from ..fe2.inputs import FE2Input

    cfg, text = load(args.input, FE2Input)
    if args.out:
        cfg.output.dir = args.out
    if args.group_size is not None:
        if args.group_size < 1:
            raise InputError("--group-size must be >= 1")
        cfg.pool.group_size = args.group_size
    if args.balance:
        cfg.pool.balance = args.balance
    if args.steps is not None:
        if args.steps < 1:
            raise InputError("--steps must be >= 1")
        cfg.macro.steps = args.steps
    summary = run_fe2(cfg, comm, restart=args.restart, input_text=text, argv=getattr(args, "argv", None),
                      quiet=args.quiet)
    if summary.get("stopped"):
        return summary["exit"]
    return 0 if summary["audit_passed"] else 3
