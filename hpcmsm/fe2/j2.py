"""Small-strain J2 (von Mises) plasticity with linear isotropic hardening, vectorised.

Radial return (backward Euler) with the consistent (algorithmic) tangent of Simo & Hughes
(1998, box 3.2), in Mandel notation so the tangent is a symmetric matrix.  2D is plane strain:
the law works internally on 3D Mandel vectors (6 components) with ε33 = ε23 = ε13 = 0 and keeps
the full 3D plastic strain (ε^p_33 ≠ 0) in its state.  Units: stresses and moduli in the same
unit (e.g. MPa), strains dimensionless.

This is the FE² module's own law (used by the voxel RVEs and the direct-macro reference); it
obeys :mod:`hpcmsm.materials.base`: ``stress, tangent, new_state = update(strain, state)``, pure.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..materials.base import lame_from_young_poisson

_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
_PDEV = np.eye(6) - np.outer(_ONE, _ONE) / 3.0
_IDX2 = [0, 1, 5]          # 2D Mandel components inside the 3D Mandel vector
_SQ23 = np.sqrt(2.0 / 3.0)


def embed(strain: np.ndarray, dim: int) -> np.ndarray:
    """(nq, m) Mandel strains → (nq, 6) 3D Mandel strains (plane strain in 2D)."""
    if dim == 3:
        return np.asarray(strain, dtype=float)
    e = np.zeros(strain.shape[:-1] + (6,))
    e[..., _IDX2] = strain
    return e


def restrict(v: np.ndarray, dim: int) -> np.ndarray:
    return v if dim == 3 else v[..., _IDX2]


class J2Plasticity:
    """Isotropic elasticity (E, ν) + von Mises yield σ_y + H·α (α: equivalent plastic strain).

    State per point: ``eps_p`` (nq, 6) plastic strain (3D Mandel) and ``alpha`` (nq,).
    """

    kind = "small"

    def __init__(self, dim: int, E: float, nu: float, sigma_y: float, H: float = 0.0):
        if dim not in (2, 3):
            raise InputError(f"J2Plasticity: dim must be 2 or 3, got {dim}")
        if not sigma_y > 0:
            raise InputError(f"J2Plasticity: yield stress must be positive, got {sigma_y}")
        if H < 0:
            raise InputError(f"J2Plasticity: hardening modulus must be >= 0, got {H}")
        self.dim, self.E, self.nu, self.sigma_y, self.H = dim, float(E), float(nu), float(sigma_y), float(H)
        self.lam, self.mu = lame_from_young_poisson(E, nu)
        self.kappa = self.lam + 2.0 * self.mu / 3.0
        self.C3 = self.kappa * np.outer(_ONE, _ONE) + 2.0 * self.mu * _PDEV
        self.m = 3 if dim == 2 else 6
        self.state_fields = {"eps_p": 6, "alpha": 1}

    @property
    def C(self) -> np.ndarray:
        """Elastic Mandel stiffness (m, m)."""
        i = _IDX2 if self.dim == 2 else slice(None)
        return self.C3[np.ix_(i, i)] if self.dim == 2 else self.C3.copy()

    def initial_state(self, nq: int) -> dict:
        return {"eps_p": np.zeros((nq, 6)), "alpha": np.zeros(nq)}

    def _trial(self, strain, state):
        e3 = embed(strain, self.dim)
        ee = e3 - state["eps_p"]
        sig = ee @ self.C3
        s = sig @ _PDEV
        q = np.sqrt(np.einsum("qi,qi->q", s, s))
        f = q - _SQ23 * (self.sigma_y + self.H * state["alpha"])
        return sig, s, q, f

    def elastic_ok(self, strain: np.ndarray, state: dict) -> np.ndarray:
        """True where the trial state does not yield (the update would be purely elastic)."""
        return self._trial(strain, state)[3] <= 0.0

    def update(self, strain, state):
        strain = np.asarray(strain, dtype=float)
        sig, s, q, f = self._trial(strain, state)
        nq = strain.shape[0]
        plastic = f > 0.0
        mu, H = self.mu, self.H
        dgam = np.where(plastic, f / (2.0 * mu + 2.0 * H / 3.0), 0.0)
        qs = np.where(plastic, q, 1.0)
        n = s / qs[:, None]
        sig = sig - (2.0 * mu * dgam)[:, None] * n
        eps_p = state["eps_p"] + dgam[:, None] * n
        alpha = state["alpha"] + _SQ23 * dgam
        theta = 1.0 - 2.0 * mu * dgam / qs
        thetab = np.where(plastic, 1.0 / (1.0 + H / (3.0 * mu)) - (1.0 - theta), 0.0)
        Ct = (self.kappa * np.outer(_ONE, _ONE))[None] + 2.0 * mu * theta[:, None, None] * _PDEV[None] \
            - 2.0 * mu * thetab[:, None, None] * np.einsum("qi,qj->qij", n, n)
        if self.dim == 2:
            sig = sig[:, _IDX2]
            Ct = Ct[:, _IDX2][:, :, _IDX2]
        return sig, Ct, {"eps_p": eps_p, "alpha": alpha}

    def energy(self, strain, state):
        """Stored energy density: elastic ½ε^e:C:ε^e + hardening ½Hα²."""
        ee = embed(np.asarray(strain, float), self.dim) - state["eps_p"]
        return 0.5 * np.einsum("qi,ij,qj->q", ee, self.C3, ee) + 0.5 * self.H * state["alpha"] ** 2

    def dissipation_increment(self, strain, state, new_state):
        """Plastic dissipation of the increment: σ_{n+1}:Δε^p − Δψ_hardening (= σ_yΔα + HΔα²/2 ≥ 0)."""
        da = new_state["alpha"] - state["alpha"]
        return self.sigma_y * da + 0.5 * self.H * da ** 2

    def plastic_strain_eq(self, state) -> np.ndarray:
        return state["alpha"]
