"""Atomistic–continuum coupling: lattices, potentials, Cauchy–Born, breakdown analysis, QC."""
from .lattices import LATTICES, Lattice, bonds, make_lattice, shells  # noqa: F401
from .potentials import LennardJones, Morse, StillingerWeber, bond_energy, make_potential  # noqa: F401
from .cauchy_born import (CauchyBorn, elastic_constants, equilibrium_lattice, lagrangian_moduli,  # noqa: F401
                          stability, to_voigt)
from .material import CauchyBornMaterial  # noqa: F401
