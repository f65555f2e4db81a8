"""``hpcmsm phasefield``: Cahn–Hilliard / Allen–Cahn on distributed grids (PFHub benchmark 1, ...)."""
from __future__ import annotations

NAME = "phasefield"
HELP = "Cahn–Hilliard / Allen–Cahn phase field on DMDA grids: adaptive implicit steps, PFHub 1, restart"
ORDER = 50


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML input ([problem], [energy], [initial], [time], [output], [petsc.ch])")
    p.add_argument("--restart", action="store_true", help="continue from the checkpoint in the output directory")
    p.add_argument("--out", metavar="DIR", help="override [output] dir")
    p.add_argument("--t-end", type=float, metavar="T", help="override [time] t_end")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--kill-at-step", type=int, default=-1, help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run(args, comm) -> int:
    from ..config import load
    from ..errors import ConfigError
    from ..phasefield.driver import PhaseFieldInput, run as pf_run

    cfg, text = load(args.input, PhaseFieldInput)
    if args.out:
        cfg.output.dir = args.out
    if args.t_end is not None:
        if not args.t_end > 0:
            raise ConfigError("--t-end must be positive")
        cfg.time.t_end = args.t_end
    summary = pf_run(cfg, comm, input_text=text, command_line=getattr(args, "argv", None), restart=args.restart,
                     quiet=args.quiet, kill_at_step=args.kill_at_step)
    return int(summary.get("exit", 0))
