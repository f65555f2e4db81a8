"""Command-line interface: ``python -m hpcmsm COMMAND [ARGS] [-prefix_petsc_option value ...]``.

Commands live one per module in :mod:`hpcmsm.commands`; each module defines ``NAME``, ``HELP``
(one line), ``ORDER`` (position in ``--help``), ``add_arguments(parser)`` and
``run(args, comm) -> int``.  Modules are discovered automatically and must keep heavy imports
inside ``run`` so that ``--help`` stays fast.  Arguments that argparse does not know and that
look like PETSc options (``-macro_ksp_type cg``) are handed to PETSc's options database.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__


def _command_modules():
    from . import commands

    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    mods.sort(key=lambda m: (getattr(m, "ORDER", 100), m.NAME))
    return mods


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hpcmsm",
        description="HPC multiscale modelling on MPI and PETSc. Run a command under "
        "`./run -n N COMMAND` (mpirun/srun). Options of the form -prefix_option value "
        "are passed to PETSc (e.g. -macro_ksp_type cg -macro_pc_type gamg).",
    )
    parser.add_argument("--version", action="version", version=f"hpcmsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        modules[mod.NAME] = mod
    return parser, modules


def split_petsc_args(extra: list[str]) -> tuple[list[str], list[str]]:
    """Separate PETSc options (``-name [value]``, single dash) from anything else."""
    petsc, other = [], []
    i = 0
    while i < len(extra):
        a = extra[i]
        if a.startswith("-") and not a.startswith("--") and len(a) > 1 and not _is_number(a):
            petsc.append(a)
            if i + 1 < len(extra) and (not extra[i + 1].startswith("-") or _is_number(extra[i + 1])):
                petsc.append(extra[i + 1])
                i += 1
        else:
            other.append(a)
        i += 1
    return petsc, other


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser()
    args, extra = parser.parse_known_args(argv)
    petsc_args, other = split_petsc_args(extra)
    if other:
        parser.error("unrecognized arguments: " + " ".join(other))
    if args.command is None:
        parser.print_help()
        return 0
    from .parallel import abort_on_error, init_petsc

    init_petsc(petsc_args)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    args.argv = ["hpcmsm"] + argv
    with abort_on_error(comm):
        rc = modules[args.command].run(args, comm)
    return int(rc or 0)
