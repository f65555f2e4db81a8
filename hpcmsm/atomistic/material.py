"""`CauchyBornMaterial`: a finite-strain hyperelastic material (hpcmsm.materials interface)."""
from __future__ import annotations

import numpy as np

from .cauchy_born import CauchyBorn


class CauchyBornMaterial:
    """Hyperelastic material with W(F) from the Cauchy–Born rule.

    ``P, A, new_state = update(F, state)`` with F (nq, d, d), first Piola–Kirchhoff P (nq, d, d)
    and A = ∂P/∂F = ∂²W/∂F∂F (nq, d, d, d, d) (energy per reference volume of the lattice, in the
    potential's units).  For complex lattices the state keeps the relaxed inner shifts, used only
    as the Newton start of the next inner relaxation (the result does not depend on it).
    """

    kind = "finite"

    def __init__(self, cb: CauchyBorn, scale: float = 1.0):
        self.cb = cb
        self.dim = cb.dim
        self.scale = float(scale)  # unit conversion of energy/volume (e.g. eV/Å³ → GPa)

    def initial_state(self, nq: int) -> dict:
        if self.cb.nb > 1 and self.cb.relax:
            return {"shift": np.zeros((nq, self.cb.nb, self.dim))}
        return {}

    def update(self, F, state):
        res = self.cb.evaluate(F, order=2, shifts=state.get("shift"))
        new = {"shift": res.shifts} if "shift" in state else {}
        return self.scale * res.P, self.scale * res.A, new

    def energy(self, F, state=None) -> np.ndarray:
        shifts = None if not state else state.get("shift")
        return self.scale * self.cb.evaluate(F, order=0, shifts=shifts).W
