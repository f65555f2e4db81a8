"""``hpcmsm demo``: what ``./run`` with no arguments shows."""
from __future__ import annotations

NAME = "demo"
HELP = "the main demo on built-in input (what ./run runs with no arguments)"
ORDER = 1


def add_arguments(p) -> None:
    pass


def run(args, comm) -> int:
    import argparse

    from . import info, scales
    from ..parallel import rprint

    rprint(comm, "hpcmsm demo: environment\n")
    info.run(argparse.Namespace(no_selftest=False), comm)
    rprint(comm, "\nhpcmsm demo: scale-separation advisor on the three classic cases\n")
    scales.run(argparse.Namespace(input=[], classic=True, json=None), comm)
    return 0
