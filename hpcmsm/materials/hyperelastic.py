"""Finite-strain hyperelastic materials W(F): P = ∂W/∂F, A = ∂²W/∂F∂F, vectorised over points.

:class:`HyperelasticMaterial` is the general interface (``kind = "finite"``): subclasses give
``energy(F)``, ``stress(F)`` and ``tangent(F)``; the Cauchy–Born material of the atomistic
package plugs into the same slot.  2D is plane strain (F33 = 1)."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import lame_from_young_poisson


class HyperelasticMaterial:
    kind = "finite"
    dim = 3

    def initial_state(self, nq: int) -> dict:
        return {}

    def update(self, F, state):
        F = np.asarray(F, float)
        return self.stress(F), self.tangent(F), state

    def energy(self, F, state=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def stress(self, F):  # pragma: no cover - abstract
        raise NotImplementedError

    def tangent(self, F):  # pragma: no cover - abstract
        raise NotImplementedError


class NeoHookean(HyperelasticMaterial):
    """Compressible Neo-Hookean: W = μ/2 (tr C − 3) − μ ln J + λ/2 (ln J)² (3D form, F33 = 1 in 2D)."""

    def __init__(self, dim: int, E: float | None = None, nu: float | None = None, *, lam=None, mu=None):
        if lam is None or mu is None:
            lam, mu = lame_from_young_poisson(E, nu)
        if not mu > 0 or not lam + 2 * mu / 3 > 0:
            raise InputError("Neo-Hookean: needs mu > 0 and bulk modulus > 0")
        self.dim, self.lam, self.mu = dim, float(lam), float(mu)

    def _J(self, F):
        J = np.linalg.det(F)
        if np.any(J <= 0):
            raise FloatingPointError("det F <= 0")
        return J

    def energy(self, F, state=None):
        F = np.asarray(F, float)
        J = self._J(F)
        I1 = np.einsum("...iJ,...iJ->...", F, F) + (1.0 if self.dim == 2 else 0.0)
        lnJ = np.log(J)
        return 0.5 * self.mu * (I1 - 3) - self.mu * lnJ + 0.5 * self.lam * lnJ ** 2

    def stress(self, F):
        J = self._J(F)
        Fit = np.swapaxes(np.linalg.inv(F), -1, -2)
        return self.mu * (F - Fit) + self.lam * np.log(J)[..., None, None] * Fit

    def tangent(self, F):
        J = self._J(F)
        d = F.shape[-1]
        Fit = np.swapaxes(np.linalg.inv(F), -1, -2)
        lnJ = np.log(J)[..., None, None, None, None]
        I = np.eye(d)
        A = self.mu * np.einsum("ik,JL->iJkL", I, I) + (self.mu - self.lam * lnJ) * \
            np.einsum("...iL,...kJ->...iJkL", Fit, Fit) + self.lam * np.einsum("...iJ,...kL->...iJkL", Fit, Fit)
        return A
