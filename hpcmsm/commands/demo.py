"""``hpcmsm demo``: what ``./run`` with no arguments shows."""
from __future__ import annotations

NAME = "demo"
HELP = "the main demo on built-in input (what ./run runs with no arguments)"
ORDER = 1


def add_arguments(p) -> None:
    pass


def run(args, comm) -> int:
    import argparse
    import os

    from . import info, scales
    from ..parallel import rprint

    rprint(comm, "hpcmsm demo: environment\n")
    info.run(argparse.Namespace(no_selftest=False), comm)
    rprint(comm, "\nhpcmsm demo: scale-separation advisor on the three classic cases\n")
    scales.run(argparse.Namespace(input=[], classic=True, json=None), comm)
    # FE²: a plate with a hole made of a particle-reinforced elasto-plastic composite, an RVE at
    # every macro quadrature point (about a minute on one rank of the reference machine)
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "examples", "fe2_plate_hole_2d.toml")
    if not os.path.exists(example):
        rprint(comm, f"\n(FE² demo skipped: {example} not found)")
        return 0
    from . import fe2

    rprint(comm, f"\nhpcmsm demo: FE² plate with a hole ({os.path.relpath(example)}); fields for ParaView in "
                 "out_fe2_plate/fe2_macro.xdmf, micro fields in out_fe2_plate/fe2_micro_qp*.xdmf\n")
    return fe2.run(argparse.Namespace(input=example, out=None, restart=False, group_size=None, balance=None,
                                      steps=None, quiet=False, argv=["hpcmsm", "demo"]), comm)
