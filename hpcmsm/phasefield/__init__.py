"""Phase field: Cahn–Hilliard and Allen–Cahn on distributed DMDA grids.

* :mod:`~hpcmsm.phasefield.energies` — bulk free energies ψ (PFHub double well, Landau, regular
  solution, user-defined) with ψ′, ψ″ and a convex–concave split (pure numpy).
* :mod:`~hpcmsm.phasefield.solver` — one implicit step on a PETSc DMDA (SNES Newton, FFT/DCT
  preconditioner by default, any PETSc preconditioner under the ``ch_``/``ac_`` prefix).
* :mod:`~hpcmsm.phasefield.stepping` — adaptive, energy-monotone time stepping.
* :mod:`~hpcmsm.phasefield.pfhub` — PFHub benchmark 1 parameters and initial conditions.
* :mod:`~hpcmsm.phasefield.reference` — a serial scipy oracle of the same discretisation.
"""
from .energies import Callables, DoubleWell, EnergyTerm, FreeEnergy, Landau, RegularSolution, UserDefined, make_energy  # noqa: F401
